"""The folder store's writer: generations written atomically, one writer at a time (`FolderIndexWriter`).

A writer fills a hidden temporary folder, fsyncs every file, renames it to its generation name, then
points CURRENT at it; only after that are older generations deleted. An update (`Generation.kept`) is
completed from the previous generation with numpy (`complete_update`): the kept rows' BM25 postings,
vectors and windows are array slices, and an HNSW index that loses no row is copied and extended rather
than built again. A crash or Ctrl-C at any point
leaves CURRENT on a complete generation, so the previous index stays loadable. Nothing is pickled:
FAISS has its own binary format, the rest is JSON and plain npz arrays. Layout: `index.generations`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.checkpoint import CHECKPOINT_DIR
from index.errors import IndexLockedError, IndexNotFoundError, IndexWriteError
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
from index.vector_index import vector_index_kind, write_vector_index

if TYPE_CHECKING:
    import faiss


class FolderIndexWriter:
    """`IndexWriter` of the folder store in `index_dir` (see `index.protocols.IndexWriter`)."""

    #: It stores sentence windows (`index.protocols.WindowReader`): the build finds and embeds them.
    keeps_windows = True
    #: It stores token vectors (`index.protocols.TokenReader`) in hybrid mode.
    keeps_tokens = True

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._previous: IndexStore | None = None  # what `read_previous` returned: an update completes it

    @property
    def location(self) -> str:
        return str(self.index_dir)

    def lock(self) -> contextlib.AbstractContextManager[None]:
        return index_lock(self.index_dir)

    @property
    def checkpoint_dir(self) -> Path:
        """Where `build_index` keeps the embeddings of a run until its generation is written."""
        return self.index_dir / CHECKPOINT_DIR

    def read_previous(self) -> IndexStore | None:
        try:
            self._previous = IndexStore.open(self.index_dir, load_model=False)
        except IndexNotFoundError:
            self._previous = None
        return self._previous

    def write(self, generation: Generation) -> None:
        vector_index = None
        if generation.kept is not None:
            previous = self._previous or self.read_previous()
            if previous is None:
                raise IndexNotFoundError(f"An update of the index in {self.index_dir}, which holds none.")
            generation, vector_index = complete_update(previous, generation)
        write_generation(self.index_dir, generation, vector_index=vector_index)
        self._previous = None


def write_failure(index_dir: Path, exc: OSError) -> IndexWriteError:
    """The one message of a write that failed for want of room or of permission, naming the fix."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "Free some disk space"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "Make the folder writable"
    else:
        fix = "Fix the folder"
    return IndexWriteError(
        f"Cannot write the index in {index_dir} ({exc.strerror or exc}); the previous index is unchanged. "
        f"{fix}, or set index.index_dir (RAG_INDEX__INDEX_DIR) to another folder, and run rag index again."
    )


@contextlib.contextmanager
def index_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive writer lock; fails at once (IndexLockedError) if another process holds it.

    flock is released by the kernel when the holder dies, so a crashed writer never leaves a stale lock.
    """
    path = index_dir / LOCK_FILE
    try:
        make_index_dir(index_dir)
        handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    except OSError as exc:
        raise write_failure(index_dir, exc) from exc
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


def complete_update(previous: IndexStore, update: Generation) -> tuple[Generation, faiss.Index | None]:
    """The complete generation an update (`Generation.kept`) makes of `previous`: the kept documents in
    their previous order, then the update's; their rows taken from the previous generation's arrays (BM25
    postings, vectors, windows) with numpy. Also the FAISS index to write when the previous one can be
    extended (no row dropped, same kind): (generation, index or None: build it from the vectors)."""
    files = update.manifest.files
    kept = set(update.kept or ())
    doc_ids = sorted(kept, key=previous.document_row)
    documents = []
    for doc_id in doc_ids:
        document = previous.document(doc_id)
        if document.source != files[doc_id].source:  # the file moved: same content, new path
            document = dataclasses.replace(document, source=files[doc_id].source)
        documents.append((document, previous.document_language(doc_id)))
    rows = np.flatnonzero(np.fromiter((chunk.doc_id in kept for chunk in previous.chunks), dtype=bool))
    chunks = [previous.chunks[row] for row in rows.tolist()]
    vectors, vector_index = None, None
    if update.vectors is not None:
        total = len(rows) + len(update.vectors)
        old = previous.vector_index
        assert old is not None  # an update keeps the mode: a hybrid index has vectors
        if len(rows) == old.ntotal and vector_index_kind(total) == vector_index_kind(old.ntotal):
            import faiss

            vector_index = faiss.clone_index(old)
            if len(update.vectors):
                vector_index.add(np.ascontiguousarray(update.vectors, dtype=np.float32))
        else:
            vectors = np.concatenate([old.reconstruct_n(0, old.ntotal)[rows], update.vectors])
    windows = None
    if update.windows is not None:
        assert previous.window_table is not None  # an update requires the previous windows
        doc_rows = np.asarray([previous.document_row(doc_id) for doc_id in doc_ids], dtype=np.int64)
        windows = previous.window_table.take_documents(doc_rows).extended(update.windows, len(doc_ids))
    tokens = None
    if update.tokens is not None:
        assert previous.token_table is not None  # an update requires the previous token vectors
        tokens = previous.token_table.take_rows(rows).extended(update.tokens)
    return (
        Generation(
            manifest=update.manifest,
            documents=documents + update.documents,
            chunks=chunks + update.chunks,
            bm25=previous.bm25.take_rows(rows).extended(update.bm25),
            vectors=vectors,  # None with `vector_index`: the extended index holds them
            windows=windows,
            tokens=tokens,
        ),
        vector_index,
    )


def write_generation(
    index_dir: Path, generation: Generation, *, vector_index: faiss.Index | None = None
) -> Path:
    """Write a complete generation and make it current. Call under `index_lock`. Returns its folder.
    `vector_index`: the FAISS index of `generation.vectors`, when the caller has it already."""
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"{GENERATION_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    temp = index_dir / f"{TEMP_PREFIX}{name}"
    try:
        temp.mkdir()
        _write_jsonl(temp / DOCUMENTS_FILE, [document_row(doc, lang) for doc, lang in generation.documents])
        _write_jsonl(temp / CHUNKS_FILE, [chunk_row(chunk) for chunk in generation.chunks])
        generation.bm25.save(temp)
        _fsync_file(temp / "bm25.npz")
        _fsync_file(temp / "bm25.json")
        if vector_index is not None:
            import faiss

            faiss.write_index(vector_index, str(temp / VECTORS_FILE))
            _fsync_file(temp / VECTORS_FILE)
        elif generation.vectors is not None:
            write_vector_index(generation.vectors, temp / VECTORS_FILE)
            _fsync_file(temp / VECTORS_FILE)
        if generation.windows is not None:
            _fsync_file(generation.windows.save(temp))
        if generation.tokens is not None:  # large tables projected (`TokenTable.compacted`)
            _fsync_file(generation.tokens.compacted().save(temp))
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
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise write_failure(index_dir, exc) from exc
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
