"""Checks that an index generation read from disk is whole and self-consistent, before anything searches it.

The files of a generation are data a user can damage (a disk error, a copy cut short, an edit by hand,
a hostile folder). Every way of reading them wrong becomes one `IndexFormatError` naming the file and the
fault, with the fix: `rag index --rebuild`. Checked here: no file of the generation is a symlink (a
generation holds only files its writer made), chunk offsets fall inside their document's text, the manifest
agrees with the chunk table (count, chunk ids, documents), the BM25 arrays have integer row numbers inside
the chunk table (`BM25Index.check`), and the vectors file exists in hybrid mode with one vector per chunk of
the manifest's dimension (its size is checked before FAISS reads it, so a lying header cannot make FAISS
allocate without bound), and the token vectors (`tokens.npz`, when present) have one block per chunk, each
token inside its chunk, of the vectors' dimension. Reading stays read-only: nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from index.errors import IndexFormatError
from index.generations import REBUILD_HINT
from index.manifest import Manifest
from index.records import Chunk, Document
from index.tokens import TOKENS_FILE, TokenTable

if TYPE_CHECKING:
    import faiss

MODES = ("hybrid", "lexical")


def damaged(index_dir: Path | str, fault: str) -> IndexFormatError:
    """The one error of a damaged index: where, what, and the fix, on one line."""
    fault = " ".join(str(fault).split())[:300]
    return IndexFormatError(f"The index in {index_dir} is damaged: {fault}. {REBUILD_HINT}")


def refuse_symlinks(index_dir: Path, generation: Path) -> None:
    for entry in generation.iterdir():
        if entry.is_symlink():
            raise damaged(
                index_dir, f"{entry.name} is a symbolic link (an index generation holds only its own files)"
            )


def check_documents(index_dir: Path, documents: Sequence[Document]) -> None:
    seen: set[str] = set()
    for doc in documents:
        if not isinstance(doc.text, str) or not isinstance(doc.doc_id, str):
            raise damaged(index_dir, f"documents.jsonl has a row without text or id ({doc.doc_id!r:.60})")
        if doc.doc_id in seen:
            raise damaged(index_dir, f"documents.jsonl lists {doc.doc_id!r:.60} twice")
        seen.add(doc.doc_id)
        for section in doc.sections:
            if not _span_inside(section.start, section.end, len(doc.text)):
                raise damaged(index_dir, f"a section of {doc.doc_id!r:.60} lies outside its text")


def _span_inside(start: object, end: object, length: int) -> bool:
    return (
        isinstance(start, int)
        and isinstance(end, int)
        and not isinstance(start, bool)
        and not isinstance(end, bool)
        and 0 <= start <= end <= length
    )


def check_chunk_row(index_dir: Path, row: dict, document: Document) -> None:
    """Before a chunk is built from a row of chunks.jsonl: its offsets must lie inside its document."""
    if not _span_inside(row.get("start"), row.get("end"), len(document.text)):
        raise damaged(
            index_dir,
            f"chunk {str(row.get('chunk_id'))[:40]!r} has offsets {row.get('start')!r:.20}..{row.get('end')!r:.20} "
            f"outside the {len(document.text)} characters of {document.doc_id!r:.60}",
        )


def check_manifest(
    index_dir: Path, manifest: Manifest, chunks: Sequence[Chunk], doc_ids: Iterable[str]
) -> None:
    if manifest.mode not in MODES:
        raise damaged(index_dir, f"manifest.json has the mode {manifest.mode!r:.30}, not hybrid or lexical")
    if manifest.mode == "hybrid" and not (
        isinstance(manifest.embedding, dict) and isinstance(manifest.embedding.get("dimension"), int)
    ):
        raise damaged(index_dir, "manifest.json says hybrid but names no embedding dimension")
    if manifest.chunk_count != len(chunks):
        raise damaged(
            index_dir,
            f"manifest.json counts {manifest.chunk_count!r:.20} chunks, chunks.jsonl holds {len(chunks)}",
        )
    chunk_ids = {chunk.chunk_id for chunk in chunks}
    if len(chunk_ids) != len(chunks):
        raise damaged(index_dir, "chunks.jsonl repeats a chunk id")
    known_docs = set(doc_ids)
    for doc_id, entry in manifest.files.items():
        if doc_id not in known_docs:
            raise damaged(
                index_dir, f"manifest.json lists {doc_id!r:.60}, which documents.jsonl does not hold"
            )
        if not isinstance(entry.chunk_ids, list) or not set(entry.chunk_ids) <= chunk_ids:
            raise damaged(
                index_dir, f"manifest.json names chunks of {doc_id!r:.60} that chunks.jsonl does not hold"
            )


def flat_file_size(dimension: int, count: int) -> int:
    """Bytes of a FAISS IndexFlatIP file of `count` vectors: an empty one's header + 4 bytes per value."""
    import faiss

    return len(faiss.serialize_index(faiss.IndexFlatIP(dimension))) + 4 * dimension * count


def read_vectors(index_dir: Path, path: Path, manifest: Manifest, count: int) -> faiss.Index:
    """The FAISS index of a hybrid generation, checked against the manifest (dimension, kind) and `count`."""
    if not path.is_file():
        raise damaged(index_dir, f"the manifest says hybrid but {path.name} is missing")
    dimension = (manifest.embedding or {}).get("dimension")
    if not isinstance(dimension, int) or isinstance(dimension, bool) or not 0 < dimension <= 65_536:
        raise damaged(index_dir, f"manifest.json has the embedding dimension {dimension!r:.20}")
    size = path.stat().st_size
    if manifest.vector_index in (None, "flat_ip") and size != flat_file_size(dimension, count):
        raise damaged(
            index_dir,
            f"{path.name} has {size} bytes; {count} vectors of dimension {dimension} take "
            f"{flat_file_size(dimension, count)}",
        )
    from index.vector_index import read_vector_index

    try:
        index = read_vector_index(path)
    except (RuntimeError, MemoryError, OSError) as exc:
        raise damaged(index_dir, f"{path.name} cannot be read ({str(exc).splitlines()[0][:160]})") from exc
    if index.ntotal != count or index.d != dimension:
        raise damaged(
            index_dir,
            f"{path.name} holds {index.ntotal} vectors of dimension {index.d}; the chunk table and the manifest "
            f"say {count} of dimension {dimension}",
        )
    return index


def check_tokens(
    index_dir: Path, generation: Path, chunks: Sequence[Chunk], dimension: int
) -> TokenTable | None:
    """The token vectors of a hybrid generation (None when it has none: an index written before them),
    checked against the chunk table and the vectors' dimension."""
    import zipfile

    import numpy as np

    try:
        table = TokenTable.load(generation)
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise damaged(index_dir, f"{TOKENS_FILE} cannot be read ({type(exc).__name__}: {exc})") from exc
    if table is None:
        return None
    spans = np.array([(chunk.start, chunk.end) for chunk in chunks], dtype=np.int64).reshape(-1, 2)
    fault = table.fault(spans, dimension)
    if fault is not None:
        raise damaged(index_dir, fault)
    return table
