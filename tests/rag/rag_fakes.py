"""An in-memory `index.protocols.IndexReader`, for unit tests that must not depend on the indexer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from index.language import document_language
from index.lexical import BM25Index, analyze
from index.protocols import DocumentInfo
from index.records import Chunk


class FakeStore:
    def __init__(
        self, documents: dict[str, str], spans: dict[str, list[tuple[int, int]]] | None = None, embedder=None
    ) -> None:
        self._texts = dict(documents)
        self.chunks: list[Chunk] = []
        for doc_id, text in documents.items():
            doc_spans = (spans or {}).get(doc_id) or [(0, len(text))]
            for ordinal, (start, end) in enumerate(doc_spans):
                chunk_id = hashlib.sha1(f"{doc_id}:{start}:{end}".encode()).hexdigest()[:16]
                self.chunks.append(
                    Chunk(chunk_id, doc_id, f"/docs/{doc_id}", doc_id, text[start:end], start, end, ordinal)
                )
        self._rows = {c.chunk_id: i for i, c in enumerate(self.chunks)}
        self._languages = {d: document_language(t) for d, t in documents.items()}
        self.bm25 = BM25Index().build(
            [analyze(c.text, language=self._languages[c.doc_id]) for c in self.chunks]
        )
        self.embedder = embedder
        self.mode = "hybrid" if embedder is not None else "lexical"
        self.main_language = document_language(" ".join(documents.values()))
        self._vectors = embedder.embed_passages([c.text for c in self.chunks]) if embedder else None

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[self._rows[chunk_id]]

    def chunk_index(self, chunk_id: str) -> int:
        return self._rows[chunk_id]

    def document_text(self, doc_id: str) -> str:
        return self._texts[doc_id]

    def document_language(self, doc_id: str) -> str:
        return self._languages[doc_id]

    def corpus_languages(self) -> set[str]:
        return {self._languages[c.doc_id] for c in self.chunks}

    def documents(self) -> list[DocumentInfo]:
        return [
            DocumentInfo(doc_id, f"/docs/{doc_id}", doc_id, self._languages[doc_id], "", 1, len(text))
            for doc_id, text in self._texts.items()
        ]

    def document_count(self) -> int:
        return len({chunk.doc_id for chunk in self.chunks})

    def term_document_frequencies(self) -> dict[str, int]:
        return self.bm25.document_frequencies()

    def search_lexical(
        self, query: str, k: int, language: str | None = None, *, fix_unknown: bool = True
    ) -> list[tuple[int, float]]:
        return self.bm25.search(analyze(query, language=language), k)

    def search_dense(self, query: str, k: int) -> list[tuple[int, float]]:
        if self._vectors is None:
            return []
        scores = self._vectors @ np.asarray(self.embedder.embed_query(query))
        order = np.argsort(-scores)[:k]
        return [(int(i), float(scores[i])) for i in order]


def sentence_spans(text: str, size: int, overlap: int) -> list[tuple[int, int]]:
    """Character windows of `size` with `overlap`, cut on spaces: overlapping chunks for merge tests."""
    spans = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.rfind(" ", start + 1, end)
            end = cut if cut > start else end
        spans.append((start, end))
        if end >= len(text):
            break
        nxt = max(start + 1, end - overlap)
        space = text.find(" ", nxt)
        start = space + 1 if 0 <= space < end else nxt
    return spans


def lexical_settings(index_dir: Path, **retrieval: object):
    from rag.settings import load_settings

    overrides = {"index.index_dir": str(index_dir), "index.embedding_model": "", "index.show_progress": False}
    overrides.update({f"retrieval.{key}": value for key, value in retrieval.items()})
    return load_settings(environ={}, overrides=overrides)
