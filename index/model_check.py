"""Which embedding model an index is read or updated with: the one model-mismatch check, and the one place
an opened index gets its model loaded.

An index's vectors are only meaningful to the model that made them. Opening or updating an index with
another model is refused with a message saying how to fix it (restore the model or rebuild); nothing here
ever re-embeds or drops vectors silently.
"""

from __future__ import annotations

from pathlib import Path

from index.config import IndexConfig
from index.embedding import Embedder, load_embedder
from index.errors import IndexMismatchError


def same_model(built_with: str | None, configured: str | None) -> bool:
    """The same model name, or two paths to the same local folder."""
    if (built_with or "") == (configured or ""):
        return True
    if not built_with or not configured:
        return False
    a, b = Path(built_with).expanduser(), Path(configured).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def check_same_model(built_with: str | None, model: str | None, where: str) -> None:
    """IndexMismatchError unless `model` (configured or given) is the one the index at `where` was built
    with. Nothing to check when either is empty (a lexical index, or lexical-only chosen)."""
    if built_with and model and not same_model(built_with, model):
        raise IndexMismatchError(
            f"The index in {where} was built with the embedding model {built_with!r}, but {model!r} is "
            f"configured. Either rebuild the index with the new model (rag index --rebuild <folders>) or set "
            f"RAG_INDEX__EMBEDDING_MODEL={built_with!r} back."
        )


def check_dimension(dimension: int, embedder: Embedder, where: str) -> None:
    if embedder.dimension != dimension:
        raise IndexMismatchError(
            f"The index in {where} holds {dimension}-dimensional vectors; the model {embedder.name!r} makes "
            f"{embedder.dimension}. Rebuild it: rag index --rebuild <folders>."
        )


def embedder_for_index(
    built_with: str | None,
    config: IndexConfig | None,
    embedder: Embedder | None,
    *,
    load_model: bool,
    where: str,
) -> Embedder | None:
    """The model to search an index built with `built_with` (None: lexical index): the one given, else (when
    `load_model`) the configured one, or the index's own when `config` is None. None when lexical-only is
    chosen (`config.embedding_model == ""`) or the model cannot be loaded (a warning is printed)."""
    if config is not None:
        check_same_model(built_with, config.embedding_model, where)
    if embedder is not None:
        check_same_model(built_with, embedder.name, where)
        return embedder
    if not built_with or not load_model:
        return None
    if config is None:
        return load_embedder(IndexConfig(embedding_model=built_with))
    return load_embedder(config) if config.embedding_model else None
