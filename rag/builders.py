"""Builder functions: each stage is constructed from the settings and the collaborators it needs, all
passed in (constructor injection). The `Assistant` calls these; tests call them with fakes.

Nothing here decides anything twice: the retrieval mode and the documents' languages come from the opened
store (`index.protocols.IndexReader`), the marker grammar from `rag.markers`.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from index.protocols import IndexReader, TokenReader, WindowReader
from rag import evidence
from rag.backends.base import Generator
from rag.evidence import CorpusStats, EvidenceScorer
from rag.protocols import LanguageOf, Reranker, Retriever
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.chain import AnswerChain
    from rag.retrieval import HybridRetriever


def build_scorer(store: IndexReader) -> EvidenceScorer:
    """Evidence scoring with the index's own document frequencies (nothing is analysed again)."""
    return EvidenceScorer(CorpusStats(Counter(store.term_document_frequencies()), len(store.chunks)))


def build_reranker(settings: Settings) -> Reranker | None:
    """The configured cross-encoder (loaded now: a bad model name fails here, with the setting's name)."""
    if not settings.retrieval.reranker_model:
        return None
    from rag.rerank import CrossEncoderReranker

    return CrossEncoderReranker(settings.retrieval.reranker_model, device=settings.retrieval.reranker_device)


def build_retriever(
    store: IndexReader, settings: Settings, reranker: Reranker | None = None
) -> HybridRetriever:
    from rag.retrieval import HybridRetriever

    return HybridRetriever(store, settings.retrieval, reranker=reranker)


def build_generator(
    settings: Settings,
    backend: str,
    *,
    scorer: EvidenceScorer,
    language_of: LanguageOf,
) -> Generator:
    """The generator of `backend`; the extractive one is given the index's evidence statistics."""
    if backend == "extractive":
        from rag.backends.extractive import ExtractiveGenerator

        return ExtractiveGenerator(scorer, language_of=language_of)
    from rag.backends import make_generator

    return make_generator(settings, backend)


def build_chain(
    settings: Settings,
    store: IndexReader,
    retriever: Retriever,
    generator: Generator,
    scorer: EvidenceScorer,
) -> AnswerChain:
    """The answering chain of one generator over one opened index.

    In hybrid mode the evidence step reads the store's sentence windows and the retrieval query's memoised
    vector (`index.protocols.WindowReader`, when the store has them: no model call beyond the query's), and
    the abstention gate calibrated for the embedding model (`rag.abstention.gate_for`; none: lexical gate).
    """
    from rag.abstention import gate_for
    from rag.chain import AnswerChain
    from rag.citations import CitationVerifier

    hybrid = retriever.mode == "hybrid"
    gate = gate_for(store.embedder.name) if hybrid and store.embedder is not None else None

    def chunk_span(chunk_id: str) -> tuple[int, int]:
        chunk = store.chunk(chunk_id)
        return chunk.start, chunk.end

    verifier = CitationVerifier(
        scorer,
        store.document_language,
        chunk_span,
        support_threshold=settings.answer.support_threshold,
        gate=gate,
    )
    return AnswerChain(
        retrieve_passages=retriever.retrieve,
        generator=generator,
        scorer=scorer,
        verifier=verifier,
        language_of=store.document_language,
        settings=settings,
        retrieval_mode=retriever.mode,
        windows_of=store.windows if isinstance(store, WindowReader) else None,
        query_vector=store.query_vector if hybrid and isinstance(store, WindowReader) else None,
        # The windows' MaxSim only when the answer score weighs it (`rag.evidence.MAXSIM_WEIGHT`).
        window_token_matches=store.window_token_matches
        if hybrid and isinstance(store, TokenReader) and evidence.MAXSIM_WEIGHT > 0
        else None,
        gate=gate,
    )
