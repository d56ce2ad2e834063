"""The PostgreSQL store's errors for people: one line each, naming the setting, never the password."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError

from index import pg_schema
from index.build import build_index
from index.config import IndexConfig
from index.errors import IndexFormatError, IndexNotFoundError
from index.pg_local import free_port
from index.pg_schema import StoreConnectionError
from index.stores import open_store


def _config(url: str, tmp_path: Path) -> IndexConfig:
    return IndexConfig(index_dir=tmp_path / "unused", store_url=url, embedding_model="", show_progress=False)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "RAG_INDEX__STORE_URL" in message
    return message


def _docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Le Rhône traverse Lyon.", encoding="utf-8")
    return folder


def test_store_url_must_be_empty_or_postgresql() -> None:
    with pytest.raises(ValidationError, match="PostgreSQL URL"):
        IndexConfig(store_url="mysql://x@y/z")
    assert IndexConfig(store_url=" postgres://u@h/d ").store_url == "postgres://u@h/d"
    assert not IndexConfig().uses_postgres


def test_unreachable_server(tmp_path: Path) -> None:
    url = f"postgresql://rag:s3cret@127.0.0.1:{free_port()}/rag"
    with pytest.raises(StoreConnectionError, match="Cannot reach") as info:
        open_store(_config(url, tmp_path))
    assert "s3cret" not in _one_line(info) and "rag:***@127.0.0.1" in str(info.value)
    with pytest.raises(StoreConnectionError, match="Cannot reach"):
        build_index([_docs(tmp_path)], _config(url, tmp_path))


def test_authentication_failed_and_missing_database(pg_server, tmp_path: Path) -> None:  # noqa: ANN001
    hba = pg_server.data_dir / "pg_hba.conf"
    hba.write_text("host all rag_pw 127.0.0.1/32 scram-sha-256\n" + hba.read_text())
    with psycopg.connect(pg_server.url, autocommit=True) as conn:
        conn.execute("CREATE ROLE rag_pw LOGIN PASSWORD 'right'")
        conn.execute("SELECT pg_reload_conf()")
    base = f"postgresql://rag_pw:wrong@127.0.0.1:{pg_server.port}/postgres"
    with pytest.raises(StoreConnectionError, match="authentication failed") as info:
        open_store(_config(base, tmp_path))
    assert "wrong" not in _one_line(info)
    missing = f"postgresql://postgres@127.0.0.1:{pg_server.port}/no_such_db"
    with pytest.raises(StoreConnectionError, match="does not exist") as info:
        open_store(_config(missing, tmp_path))
    assert "createdb" in _one_line(info)


def test_pgvector_missing_says_create_extension(pg_server, pg_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    database = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE ROLE rag_plain LOGIN")
        conn.execute(f'REVOKE CREATE ON DATABASE "{database}" FROM PUBLIC')
    url = f"postgresql://rag_plain@127.0.0.1:{pg_server.port}/{database}"
    with pytest.raises(StoreConnectionError, match="pgvector is missing") as info:
        build_index([_docs(tmp_path)], _config(url, tmp_path))
    assert "CREATE EXTENSION vector" in _one_line(info)


def test_empty_database_says_how_to_build(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="rag index"):
        open_store(_config(pg_url, tmp_path))


def test_schema_newer_than_the_code(pg_url: str, tmp_path: Path) -> None:
    config = _config(pg_url, tmp_path)
    build_index([_docs(tmp_path)], config)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE rag_schema SET version = 99")
    with pytest.raises(IndexFormatError, match="newer than this program") as info:
        open_store(config)
    assert "upgrade rag-fr" in _one_line(info)
    with pytest.raises(IndexFormatError, match="newer"):
        build_index([], config)


def test_schema_older_than_the_code_is_migrated_by_the_next_write(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(pg_url, tmp_path)
    docs = _docs(tmp_path)
    build_index([docs], config)
    # The next release adds a migration: a reader of the old schema is told to run `rag index` once.
    next_version = pg_schema.SCHEMA_VERSION + 1
    monkeypatch.setattr(pg_schema, "SCHEMA_VERSION", next_version)
    monkeypatch.setattr(
        pg_schema, "MIGRATIONS", [*pg_schema.MIGRATIONS, "ALTER TABLE rag_documents ADD COLUMN note text"]
    )
    with pytest.raises(IndexFormatError, match="older than this program") as info:
        open_store(config)
    assert "rag index" in _one_line(info)
    (docs / "b.txt").write_text("La Saône rejoint le Rhône.", encoding="utf-8")
    report = build_index([], config)
    assert report.new_files == 1 and report.files == 2
    store = open_store(config)
    assert store.chunks[store.search_lexical("Saône", 1)[0][0]].doc_id == "b.txt"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version FROM rag_schema").fetchone()[0] == next_version
        conn.execute("SELECT note FROM rag_documents")
