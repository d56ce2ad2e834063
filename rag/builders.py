"""Builder functions: each stage is constructed from the settings and the collaborators it needs, all
passed in (constructor injection). The `Assistant` calls these; tests call them with fakes.

Nothing here decides anything twice: the retrieval mode and the documents' languages come from the opened
store (`index.protocols.IndexReader`), the marker grammar from `rag.markers`.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from index.protocols import IndexReader
from rag.backends.base import Generator
from rag.evidence import CorpusStats, EvidenceScorer
from rag.protocols import LanguageOf, Reranker, Retriever, TextEmbedder
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.chain import AnswerChain
    from rag.retrieval import HybridRetriever


def build_scorer(store: IndexReader) -> EvidenceScorer:
    """Evidence scoring with the index's own document frequencies (nothing is analysed again)."""
    return EvidenceScorer(CorpusStats(Counter(store.term_document_frequencies()), len(store.chunks)))


def build_answer_embedder(store: IndexReader) -> TextEmbedder | None:
    """The store's model behind a memo (sentence picking and citation checks re-embed the same
    sentences); None in lexical mode."""
    if store.embedder is None:
        return None
    from rag.vector_cache import CachedEmbedder

    return CachedEmbedder(store.embedder)


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
    embedder: TextEmbedder | None,
) -> Generator:
    """The generator of `backend`; the extractive one is given the index's evidence statistics."""
    if backend == "extractive":
        from rag.backends.extractive import ExtractiveGenerator

        return ExtractiveGenerator(scorer, language_of=language_of, embedder=embedder)
    from rag.backends import make_generator

    return make_generator(settings, backend)


def build_chain(
    settings: Settings,
    store: IndexReader,
    retriever: Retriever,
    generator: Generator,
    scorer: EvidenceScorer,
    embedder: TextEmbedder | None,
) -> AnswerChain:
    """The answering chain of one generator over one opened index."""
    from rag.chain import AnswerChain
    from rag.citations import CitationVerifier

    def chunk_span(chunk_id: str) -> tuple[int, int]:
        chunk = store.chunk(chunk_id)
        return chunk.start, chunk.end

    verifier = CitationVerifier(
        scorer,
        store.document_language,
        chunk_span,
        embedder=embedder,
        support_threshold=settings.answer.support_threshold,
    )
    return AnswerChain(
        retrieve_passages=retriever.retrieve,
        generator=generator,
        scorer=scorer,
        verifier=verifier,
        language_of=store.document_language,
        settings=settings,
        retrieval_mode=retriever.mode,
    )
