"""The folder store's writer: generations written atomically, one writer at a time (`FolderIndexWriter`).

A writer fills a hidden temporary folder, fsyncs every file, renames it to its generation name, then
points CURRENT at it; only after that are older generations deleted. A crash or Ctrl-C at any point
leaves CURRENT on a complete generation, so the previous index stays loadable. Nothing is pickled:
FAISS has its own binary format, the rest is JSON and plain npz arrays. Layout: `index.generations`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from index.errors import IndexLockedError, IndexNotFoundError
from index.generations import (
    CHUNKS_FILE,
    CURRENT_FILE,
    DOCUMENTS_FILE,
    GENERATION_PREFIX,
    LOCK_FILE,
    TEMP_PREFIX,
    VECTORS_FILE,
    current_generation,
    make_index_dir,
)
from index.protocols import Generation
from index.records import Chunk, Document
from index.store import IndexStore
from index.vector_index import write_vector_index


class FolderIndexWriter:
    """`IndexWriter` of the folder store in `index_dir` (see `index.protocols.IndexWriter`)."""

    #: It stores sentence windows (`index.protocols.WindowReader`): the build finds and embeds them.
    keeps_windows = True

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir

    @property
    def location(self) -> str:
        return str(self.index_dir)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return index_lock(self.index_dir)

    def read_previous(self) -> IndexStore | None:
        try:
            return IndexStore.open(self.index_dir, load_model=False)
        except IndexNotFoundError:
            return None

    def write(self, generation: Generation) -> None:
        write_generation(self.index_dir, generation)


@contextlib.contextmanager
def index_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive writer lock; fails at once (IndexLockedError) if another process holds it.

    flock is released by the kernel when the holder dies, so a crashed writer never leaves a stale lock.
    """
    make_index_dir(index_dir)
    path = index_dir / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no advisory lock, single writer assumed
            pass
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLockedError(
                f"The index in {index_dir} is being written by {holder}. Wait for it to finish and try again."
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        yield
    finally:
        handle.close()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def document_row(document: Document, language: str) -> dict[str, Any]:
    row = asdict(document)
    row["language"] = language
    row["sections"] = [[s.start, s.end, list(s.heading_path), s.page] for s in document.sections]
    return row


def chunk_row(chunk: Chunk) -> dict[str, Any]:
    # The text is not stored twice: it is document.text[start:end].
    return {
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "start": chunk.start,
        "end": chunk.end,
        "ordinal": chunk.ordinal,
        "heading_path": list(chunk.heading_path),
        "page": chunk.page,
        "instruction_like": chunk.instruction_like,
    }


def write_generation(index_dir: Path, generation: Generation) -> Path:
    """Write a complete generation and make it current. Call under `index_lock`. Returns its folder."""
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"{GENERATION_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    temp = index_dir / f"{TEMP_PREFIX}{name}"
    temp.mkdir()
    try:
        _write_jsonl(temp / DOCUMENTS_FILE, [document_row(doc, lang) for doc, lang in generation.documents])
        _write_jsonl(temp / CHUNKS_FILE, [chunk_row(chunk) for chunk in generation.chunks])
        generation.bm25.save(temp)
        _fsync_file(temp / "bm25.npz")
        _fsync_file(temp / "bm25.json")
        if generation.vectors is not None:
            write_vector_index(generation.vectors, temp / VECTORS_FILE)
            _fsync_file(temp / VECTORS_FILE)
        if generation.windows is not None:
            _fsync_file(generation.windows.save(temp))
        generation.manifest.chunk_count = len(generation.chunks)
        _write_text(temp / "manifest.json", generation.manifest.to_json())
        _fsync_dir(temp)
        final = index_dir / name
        os.rename(temp, final)
        _fsync_dir(index_dir)
        pointer = index_dir / f"{CURRENT_FILE}.tmp"
        _write_text(pointer, name + "\n")
        os.replace(pointer, index_dir / CURRENT_FILE)  # the commit point
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    remove_stale_generations(index_dir)
    return final


def remove_stale_generations(index_dir: Path) -> None:
    """Delete generations CURRENT does not point at, and leftovers of interrupted writes. Under the lock."""
    live = current_generation(index_dir)
    for entry in index_dir.iterdir():
        if entry.is_dir() and entry != live and entry.name.startswith((GENERATION_PREFIX, TEMP_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (index_dir / f"{CURRENT_FILE}.tmp").unlink()
