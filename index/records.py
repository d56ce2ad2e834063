"""Typed records that flow between the indexing stages."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Section:
    """A span of a document's text that shares one location: a PDF page or a Markdown/HTML heading path."""

    start: int
    end: int
    heading_path: tuple[str, ...] = ()
    page: int | None = None  # 1-based, PDFs only


@dataclass(slots=True)
class Document:
    """One loaded file. `text` is what chunk offsets point into; `doc_id` is the path relative to its root."""

    doc_id: str
    source: str  # absolute path of the file
    title: str
    text: str
    content_hash: str  # sha256 of the file's bytes
    sections: list[Section] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A passage of a document. Invariant: `document.text[start:end] == text`."""

    chunk_id: str  # stable: derived from doc_id, content hash and offsets
    doc_id: str
    source: str
    title: str
    text: str
    start: int
    end: int
    ordinal: int  # position of the chunk within its document
    heading_path: tuple[str, ...] = ()
    page: int | None = None
    # Text that gives instructions to an AI assistant (prompt injection), see index.instructions.
    instruction_like: bool = False
