"""The folder layout of an index: generation folders and the CURRENT pointer (shared by reader and writer).

Layout of `index_dir`:
    CURRENT            name of the live generation (switched with os.replace: atomic)
    LOCK               held (fcntl.flock) by the one process that writes
    gen-<time>-<id>/   manifest.json, documents.jsonl (texts: offsets can be shown), chunks.jsonl,
                       bm25.json + bm25.npz, vectors.faiss (hybrid mode only)
"""

from __future__ import annotations

from pathlib import Path

CURRENT_FILE = "CURRENT"
LOCK_FILE = "LOCK"
GENERATION_PREFIX = "gen-"
TEMP_PREFIX = ".tmp-"
VECTORS_FILE = "vectors.faiss"
DOCUMENTS_FILE = "documents.jsonl"
CHUNKS_FILE = "chunks.jsonl"


def current_generation(index_dir: Path) -> Path | None:
    """The folder CURRENT points at, None when there is no index yet."""
    try:
        name = (index_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return index_dir / name if name else None
