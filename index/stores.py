"""The one place that chooses the store from the settings: the folder `index.index_dir` when
`index.store_url` is empty, the PostgreSQL database it names otherwise (`index.pg_store`).

Both sides implement the same contracts (`index.protocols`): callers never branch on the store.
"""

from __future__ import annotations

from index.config import IndexConfig
from index.embedding import Embedder
from index.protocols import IndexReader, IndexWriter


def open_store(
    config: IndexConfig, *, embedder: Embedder | None = None, load_model: bool = True
) -> IndexReader:
    """Open the index `config` points at, for reading (see `IndexStore.open` for `embedder`/`load_model`)."""
    if config.uses_postgres:
        from index.pg_store import PostgresStore

        return PostgresStore.open(config.store_url, config=config, embedder=embedder, load_model=load_model)
    from index.store import IndexStore

    return IndexStore.open(
        config.resolved_index_dir(), config=config, embedder=embedder, load_model=load_model
    )


def store_location(config: IndexConfig) -> str:
    """Where the index lives, for messages (a database URL without its password)."""
    if config.uses_postgres:
        from index.pg_schema import redact

        return redact(config.store_url)
    return str(config.resolved_index_dir())


def open_writer(config: IndexConfig) -> IndexWriter:
    """The writer `build_index` uses for the index `config` points at."""
    if config.uses_postgres:
        from index.pg_store import PostgresIndexWriter

        return PostgresIndexWriter(config.store_url)
    from index.writer import FolderIndexWriter

    return FolderIndexWriter(config.resolved_index_dir())
