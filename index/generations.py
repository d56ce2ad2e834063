"""The folder layout of an index: generation folders and the CURRENT pointer (shared by reader and writer).

Layout of `index_dir`:
    CURRENT            name of the live generation (switched with os.replace: atomic)
    LOCK               held (fcntl.flock) by the one process that writes
    gen-<time>-<id>/   manifest.json, documents.jsonl (texts: offsets can be shown), chunks.jsonl,
                       bm25.json + bm25.npz, vectors.faiss (hybrid mode only)

The chunk table (chunks.jsonl, one row per chunk in row order) has the columns chunk_id, doc_id, start, end
(offsets into the document's text), ordinal, heading_path, page and instruction_like (bool: the chunk gives
orders to an AI assistant, see index.instructions; absent in indexes of before: read as false). Any other
store of chunks (PostgreSQL) keeps the same columns. What a reader checks: index.integrity.
"""

from __future__ import annotations

from pathlib import Path

from index.errors import IndexFormatError, IndexPathError

CURRENT_FILE = "CURRENT"
LOCK_FILE = "LOCK"
GENERATION_PREFIX = "gen-"
TEMP_PREFIX = ".tmp-"
VECTORS_FILE = "vectors.faiss"
DOCUMENTS_FILE = "documents.jsonl"
CHUNKS_FILE = "chunks.jsonl"
REBUILD_HINT = "Rebuild it: rag index --rebuild <folders>."


def _not_a_folder(index_dir: Path) -> IndexPathError:
    return IndexPathError(
        f"The index folder {index_dir} is a file, not a folder. Give another folder with --index-dir "
        "(setting index.index_dir)."
    )


def check_index_dir(index_dir: Path) -> None:
    """Raise IndexPathError when `index_dir` is a file (nothing is read or written there)."""
    if index_dir.exists() and not index_dir.is_dir():
        raise _not_a_folder(index_dir)


def make_index_dir(index_dir: Path) -> None:
    """Create the index folder, or say in one line why it cannot be (a file in the way, no permission)."""
    check_index_dir(index_dir)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexPathError(
            f"The index folder {index_dir} cannot be created ({exc.strerror or exc}). Give a folder you can "
            "write to with --index-dir (setting index.index_dir)."
        ) from exc


def current_generation(index_dir: Path) -> Path | None:
    """The live generation's folder, or None when there is no index. CURRENT may only name a generation
    folder directly inside `index_dir`: a pointer elsewhere (`../`, an absolute path, a symlink leading
    out) is damage or tampering, never followed."""
    try:
        name = (index_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexFormatError(
            f"The index pointer {index_dir / CURRENT_FILE} cannot be read ({exc}). {REBUILD_HINT}"
        ) from exc
    if not name:
        return None
    generation = index_dir / name
    if (
        "/" in name
        or "\\" in name
        or not name.startswith(GENERATION_PREFIX)
        or generation.is_symlink()
        or (generation.exists() and generation.resolve().parent != index_dir.resolve())
    ):
        raise IndexFormatError(
            f"The index pointer {index_dir / CURRENT_FILE} names {name[:80]!r}, which is not a generation "
            f"folder of {index_dir}. {REBUILD_HINT}"
        )
    return generation
