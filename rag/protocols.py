"""The contracts the assistant wires together: small Protocols, implemented by the real stages and by the
test fakes alike (a contract test runs each on both).

- `index.protocols.IndexReader`: the opened index (folder or PostgreSQL store; `tests/rag/rag_fakes.FakeStore`).
- `Retriever`: question -> numbered passages (`rag.retrieval.HybridRetriever`).
- `Reranker`: reorders fused candidates (`rag.rerank.CrossEncoderReranker`).
- `rag.backends.base.Generator` (an ABC: backends share code through it): request -> streamed answer text.
- `rag.evidence.EvidenceScorer` is one concrete class: there is one way to score evidence.

Keep them small: a member is added only when a caller needs it, in every implementation at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rag.records import Passage

LanguageOf = Callable[[str], str]
"""doc_id -> the document's language, decided once at indexing time (`IndexReader.document_language`)."""


class Retriever(Protocol):
    @property
    def mode(self) -> str:
        """ "hybrid" or "lexical": the store's mode, decided when it was opened."""
        ...

    def retrieve(
        self, question: str, language: str, k: int | None = None, *, merge: bool = True
    ) -> list[Passage]:
        """The passages of the `k` best chunks, numbered from 1 (touching chunks merged unless `merge` is
        False)."""
        ...


class Reranker(Protocol):
    def rerank(self, question: str, candidates: Sequence[tuple[int, str]]) -> list[tuple[int, float]]:
        """(row, text) candidates -> (row, score), best first."""
        ...
