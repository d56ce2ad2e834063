"""The PostgreSQL store's connection, versioned schema and errors for people.

Connecting turns every failure into one line that names the setting (`index.store_url`, environment
RAG_INDEX__STORE_URL) and the fix: server unreachable, authentication failed, database missing, pgvector
missing (with the CREATE EXTENSION hint), schema newer or older than this program. The password of the URL
never appears in a message.

The schema is created and migrated by the writer (`rag index`), under the writers' advisory lock, in the
same transaction as the first write; readers never run DDL and only check the version: a reader needs no
more than SELECT. `MIGRATIONS[i]` takes the schema from version i to i + 1; add one at the end for every
change and never edit a released one.

Tables (prefix `rag_`, so that the store can share a database with other applications):
    rag_schema     the schema version (one row)
    rag_manifest   one row: the manifest as JSON (mode, model, dimension, prompts, chunking, analyzer,
                   roots, skipped files), a generation counter bumped by every write, and the BM25
                   statistics (chunk count, total length in terms)
    rag_documents  one row per file: text (offsets point into it), hashes, size, mtime, language, sections
    rag_chunks     one row per chunk: `row_id` (the integer retrieval ranks by), offsets, its text (a copy
                   of document.text[start:end]), heading path, page, and its analysed terms (ids and
                   counts: lets a write delete its postings by key)
    rag_terms      the lexical vocabulary with document frequencies
    rag_postings   (term_id, row_id) -> term count, chunk length and impact: BM25 ranked in the database;
                   a second index orders each term's postings by impact (its BM25 weight in that chunk, with
                   the average chunk length of `rag_manifest.impact_length`), so that a frequent term is
                   read only for its best chunks (see `index.pg_store.POSTINGS_PER_TERM`)
    rag_windows    one row per sentence window of a document (`index.windows`): its offsets and, in hybrid
                   mode, its vector (float16 bytes, the folder store's layout: read whole per document,
                   never searched, so it needs no pgvector index)
    rag_vectors    row_id -> pgvector `vector(dimension)` with an HNSW index (cosine); created by the first
                   hybrid write, since its type carries the model's dimension
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from index.errors import IndexError_, IndexFormatError

if TYPE_CHECKING:
    import psycopg

SETTING = "index.store_url (RAG_INDEX__STORE_URL)"
SCHEMA_VERSION = 3
# The advisory-lock key the writers of one database share (an arbitrary 63-bit constant, "rag-fr" in ASCII).
WRITER_LOCK_KEY = 0x7261_672D_6672_0001
CONNECT_TIMEOUT_S = 10


class StoreConnectionError(IndexError_):
    """The database of `index.store_url` cannot be reached or used; the message says why and how to fix it."""


MIGRATIONS: list[str] = [
    # 0 -> 1
    """
    CREATE TABLE rag_schema (version integer NOT NULL, migrated_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE rag_manifest (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        generation bigint NOT NULL DEFAULT 0,
        manifest jsonb NOT NULL,
        chunk_count integer NOT NULL DEFAULT 0,
        total_length bigint NOT NULL DEFAULT 0,
        main_language text NOT NULL DEFAULT 'fr',
        updated_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE rag_documents (
        doc_id text PRIMARY KEY,
        source text NOT NULL,
        root text NOT NULL,
        title text NOT NULL,
        text text NOT NULL,
        content_hash text NOT NULL,
        size bigint NOT NULL,
        mtime_ns bigint NOT NULL,
        language text NOT NULL,
        sections jsonb NOT NULL DEFAULT '[]',
        metadata jsonb NOT NULL DEFAULT '{}'
    );
    CREATE TABLE rag_chunks (
        row_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        chunk_id text NOT NULL UNIQUE,
        doc_id text NOT NULL REFERENCES rag_documents (doc_id) ON DELETE CASCADE,
        start_offset integer NOT NULL,
        end_offset integer NOT NULL,
        ordinal integer NOT NULL,
        heading_path text[] NOT NULL DEFAULT '{}',
        page integer,
        term_ids integer[] NOT NULL DEFAULT '{}',
        term_counts integer[] NOT NULL DEFAULT '{}',
        CHECK (0 <= start_offset AND start_offset <= end_offset)
    );
    CREATE INDEX rag_chunks_doc_id ON rag_chunks (doc_id, ordinal);
    CREATE TABLE rag_terms (
        term_id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        term text NOT NULL UNIQUE,
        df integer NOT NULL DEFAULT 0
    );
    CREATE TABLE rag_postings (
        term_id integer NOT NULL,
        row_id integer NOT NULL,
        tf integer NOT NULL,
        chunk_length integer NOT NULL,
        PRIMARY KEY (term_id, row_id) INCLUDE (tf, chunk_length)
    );
    """,
    # 1 -> 2: each chunk keeps its own text, and its instruction-like flag (an index written before the
    # flag existed has it false everywhere and an `instruction_detector` of 0: the next run flags it).
    # Each chunk keeps its own text. Cutting it out of its document at read time detoasts the whole
    # document for every chunk fetched: fine for paragraphs, slow for the chunks of a 500-page PDF.
    """
    ALTER TABLE rag_chunks ADD COLUMN text text;
    UPDATE rag_chunks c SET text = substr(d.text, c.start_offset + 1, c.end_offset - c.start_offset)
        FROM rag_documents d WHERE d.doc_id = c.doc_id;
    ALTER TABLE rag_chunks ALTER COLUMN text SET NOT NULL;
    -- index.instructions: the chunk reads like instructions to an AI assistant (prompt injection).
    ALTER TABLE rag_chunks ADD COLUMN instruction_like boolean NOT NULL DEFAULT false;
    """,
    # 2 -> 3: postings ordered by impact (a frequent term's best chunks are read first, and only they),
    # and the sentence windows of the documents (an index migrated from 2 has none: the next `rag index`
    # adds them, keeping its chunks and vectors). The impacts use the BM25 defaults (k1 1.2, b 0.75): they
    # only order the postings; scores are computed from tf and length with the manifest's parameters.
    """
    ALTER TABLE rag_manifest ADD COLUMN impact_length real NOT NULL DEFAULT 1;
    UPDATE rag_manifest SET impact_length = greatest(total_length::real / greatest(chunk_count, 1), 1);
    ALTER TABLE rag_postings ADD COLUMN impact real;
    UPDATE rag_postings p SET impact = p.tf * 2.2 / (p.tf + 1.2 * (0.25 + 0.75 * p.chunk_length / m.impact_length))
        FROM rag_manifest m;
    UPDATE rag_postings SET impact = 0 WHERE impact IS NULL;
    ALTER TABLE rag_postings ALTER COLUMN impact SET NOT NULL;
    CREATE INDEX rag_postings_impact ON rag_postings (term_id, impact DESC) INCLUDE (row_id, tf, chunk_length);
    CREATE TABLE rag_windows (
        doc_id text NOT NULL REFERENCES rag_documents (doc_id) ON DELETE CASCADE,
        ordinal integer NOT NULL,
        start_offset integer NOT NULL,
        sentence_offset integer NOT NULL,
        end_offset integer NOT NULL,
        embedding bytea,
        PRIMARY KEY (doc_id, ordinal)
    );
    """,
]


def redact(url: str) -> str:
    """The URL without its password (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[-1]}"))


def _why(exc: Exception) -> str:
    return re.sub(r"\s+", " ", str(exc)).strip()


def connect(url: str, *, autocommit: bool = True) -> psycopg.Connection:
    """A connection to `url`, or StoreConnectionError with a one-line cause and fix."""
    try:
        import psycopg
    except ImportError:
        raise StoreConnectionError(
            f"{SETTING} names a PostgreSQL database, which needs psycopg: pip install 'rag-fr[postgres]'."
        ) from None

    shown = redact(url)
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.OperationalError as exc:
        why = _why(exc)
        lowered = why.lower()
        if (
            "password authentication failed" in lowered
            or "no password supplied" in lowered
            or ("authentication" in lowered and "failed" in lowered)
        ):
            raise StoreConnectionError(
                f"PostgreSQL refused the login of {shown} (authentication failed). Fix the user or password in "
                f"{SETTING}; a password can also come from PGPASSWORD or ~/.pgpass."
            ) from None
        if "database" in lowered and "does not exist" in lowered:
            raise StoreConnectionError(
                f"The database of {shown} does not exist. Create it (createdb NAME, or CREATE DATABASE NAME) "
                f"or name an existing one in {SETTING}."
            ) from None
        raise StoreConnectionError(
            f"Cannot reach the PostgreSQL server of {shown} ({why}). Start the server or fix the host and "
            f"port in {SETTING}."
        ) from None
    except psycopg.ProgrammingError as exc:  # a malformed URL
        raise StoreConnectionError(
            f"{SETTING} is not a valid PostgreSQL URL ({_why(exc)}): {shown}"
        ) from None


def schema_version(conn: psycopg.Connection) -> int:
    """0 when the database holds no store yet."""
    found = conn.execute("SELECT to_regclass('rag_schema') IS NOT NULL").fetchone()
    if not found or not found[0]:
        return 0
    row = conn.execute("SELECT max(version) FROM rag_schema").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def check_schema_for_reading(conn: psycopg.Connection, url: str) -> int:
    """The schema version, after checking this program can read it (0: no store yet)."""
    version = schema_version(conn)
    if version > SCHEMA_VERSION:
        raise IndexFormatError(
            f"The index in {redact(url)} has schema version {version}, newer than this program's "
            f"{SCHEMA_VERSION}: upgrade rag-fr, or point {SETTING} at another database."
        )
    if 0 < version < SCHEMA_VERSION:
        raise IndexFormatError(
            f"The index in {redact(url)} has schema version {version}, older than this program's "
            f"{SCHEMA_VERSION}: run `rag index` once with {SETTING} set (it migrates the schema in place, keeping the data)."
        )
    return version


def ensure_vector_extension(conn: psycopg.Connection, url: str) -> None:
    """pgvector must be installed in the database; create it if we may, else say who must."""
    import psycopg

    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
        return
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
        where = (
            "a database owner or superuser must run: CREATE EXTENSION vector;"
            if available
            else "install pgvector on the server (package postgresql-NN-pgvector, or your provider's "
            "extension list), then run: CREATE EXTENSION vector;"
        )
        raise StoreConnectionError(
            f"pgvector is missing in the database of {redact(url)} ({_why(exc)}): {where} "
            f"(setting {SETTING})."
        ) from None


def migrate(conn: psycopg.Connection, url: str, *, on_step: Callable[[int], None] | None = None) -> int:
    """Bring the schema to SCHEMA_VERSION inside the caller's transaction; returns the version found."""
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        check_schema_for_reading(conn, url)  # raises: newer than the code
    for version in range(found, SCHEMA_VERSION):
        conn.execute(MIGRATIONS[version])
        if version == 0:
            conn.execute("INSERT INTO rag_schema (version) VALUES (1)")
        else:
            conn.execute("UPDATE rag_schema SET version = %s, migrated_at = now()", (version + 1,))
        if on_step:
            on_step(version + 1)
    return found
