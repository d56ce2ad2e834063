"""The manifest of an index generation: what built it and from which files (manifest.json, plain JSON).

It lets a later run decide what to re-embed (per-file size, mtime and content hash, with the ids of the
file's chunks), refuse to mix embedding models, and detect an index written by another format version.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from index.errors import IndexFormatError

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(slots=True)
class FileEntry:
    """One indexed file. `size` and `mtime_ns` let a run skip hashing files that did not change."""

    doc_id: str
    source: str
    root: str
    content_hash: str
    size: int
    mtime_ns: int
    language: str
    title: str
    chunk_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Manifest:
    mode: str  # "hybrid" (FAISS vectors + BM25) or "lexical" (BM25 only)
    embedding: dict[str, Any] | None  # model, dimension, query_prompt, passage_prompt; None in lexical mode
    chunking: dict[str, Any]  # chunk_size_tokens, chunk_overlap_tokens, tokenizer, splitter version
    analyzer: dict[str, Any]
    bm25: dict[str, float]
    roots: list[str] = field(default_factory=list)
    files: dict[str, FileEntry] = field(default_factory=dict)
    vector_index: str | None = None  # FAISS index type: "flat_ip" or "hnsw_ip"
    # Files that could not be read, by path: {"size", "mtime_ns", "reason"}; retried only when they change.
    skipped: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunk_count: int = 0
    # Version of index.instructions that flagged the chunks; 0: an index written before the flag existed.
    instruction_detector: int = 0
    created_at: str = field(default_factory=utc_now)
    updated_at: str = field(default_factory=utc_now)
    format_version: int = FORMAT_VERSION

    @property
    def embedding_model(self) -> str | None:
        return self.embedding["model"] if self.embedding else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    def write(self, directory: Path) -> None:
        (directory / MANIFEST_FILE).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexFormatError(
                f"The index manifest {path} cannot be read ({exc}). Rebuild the index: rag index --rebuild <folders>."
            ) from exc
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            raise IndexFormatError(
                f"The index in {directory.parent} has format version {version!r}; this program reads version "
                f"{FORMAT_VERSION}. Rebuild it with: rag index --rebuild <folders> (or delete {directory.parent})."
            )
        try:
            files = {doc_id: FileEntry(**entry) for doc_id, entry in data.pop("files", {}).items()}
            return cls(files=files, **data)
        except (TypeError, AttributeError, ValueError) as exc:
            raise IndexFormatError(
                f"The index manifest {path} is damaged ({exc}). Rebuild the index: rag index --rebuild <folders>."
            ) from exc
