"""Typed records of the answering side: what retrieval returns and what an answer is made of.

A citation points at a chunk id and character offsets in the chunk's document, never at a string that
would have to be found again by search.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class Passage:
    """A retrieved passage: one chunk, or several overlapping/adjacent chunks of one document merged."""

    number: int  # 1-based number shown to the model and the user: the n of "[n]"
    chunk_ids: list[str]
    doc_id: str
    source: str
    title: str
    text: str
    start: int  # offsets into the document's text: document.text[start:end] == text
    end: int
    score: float  # fused retrieval score (higher is better)
    heading_path: list[str] = field(default_factory=list)
    page: int | None = None
    scores: dict[str, float] = field(default_factory=dict)  # per retriever: dense, lexical, rerank
    # A chunk of it gives instructions to an AI assistant (index.instructions): shown with a warning, never
    # quoted as an answer by the extractive backend, marked as untrusted in LLM prompts.
    instruction_like: bool = False


@dataclass(slots=True)
class Citation:
    """One `[n]` marker of the answer, resolved to the passage it names and checked against it."""

    marker: int  # the n of [n]
    chunk_id: str  # the chunk of the passage that holds the supporting span
    doc_id: str
    source: str
    sentence: str  # the answer sentence that carries the marker
    quote: str  # the supporting span of the passage, verbatim
    start: int  # offsets of `quote` in the document's text
    end: int
    support: float  # 0..1: how well `quote` supports `sentence`
    supported: bool  # support above the verification threshold


@dataclass(slots=True)
class CitationReport:
    """What verification found beyond the valid citations."""

    dropped_markers: list[int] = field(default_factory=list)  # [n] that point at no passage
    unsupported: list[int] = field(
        default_factory=list
    )  # markers whose passage does not support the sentence
    uncited_sentences: list[str] = field(default_factory=list)  # answer sentences with no marker


def _plain(record: Any) -> dict[str, Any]:
    """A record's fields as a dict, values as they are (the caller copies its list and dict fields)."""
    return {name: getattr(record, name) for name in record.__slots__}


@dataclass(slots=True)
class Answer:
    question: str
    standalone_question: str  # the question after condensing it with the history
    text: str
    language: str  # ISO 639-1 code of the question (and answer)
    citations: list[Citation]
    passages: list[Passage]  # everything shown to the model, in number order
    abstained: bool
    verification: CitationReport = field(default_factory=CitationReport)
    timings: dict[str, float] = field(
        default_factory=dict
    )  # seconds per stage: condense, retrieve, generate...
    backend: str = ""
    retrieval_mode: str = ""  # "hybrid" or "lexical"

    def to_dict(self) -> dict[str, Any]:
        """`dataclasses.asdict` of the answer, built field by field: asdict deep-copies every value it walks
        (0.35 ms for an answer of 5 passages, a tenth of that here), and the chat saves each answer so."""
        verification = self.verification
        return {
            "question": self.question,
            "standalone_question": self.standalone_question,
            "text": self.text,
            "language": self.language,
            "citations": [_plain(citation) for citation in self.citations],
            "passages": [
                {
                    **_plain(passage),
                    "chunk_ids": list(passage.chunk_ids),
                    "heading_path": list(passage.heading_path),
                    "scores": dict(passage.scores),
                }
                for passage in self.passages
            ],
            "abstained": self.abstained,
            "verification": {
                "dropped_markers": list(verification.dropped_markers),
                "unsupported": list(verification.unsupported),
                "uncited_sentences": list(verification.uncited_sentences),
            },
            "timings": dict(self.timings),
            "backend": self.backend,
            "retrieval_mode": self.retrieval_mode,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Answer:
        """The inverse of `to_dict` (a kept conversation, a feedback record read back)."""
        fields = dict(data)
        fields["citations"] = [Citation(**c) for c in fields.get("citations") or []]
        fields["passages"] = [Passage(**p) for p in fields.get("passages") or []]
        fields["verification"] = CitationReport(**(fields.get("verification") or {}))
        return cls(**fields)

    @property
    def cited_passages(self) -> list[Passage]:
        cited = {c.marker for c in self.citations}
        return [p for p in self.passages if p.number in cited]
