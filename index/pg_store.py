"""The index in PostgreSQL: pgvector for the vectors, the project's analyzer + BM25 ranked in the database.

Chosen over PostgreSQL's own full-text search by measurement (eval/benchmarks/postgres.py --lexical, PIAF
dev): the `french` configuration with unaccent ranks with ts_rank_cd, which is not BM25 and has neither the
project's elision, stop-word, title and typo handling; its figures are in the README.

Reading (`PostgresStore`) needs only SELECT and never takes a lock a writer holds: every query sees the
last committed write (MVCC). Each search first reads the one-row `rag_manifest` (its `generation` is
bumped by every write), so a process sees documents another process added at its next question, without
a restart; cached chunks and documents are dropped when the generation moves.

Writing (`PostgresIndexWriter`) serialises writers on an advisory lock (a second `rag index` waits for the
first) and applies a whole indexing run in one transaction: readers see the previous state until the
commit, and a crash, Ctrl-C or kill -9 rolls everything back. A run only touches what changed: an
update (`Generation.kept`, what `rag index` sends) deletes the rows of removed and changed documents and
inserts the new ones; the unchanged documents' chunks, postings, vectors and windows are neither read nor
rewritten, and the corpus statistics of BM25 (chunk count, total length, each term's document frequency)
move by the deltas. A complete generation keeps the stored chunks it holds too (same chunk id). Bulk rows go
in with COPY (binary for vectors and postings).

A hybrid question's two searches run at once: `search_lexical` starts the dense search of the same question
on a second connection (worker thread), `search_dense` takes its result (`_prefetch_dense`).

Rows: `row_id` (an integer identity, never reused) is the "row" retrieval ranks by, as the row number of
the folder store is. Vectors are exact cosine below EXACT_MAX_VECTORS rows, HNSW above.

BM25 at scale: a term in more chunks than POSTINGS_PER_TERM is read only for its postings of highest impact
(an index orders them), then the best rows are scored again exactly; below that, every posting is read and
the ranking is the folder store's (figures at POSTINGS_PER_TERM).
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.config import IndexConfig
from index.embedding import Embedder
from index.errors import IndexError_, IndexFormatError, IndexNotFoundError, look_up, missing
from index.lexical import BM25_B, BM25_K1, Analyzer, BM25Index, analyze_query, bm25_idf, coverage_shares
from index.manifest import FORMAT_VERSION, FileEntry, Manifest
from index.model_check import check_dimension, embedder_for_index
from index.pg_schema import (
    SETTING,
    WRITER_LOCK_KEY,
    check_schema_for_reading,
    connect,
    ensure_vector_extension,
    migrate,
    redact,
    schema_version,
)
from index.protocols import DocumentInfo, Generation
from index.records import Chunk, Document, Section
from index.store import QUERY_MEMO_SIZE
from index.vector_index import HNSW_EF_SEARCH
from index.windows import WindowSpan, WindowTable

if TYPE_CHECKING:
    import psycopg

    from index.store import IndexStore

# pgvector's HNSW build parameters (its defaults): M 16 and ef_construction 64 build about 3x faster than
# the folder store's 32/200 on 2 cores; recall is held by ef_search at query time.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
CHUNK_CACHE_SIZE = 20_000
# Rows per block of a binary COPY (postings, vectors): the stream is built a block at a time.
COPY_BLOCK_ROWS = 100_000
WINDOW_CACHE_DOCUMENTS = 2_000
# BM25 in SQL reads, for a term in more than POSTINGS_PER_TERM chunks, only its POSTINGS_PER_TERM postings of
# highest impact (index rag_postings_impact), then scores the best RESCORED_ROWS rows again exactly over
# every query term. A frequent term weighs little (low idf) and reading all its postings was the cost of a
# query at scale. Chosen on 100k synthetic chunks (queries of 6 Zipf-drawn words, the worst case: often no
# rare term at all) against exact BM25 in SQL, top 10 rows in common / query p50 on the busy machine:
# 2,000/200 0.943 52 ms, 2,000/1,000 0.978 73 ms, 5,000/500 0.993 66 ms, 10,000/1,000 1.000 103 ms; every
# posting read: 257 ms. Below 5,000 chunks per term (any corpus under 5,000 chunks) the ranking is exact.
POSTINGS_PER_TERM = 5_000
RESCORED_ROWS = 500
# Dense searches started ahead by lexical searches and not yet taken (a lexical-only caller takes none):
# enough for the questions of 50 chat sessions in flight at once (each result: 50 rows and their chunks).
DENSE_PREFETCH_KEPT = 64
# Exact cosine scan below this many vectors, HNSW above. Lower than the folder store's FLAT_MAX_VECTORS:
# PostgreSQL scans a vector table far slower than FAISS scans an array (100k vectors: 190 ms against 60 ms
# for HNSW with ef_search 128, EXPLAIN ANALYZE on the busy machine).
EXACT_MAX_VECTORS = 10_000
# The stored impacts are recomputed when the average chunk length drifts this far from theirs.
IMPACT_LENGTH_DRIFT = 0.1

_CHUNK_SQL = """c.row_id, c.chunk_id, c.doc_id, d.source, d.title,
    c.text, c.start_offset, c.end_offset,
    c.ordinal, c.heading_path, c.page, c.instruction_like FROM rag_chunks c JOIN rag_documents d USING (doc_id)"""


_DenseResult = tuple[list[tuple[int, float]], dict[int, Chunk]]


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


def _chunk_of(row: Sequence[Any]) -> Chunk:
    _, chunk_id, doc_id, source, title, text, start, end, ordinal, heading_path, page, flagged = row
    return Chunk(
        chunk_id, doc_id, source, title, text, start, end, ordinal, tuple(heading_path), page, flagged
    )


def _bm25_sql(k1: str, b: str, average: str) -> str:
    """The BM25 weight of posting `p` in SQL (times the term's idf weight elsewhere)."""
    return f"p.tf * ({k1} + 1) / (p.tf + {k1} * (1 - {b} + {b} * p.chunk_length / {average}))"


def _manifest_json(manifest: Manifest) -> dict[str, Any]:
    data = asdict(manifest)
    data.pop("files")  # one row per file in rag_documents
    return data


class ChunkTable:
    """`store.chunks`: chunks by row id, fetched on demand in batches and cached (rows are immutable).

    Searches register the rows they return; the first lookup of one of them fetches them all in one query.
    """

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self._cache: dict[int, Chunk] = {}
        self._pending: set[int] = set()

    def __len__(self) -> int:
        return self._store.chunk_count

    def expect(self, rows: Iterable[int]) -> None:
        self._pending.update(row for row in rows if row not in self._cache)

    def clear(self) -> None:
        self._cache.clear()
        self._pending.clear()

    def add(self, chunks: dict[int, Chunk]) -> None:
        """Chunks by row, fetched along with a search (rows are immutable: any generation's are right)."""
        if len(self._cache) + len(chunks) > CHUNK_CACHE_SIZE:
            self._cache.clear()
        self._cache.update(chunks)
        self._pending.difference_update(chunks)
        for chunk in chunks.values():
            self._store.expect_windows(chunk.doc_id)

    def __getitem__(self, row: int) -> Chunk:
        chunk = self._cache.get(row)
        if chunk is not None:
            return chunk
        wanted = self._pending | {int(row)}
        self._pending = set()
        if len(self._cache) + len(wanted) > CHUNK_CACHE_SIZE:
            self._cache.clear()
        for found in self._store.query(
            f"SELECT {_CHUNK_SQL} WHERE c.row_id = ANY(%s)",
            (sorted(wanted),),
        ):
            chunk = self._cache[found[0]] = _chunk_of(found)
            self._store.expect_windows(chunk.doc_id)
        try:
            return self._cache[row]
        except KeyError:
            raise KeyError(f"No chunk row {row} in the index {self._store.where}") from None

    def __iter__(self) -> Iterator[Chunk]:
        """Every chunk, in row order (streamed: a big index is never held in memory at once)."""
        for found in self._store.query(f"SELECT {_CHUNK_SQL} ORDER BY c.row_id"):
            yield _chunk_of(found)


class PostgresStore:
    """A read-only view of the index in PostgreSQL, with the search methods of `index.store.IndexStore`."""

    def __init__(
        self, url: str, conn: psycopg.Connection, embedder: Embedder | None, load_files: bool
    ) -> None:
        self.url = url
        self.where = redact(url)
        self.connection = conn
        self.connection_lock = threading.RLock()
        # Dense search runs on a second connection, in a worker thread started by the lexical search of
        # the same question (`_prefetch_dense`): the two searches take max(lexical, dense) instead of their
        # sum, and the query's embedding overlaps the lexical SQL. Opened on first use.
        self._dense_connection: psycopg.Connection | None = None
        self._dense_lock = threading.Lock()  # the second connection
        self._prefetch_lock = threading.Lock()  # the worker and its prefetched results
        self._dense_worker: ThreadPoolExecutor | None = None
        self._dense_prefetched: dict[tuple[str, int], tuple[int, Future[_DenseResult]]] = {}
        self._vector_lock = threading.Lock()
        self._load_files = load_files
        self.postings_per_term = POSTINGS_PER_TERM
        self.dense_beside_lexical = True  # False: the two searches one after the other (benchmarks)
        self._analyzer = Analyzer()
        self.chunks = ChunkTable(self)
        self.generation = -1
        self.chunk_count = 0
        self.total_length = 0
        self.main_language = "fr"
        self.manifest: Manifest
        self.dimension: int | None = None
        self._documents: dict[str, Document] = {}
        self._languages: dict[str, str] = {}
        self._corpus_languages: set[str] | None = None
        self._document_count: int | None = None
        self._windows_stored = False
        self._window_cache: dict[str, tuple[list[WindowSpan], np.ndarray | None]] = {}
        self._window_pending: set[str] = set()
        self._query_vectors: dict[str, np.ndarray] = {}
        # A question's analysed terms and their (term_id, df), per generation: the lexical search and the
        # term coverage of one question share them (as `IndexStore.query_terms` does), so the analysis and
        # its SQL lookups run once per question, not once per caller.
        self._analysis_memo: OrderedDict[
            tuple[str, str | None, bool], tuple[int, list[str], dict[str, tuple[int, int]]]
        ] = OrderedDict()
        self._analysis_lock = threading.Lock()
        self.refresh()
        self.embedder = embedder if self.dimension is not None else None

    # -- opening --------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        url: str,
        *,
        config: IndexConfig | None = None,
        embedder: Embedder | None = None,
        load_model: bool = True,
        load_files: bool = False,
    ) -> PostgresStore:
        """Open the index of the database at `url` (same rules as `IndexStore.open` for the model).

        `load_files`: also read the per-file manifest entries (what an indexing run plans with).
        Raises StoreConnectionError, IndexNotFoundError, IndexFormatError, IndexMismatchError.
        """
        conn = connect(url)
        try:
            if (
                check_schema_for_reading(conn, url) == 0
                or not conn.execute("SELECT 1 FROM rag_manifest").fetchone()
            ):
                raise IndexNotFoundError(
                    f"There is no index in the database {redact(url)}. Build one first: rag index <folder> "
                    f"(with {SETTING} set), or move a folder index there: rag index --move-to-postgres."
                )
            conn.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
            store = cls(url, conn, None, load_files)
            built_with = store.manifest.embedding_model if store.dimension is not None else None
            embedder = embedder_for_index(
                built_with, config, embedder, load_model=load_model, where=store.where
            )
            if embedder is not None and store.dimension is not None:
                check_dimension(store.dimension, embedder, store.where)
                store.embedder = embedder
            return store
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        if self._dense_worker is not None:
            self._dense_worker.shutdown(wait=True, cancel_futures=True)
        with self._dense_lock:
            if self._dense_connection is not None:
                self._dense_connection.close()
        self.connection.close()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        with self.connection_lock:
            return self.connection.execute(sql, params).fetchall()

    def refresh(self) -> bool:
        """Pick up the last committed write if there was one since we looked; True when there was."""
        rows = self.query("SELECT generation, chunk_count, total_length FROM rag_manifest")
        if not rows:
            raise IndexNotFoundError(f"The index in the database {self.where} was deleted.")
        generation, chunk_count, total_length = rows[0]
        if generation == self.generation:
            return False
        with (
            self.connection_lock,
            self.connection.transaction(),
        ):  # one snapshot for the manifest and the files
            (generation, chunk_count, total_length, data, main_language) = self.connection.execute(
                "SELECT generation, chunk_count, total_length, manifest, main_language FROM rag_manifest"
            ).fetchone()
            files = self._read_files() if self._load_files else {}
            self._windows_stored = self.connection.execute(
                "SELECT EXISTS (SELECT 1 FROM rag_windows)"
            ).fetchone()[0]
        if data.get("format_version") != FORMAT_VERSION:
            raise IndexFormatError(
                f"The index in {self.where} has format version {data.get('format_version')!r}; this program "
                f"reads version {FORMAT_VERSION}. Rebuild it with: rag index --rebuild <folders>."
            )
        self.manifest = Manifest(files=files, **data)
        self.generation, self.chunk_count, self.total_length = generation, chunk_count, total_length
        self.main_language = main_language
        embedding = self.manifest.embedding
        self.dimension = int(embedding["dimension"]) if embedding and self.manifest.mode == "hybrid" else None
        self._documents.clear()
        self._languages.clear()
        self._corpus_languages = None
        self._document_count = None
        self._window_cache.clear()
        self._window_pending.clear()
        self.chunks.clear()
        return True

    def _read_files(self) -> dict[str, FileEntry]:
        files = {}
        for (
            doc_id,
            source,
            root,
            content_hash,
            size,
            mtime_ns,
            language,
            title,
            chunk_ids,
        ) in self.connection.execute(
            """SELECT d.doc_id, d.source, d.root, d.content_hash, d.size, d.mtime_ns, d.language, d.title,
                   coalesce((SELECT array_agg(c.chunk_id ORDER BY c.ordinal) FROM rag_chunks c
                             WHERE c.doc_id = d.doc_id), '{}')
               FROM rag_documents d ORDER BY d.doc_id"""
        ):
            files[doc_id] = FileEntry(
                doc_id, source, root, content_hash, size, mtime_ns, language, title, list(chunk_ids)
            )
        return files

    # -- lookups --------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "hybrid" if self.dimension is not None and self.embedder is not None else "lexical"

    def __len__(self) -> int:
        return self.chunk_count

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[self.chunk_index(chunk_id)]

    def chunk_index(self, chunk_id: str) -> int:
        rows = self.query("SELECT row_id FROM rag_chunks WHERE chunk_id = %s", (chunk_id,))
        if not rows:
            raise missing("chunk", chunk_id, f"the index {self.where}")
        return rows[0][0]

    def document(self, doc_id: str) -> Document:
        document = self._documents.get(doc_id)
        if document is None:
            rows = self.query(
                "SELECT doc_id, source, title, text, content_hash, sections, metadata, language "
                "FROM rag_documents WHERE doc_id = %s",
                (doc_id,),
            )
            if not rows:
                raise missing("document", doc_id, f"the index {self.where}")
            doc_id_, source, title, text, content_hash, sections, metadata, language = rows[0]
            document = Document(
                doc_id_, source, title, text, content_hash,
                [Section(s, e, tuple(h), p) for s, e, h, p in sections], dict(metadata),
            )  # fmt: skip
            if len(self._documents) > 1000:
                self._documents.clear()
            self._documents[doc_id] = document
            self._languages[doc_id] = language
        return document

    def document_text(self, doc_id: str) -> str:
        return self.document(doc_id).text

    def document_language(self, doc_id: str) -> str:
        if doc_id not in self._languages:
            rows = self.query("SELECT language FROM rag_documents WHERE doc_id = %s", (doc_id,))
            if not rows:
                raise missing("document", doc_id, f"the index {self.where}")
            self._languages[doc_id] = rows[0][0]
        return self._languages[doc_id]

    def document_count(self) -> int:
        """Documents with chunks (one index probe per document, counted once per generation)."""
        self.refresh()
        if self._document_count is None:
            self._document_count = self.query(
                "SELECT count(*)::int FROM rag_documents d "
                "WHERE EXISTS (SELECT 1 FROM rag_chunks c WHERE c.doc_id = d.doc_id)"
            )[0][0]
        return self._document_count

    def documents(self) -> list[DocumentInfo]:
        return [
            DocumentInfo(*row)
            for row in self.query(
                """SELECT d.doc_id, d.source, d.title, d.language, d.content_hash,
                       (SELECT count(*) FROM rag_chunks c WHERE c.doc_id = d.doc_id)::int, length(d.text)
                   FROM rag_documents d ORDER BY d.doc_id"""
            )
        ]

    # -- sentence windows (index.protocols.WindowReader) -----------------------------------------------------
    @property
    def windows_stored(self) -> bool:
        """Whether the database holds sentence windows (an index migrated from schema 2 has none)."""
        return self._windows_stored

    def query_vector(self, query: str) -> np.ndarray | None:
        """The query's unit vector (query prompt applied), None in lexical mode. Memoised: retrieval and the
        evidence step of one answer share one model call."""
        if self.mode != "hybrid":
            return None
        with self._vector_lock:  # not the connection's lock: the dense worker embeds while lexical SQL runs
            vector = self._query_vectors.get(query)
            if vector is None:
                assert self.embedder is not None
                vector = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
                if len(self._query_vectors) >= 64:
                    self._query_vectors.clear()
                self._query_vectors[query] = vector
        return vector

    def expect_windows(self, doc_id: str) -> None:
        """A chunk of `doc_id` was fetched: its windows come with the next window lookup (one query)."""
        if self._windows_stored and doc_id not in self._window_cache:
            self._window_pending.add(doc_id)

    def windows(self, doc_id: str) -> tuple[list[WindowSpan], np.ndarray | None] | None:
        """The sentence windows of a document and their unit vectors (float16; None in lexical mode), or
        None when the database holds no windows (an index migrated from schema 2: `rag index` adds them).
        The windows of every document whose chunks were fetched since are read in the same query."""
        if not self._windows_stored:
            return None
        with self.connection_lock:
            found = self._window_cache.get(doc_id)
            if found is not None:
                return found
            wanted = sorted(self._window_pending | {doc_id})
            self._window_pending.clear()
            if len(self._window_cache) + len(wanted) > WINDOW_CACHE_DOCUMENTS:
                self._window_cache.clear()
            rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in wanted}
            for row in self.connection.execute(
                "SELECT doc_id, start_offset, sentence_offset, end_offset, embedding FROM rag_windows "
                "WHERE doc_id = ANY(%s) ORDER BY doc_id, ordinal",
                (wanted,),
            ):
                rows[row[0]].append(row)
            for name, found_rows in rows.items():
                self._window_cache[name] = _windows_of(found_rows, self.dimension)
            return self._window_cache[doc_id]

    # -- search ---------------------------------------------------------------------------------------
    def search_dense(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top-k (row, cosine) by the embedding model, query prompt applied; [] in lexical mode. The result
        of a prefetch started by `search_lexical` for the same query, k and generation when there is one."""
        self.refresh()
        if self.mode != "hybrid" or k <= 0 or not self.chunk_count:
            return []
        with self._prefetch_lock:
            generation, future = self._dense_prefetched.pop((query, k), (None, None))
        result = None
        if future is not None and generation == self.generation:
            # A prefetch that failed (a deadlock with a migration, a dropped connection) is not the
            # question's failure: it is searched again now, and any error of that search is raised.
            with contextlib.suppress(Exception):
                result = future.result()
        if result is None:  # no prefetch, one of another generation, or a failed one: search now
            result = self._dense_search(query, k)
        found, chunks = result
        self.chunks.add(chunks)
        self.chunks.expect(row for row, _ in found)
        return found

    def _prefetch_dense(self, query: str, k: int) -> None:
        """Start `search_dense(query, k)` in the worker thread (on the second connection); the next
        `search_dense` call with the same arguments, in this generation, takes its result. Kept at most for
        the last few queries: a lexical-only caller wastes one dense search, never memory."""
        if not self.dense_beside_lexical or self.mode != "hybrid" or k <= 0 or not self.chunk_count:
            return
        with self._prefetch_lock:
            if self._dense_worker is None:
                self._dense_worker = ThreadPoolExecutor(1, thread_name_prefix="rag-pg-dense")
            if len(self._dense_prefetched) >= DENSE_PREFETCH_KEPT:
                self._dense_prefetched.clear()
            generation = self.generation
            future = self._dense_worker.submit(self._dense_search, query, k, generation)
            self._dense_prefetched[(query, k)] = (generation, future)

    def _dense_search(self, query: str, k: int, generation: int | None = None) -> _DenseResult | None:
        """The dense top-k and the chunks of its rows, on the second connection (any thread). The chunks
        come with it: retrieval reads every candidate's chunk, and fetching them here overlaps them with
        the lexical search too. None when `generation` is given and the index has moved on since."""
        vector = _vector_literal(self.query_vector(query))  # type: ignore[arg-type]
        # "+ 0" hides the distance from the planner: an exact scan instead of the HNSW index.
        order = "(embedding <=> %(q)s::vector)" + (" + 0" if self.chunk_count <= EXACT_MAX_VECTORS else "")
        with self._dense_lock:
            if self._dense_connection is None or self._dense_connection.closed:
                self._dense_connection = connect(self.url)
                self._dense_connection.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
            conn = self._dense_connection
            with conn.transaction():  # one snapshot: the generation checked is the one searched
                if generation is not None:
                    current = conn.execute("SELECT generation FROM rag_manifest").fetchone()
                    if current is None or current[0] != generation:
                        return None
                found = conn.execute(
                    f"SELECT row_id, 1 - (embedding <=> %(q)s::vector) FROM rag_vectors ORDER BY {order} "
                    "LIMIT %(k)s",
                    {"q": vector, "k": k},
                ).fetchall()
                chunks = {
                    row[0]: _chunk_of(row)
                    for row in conn.execute(
                        f"SELECT {_CHUNK_SQL} WHERE c.row_id = ANY(%s)", ([row for row, _ in found],)
                    )
                }
        return [(row, float(score)) for row, score in found], chunks

    def _term_rows(self, terms: Iterable[str]) -> dict[str, tuple[int, int]]:
        """term -> (term_id, document frequency) of those of `terms` the index holds."""
        wanted = list(dict.fromkeys(terms))
        if not wanted:
            return {}
        return {
            term: (term_id, df)
            for term, term_id, df in self.query(
                "SELECT term, term_id, df FROM rag_terms WHERE term = ANY(%s) AND df > 0", (wanted,)
            )
        }

    def query_terms(self, query: str, language: str | None = None, *, fix_unknown: bool = True) -> list[str]:
        """Terms of the query (`index.lexical.analyze_query`; typo repair looks the vocabulary up in SQL)."""
        return self._analysed(query, language, fix_unknown)[0]

    def _analysed(
        self, query: str, language: str | None, fix_unknown: bool
    ) -> tuple[list[str], dict[str, tuple[int, int]]]:
        """The query's terms and the (term_id, df) of those indexed, memoised for the current generation
        (a write changes the document frequencies and may add the terms a typo repair looks for)."""
        key = (query, language, fix_unknown)
        generation = self.generation
        with self._analysis_lock:
            memo = self._analysis_memo.get(key)
            if memo is not None and memo[0] == generation:
                self._analysis_memo.move_to_end(key)
                return list(memo[1]), dict(memo[2])
        terms, known = self._analyse(query, language, fix_unknown)
        with self._analysis_lock:
            self._analysis_memo[key] = (generation, terms, known)
            self._analysis_memo.move_to_end(key)
            while len(self._analysis_memo) > QUERY_MEMO_SIZE:
                self._analysis_memo.popitem(last=False)
        return list(terms), dict(known)

    def _analyse(
        self, query: str, language: str | None, fix_unknown: bool
    ) -> tuple[list[str], dict[str, tuple[int, int]]]:
        """The query's terms and the (term_id, df) of those indexed: one query for the terms, one more only
        when a term is unknown (its typo and inflection candidates, `index.lexical.known_variant`)."""
        terms = analyze_query(self._analyzer, query, language, self.main_language, None)
        known = self._term_rows(terms)
        if not fix_unknown:
            return terms, known

        def frequencies(candidates: Iterable[str]) -> dict[str, int]:
            candidates = list(candidates)
            if candidates and candidates[0] in known:  # a known term needs no variant: no query
                return {candidates[0]: known[candidates[0]][1]}
            known.update(self._term_rows(t for t in candidates if t not in known))
            return {t: known[t][1] for t in candidates if t in known}

        terms = analyze_query(self._analyzer, query, language, self.main_language, frequencies)
        return terms, known

    def term_document_frequencies(self) -> dict[str, int]:
        return dict(self.query("SELECT term, df FROM rag_terms WHERE df > 0"))

    def corpus_languages(self) -> set[str]:
        """The languages of the documents that have chunks (read once per generation)."""
        self.refresh()
        if self._corpus_languages is None:
            self._corpus_languages = {
                language
                for (language,) in self.query(
                    "SELECT DISTINCT d.language FROM rag_documents d "
                    "WHERE EXISTS (SELECT 1 FROM rag_chunks c WHERE c.doc_id = d.doc_id)"
                )
            }
        return set(self._corpus_languages)

    def search_lexical(
        self, query: str, k: int, language: str | None = None, *, fix_unknown: bool = True
    ) -> list[tuple[int, float]]:
        """Top-k (row, BM25 score), ranked in the database; rows sharing no term with the query left out."""
        self.refresh()
        if k <= 0 or not self.chunk_count:
            return []
        if fix_unknown:  # the question itself (not an expansion into another language): dense search next
            self._prefetch_dense(query, k)
        terms, known = self._analysed(query, language, fix_unknown)
        repeats = Counter(terms)
        found = [(term, *known[term]) for term in repeats if term in known]
        if not found:
            return []
        n = max(1, self.chunk_count)
        average_length = max(self.total_length / n, 1e-9)
        ids = [term_id for _, term_id, _ in found]
        weights = [repeats[term] * float(np.log1p((n - df + 0.5) / (df + 0.5))) for term, _, df in found]
        k1, b = float(self.manifest.bm25.get("k1", BM25_K1)), float(self.manifest.bm25.get("b", BM25_B))
        score = f"sum(q.weight * {_bm25_sql('%(k1)s', '%(b)s', '%(avg)s')})"
        terms_sql = "unnest(%(ids)s::integer[], %(weights)s::float8[]) AS q(term_id, weight)"
        if max(df for _, _, df in found) <= self.postings_per_term:  # every posting read: exact
            sql = f"""SELECT p.row_id, {score} AS score FROM {terms_sql}
                      JOIN rag_postings p ON p.term_id = q.term_id
                      GROUP BY p.row_id ORDER BY score DESC, p.row_id LIMIT %(k)s"""
        else:
            # The best postings of each term (by impact), the best rows by that partial score (the stored
            # impacts: nothing computed per posting), then those rows scored exactly over every query term
            # (primary-key lookups). Summing stored impacts instead of BM25 computed from tf and length:
            # 100k synthetic chunks, 60 queries, lexical top 50 p50 70 -> 50 ms busy, same top 10.
            sql = f"""WITH q AS (SELECT * FROM {terms_sql}),
                      partial AS (
                          SELECT p.row_id FROM q CROSS JOIN LATERAL (
                              SELECT row_id, impact FROM rag_postings
                              WHERE term_id = q.term_id ORDER BY impact DESC LIMIT %(cut)s) p
                          GROUP BY p.row_id ORDER BY sum(q.weight * p.impact) DESC, p.row_id LIMIT %(rescored)s)
                      SELECT c.row_id, s.score FROM partial c CROSS JOIN LATERAL (
                          SELECT {score} AS score FROM q
                          JOIN rag_postings p ON p.term_id = q.term_id AND p.row_id = c.row_id) s
                      ORDER BY s.score DESC, c.row_id LIMIT %(k)s"""
        rows = self.query(
            sql,
            {"ids": ids, "weights": weights, "k1": k1, "b": b, "avg": average_length, "k": k,
             "cut": self.postings_per_term, "rescored": max(RESCORED_ROWS, 4 * k)},
        )  # fmt: skip
        self.chunks.expect(row for row, _ in rows)
        return [(row, float(score)) for row, score in rows if score > 0]

    def term_coverage(
        self, query: str, rows: Sequence[int], language: str | None = None, *, fix_unknown: bool = True
    ) -> dict[int, float]:
        """Per row of `rows`, the IDF-weighted share of the query's distinct terms it holds (the folder
        store's `BM25Index.coverage`): primary-key lookups of the rows' postings."""
        self.refresh()
        rows = [int(row) for row in rows]
        terms, known = self._analysed(query, language, fix_unknown)
        n = self.chunk_count
        weights = {term: bm25_idf(n, known[term][1] if term in known else 0) for term in dict.fromkeys(terms)}
        held = dict.fromkeys(rows, 0.0)
        ids = [known[term][0] for term in weights if term in known]
        if ids and rows:
            found = self.query(
                "SELECT p.row_id, array_agg(p.term_id) FROM rag_postings p "
                "WHERE p.term_id = ANY(%(ids)s) AND p.row_id = ANY(%(rows)s) GROUP BY p.row_id",
                {"ids": ids, "rows": rows},
            )
            weight_of_id = {known[term][0]: weight for term, weight in weights.items() if term in known}
            for row, term_ids in found:
                held[row] = sum(weight_of_id[term_id] for term_id in term_ids)
        return coverage_shares(weights, held)


def _impacts(tfs: np.ndarray, lengths: np.ndarray, impact_length: float) -> np.ndarray:
    """Each posting's BM25 weight with the default k1 and b (`_bm25_sql`, the order of rag_postings_impact)."""
    return tfs * (BM25_K1 + 1) / (tfs + BM25_K1 * (1 - BM25_B + BM25_B * lengths / impact_length))


class _NewPostings:
    """The postings of the generation rows `rows` (the chunks a write inserts), taken from the BM25 arrays
    with numpy and grouped by chunk: `rows` (position in `rows`), `terms` (the BM25 index's term ids,
    `names[t]` the term), `counts`; `pointer[i]:pointer[i + 1]` are chunk i's; `lengths[i]` its length in
    terms. Within a chunk, terms in the index's vocabulary order."""

    def __init__(self, bm25: BM25Index, rows: np.ndarray) -> None:
        self.names = list(bm25.vocabulary)
        position = np.full(bm25.size, -1, dtype=np.int64)
        position[rows] = np.arange(len(rows))
        of_posting = position[bm25.post_rows]
        keep = of_posting >= 0
        terms = np.repeat(np.arange(len(self.names), dtype=np.int64), np.diff(bm25.term_ptr))[keep]
        of_posting = of_posting[keep]
        order = np.argsort(of_posting, kind="stable")
        self.rows = of_posting[order]
        self.terms = terms[order]
        self.counts = bm25.post_counts[keep][order].astype(np.int64)
        self.pointer = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.rows, minlength=len(rows)), out=self.pointer[1:])
        self.lengths = np.bincount(self.rows, weights=self.counts, minlength=len(rows)).astype(np.int64)


def _array_literals(values: np.ndarray, pointer: np.ndarray) -> list[str]:
    """PostgreSQL array literals ("{1,2,3}") of the slices `values[pointer[i]:pointer[i + 1]]`."""
    text = ",".join(map(str, values.tolist()))
    if not len(values):
        return ["{}"] * (len(pointer) - 1)
    # Offsets of each value in `text`: its digits (the values are >= 0) plus its comma.
    widths = np.ones(len(values), dtype=np.int64) + 1
    for power in range(1, 19):
        widths += values >= 10**power
    starts = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(widths, out=starts[1:])
    begin, end = starts[pointer[:-1]], starts[pointer[1:]] - 1
    return [
        "{" + text[b:e] + "}" if e > b else "{}" for b, e in zip(begin.tolist(), end.tolist(), strict=True)
    ]


def _windows_of(
    rows: Sequence[tuple[Any, ...]], dimension: int | None
) -> tuple[list[WindowSpan], np.ndarray | None]:
    """(spans, float16 vectors or None) of one document's rows of rag_windows, in order."""
    spans = [WindowSpan(start, sentence, end) for _, start, sentence, end, _ in rows]
    if not rows or dimension is None or any(row[4] is None for row in rows):
        return spans, None
    data = b"".join(bytes(row[4]) for row in rows)
    return spans, np.frombuffer(data, dtype="<f2").reshape(len(rows), dimension)


# -- writing --------------------------------------------------------------------------------------------
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)


def _binary_rows(columns: Sequence[tuple[np.ndarray | Sequence[Any], str]]) -> bytes:
    """Rows of 4-byte columns (`(values, ">i4" or ">f4")`) in the binary COPY format, without the stream's
    header and trailer, built with numpy (millions of rows per second)."""
    count = len(columns[0][0])
    fields = [("n", ">i2")]
    for i, (_, kind) in enumerate(columns):
        fields += [(f"len{i}", ">i4"), (f"v{i}", kind)]
    rows = np.empty(count, dtype=np.dtype(fields))
    rows["n"] = len(columns)
    for i, (values, _) in enumerate(columns):
        rows[f"len{i}"] = 4
        rows[f"v{i}"] = values
    return rows.tobytes()


def _binary_vector_rows(row_ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """(int4, vector) rows in the binary COPY format (no header or trailer): pgvector's binary form is
    dim, 0 (int16) + float4s."""
    count, dimension = vectors.shape
    rows = np.empty(
        count,
        dtype=np.dtype(
            [("n", ">i2"), ("len0", ">i4"), ("row", ">i4"), ("len1", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
             ("values", ">f4", (dimension,))]
        ),
    )  # fmt: skip
    rows["n"] = 2
    rows["len0"] = 4
    rows["row"] = row_ids
    rows["len1"] = 4 + 4 * dimension
    rows["dim"] = dimension
    rows["unused"] = 0
    rows["values"] = vectors
    return rows.tobytes()


def _copy_binary(copy: psycopg.Copy, count: int, rows_of: Callable[[slice], bytes]) -> None:
    """A binary COPY of `count` rows, `rows_of(part)` the bytes of rows `part`, sent COPY_BLOCK_ROWS at a
    time (a million chunks' postings at once would take gigabytes in this process)."""
    copy.write(_COPY_HEADER)
    for start in range(0, count, COPY_BLOCK_ROWS):
        copy.write(rows_of(slice(start, start + COPY_BLOCK_ROWS)))
    copy.write(_COPY_TRAILER)


class PostgresPrevious:
    """`PreviousIndex` of the PostgreSQL store: what `build_index` reuses. Rows are positions 0..n-1 in
    row-id order (the lists and arrays below share them); chunks come in one query on first use (a run
    that changes nothing reads none), term counts and vectors (binary COPY) only when asked for."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store
        self.manifest = store.manifest
        self._chunks: list[Chunk] | None = None
        self._rows: dict[str, int] = {}
        self._document_rows: dict[str, int] | None = None

    @property
    def chunk_count(self) -> int:
        return self._store.chunk_count

    @property
    def chunks(self) -> list[Chunk]:
        if self._chunks is None:
            self._chunks = [
                _chunk_of(row) for row in self._store.query(f"SELECT {_CHUNK_SQL} ORDER BY c.row_id")
            ]
            self._rows = {chunk.chunk_id: row for row, chunk in enumerate(self._chunks)}
        return self._chunks

    def chunk_index(self, chunk_id: str) -> int:
        self.chunks  # noqa: B018 - read on first use
        return look_up(self._rows, chunk_id, "chunk", f"the index {self._store.where}")

    def has_windows(self) -> bool:
        return self._store.windows_stored

    def document(self, doc_id: str) -> Document:
        return self._store.document(doc_id)

    def document_row(self, doc_id: str) -> int:
        """Position of a document in `stored_windows` (documents in doc_id order)."""
        if self._document_rows is None:
            self._document_rows = {
                name: row
                for row, (name,) in enumerate(
                    self._store.query("SELECT doc_id FROM rag_documents ORDER BY doc_id")
                )
            }
        return self._document_rows[doc_id]

    def stored_windows(self) -> WindowTable | None:
        """Every document's windows, rows grouped by `document_row`; None when none are stored (an index
        migrated from schema 2)."""
        rows = self._store.query(
            "SELECT w.doc_id, w.start_offset, w.sentence_offset, w.end_offset, w.embedding FROM rag_windows w "
            "ORDER BY w.doc_id, w.ordinal"
        )
        if not rows:
            return None
        doc_rows = [self.document_row(row[0]) for row in rows]
        vectors = None
        if self._store.dimension is not None and all(row[4] is not None for row in rows):
            vectors = np.frombuffer(b"".join(bytes(row[4]) for row in rows), "<f2").reshape(len(rows), -1)
        columns = list(zip(*[row[1:4] for row in rows], strict=True))
        return WindowTable(np.array(doc_rows), *(np.array(c) for c in columns), vectors)

    def row_term_counts(self) -> list[dict[str, int]]:
        names = dict(self._store.query("SELECT term_id, term FROM rag_terms"))
        return [
            {names[term_id]: count for term_id, count in zip(ids, counts, strict=True)}
            for ids, counts in self._store.query(
                "SELECT term_ids, term_counts FROM rag_chunks ORDER BY row_id"
            )
        ]

    def stored_vectors(self) -> np.ndarray | None:
        dimension = self._store.dimension
        if dimension is None:
            return None
        data = bytearray()
        with (
            self._store.connection_lock,
            self._store.connection.cursor().copy(
                "COPY (SELECT v.embedding FROM rag_chunks c JOIN rag_vectors v USING (row_id) ORDER BY c.row_id) "
                "TO STDOUT (FORMAT BINARY)"
            ) as copy,
        ):
            for block in copy:
                data += block
        row = np.dtype(
            [("n", ">i2"), ("len", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("values", ">f4", (dimension,))]
        )
        body = bytes(data[len(_COPY_HEADER) : len(data) - len(_COPY_TRAILER)])
        vectors = np.frombuffer(body, dtype=row)["values"].astype(np.float32)
        if len(vectors) != len(self.chunks):
            raise IndexFormatError(
                f"The index in {self._store.where} is inconsistent ({len(vectors)} vectors, {len(self.chunks)} "
                "chunks). Rebuild it: rag index --rebuild <folders>."
            )
        return vectors


class PostgresIndexWriter:
    """`IndexWriter` of the PostgreSQL store (see `index.protocols.IndexWriter`).

    `lock()` holds PostgreSQL's advisory lock on a connection of its own: a second writer (another
    `rag index`, on any machine) waits its turn instead of failing, and a writer that dies releases it
    with its connection. `write` applies a whole generation in one transaction, sending only what changed.
    """

    #: It stores sentence windows (`index.protocols.WindowReader`): the build finds and embeds them.
    keeps_windows = True
    #: Token vectors (late interaction) are not kept: retrieval ranks without their rescoring.
    keeps_tokens = False

    def __init__(self, url: str, *, wait_message: bool = True) -> None:
        self.url = url
        self._wait_message = wait_message
        self._conn: psycopg.Connection | None = None
        self._opened: list[PostgresStore] = []  # by `read_previous`, closed with the lock

    @property
    def location(self) -> str:
        return redact(self.url)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        conn = connect(self.url)
        try:
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (WRITER_LOCK_KEY,)).fetchone()[0]:
                if self._wait_message:
                    print(
                        f"Another process is writing the index in {self.location}; waiting for it...",
                        file=sys.stderr,
                        flush=True,
                    )
                conn.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK_KEY,))
            ensure_vector_extension(conn, self.url)
            if schema_version(conn):  # an existing store of an older schema is migrated before it is read
                with conn.transaction():
                    migrate(conn, self.url)
            self._conn = conn
            yield
        finally:
            self._conn = None
            for store in self._opened:
                store.close()
            self._opened.clear()
            conn.close()  # also releases the advisory lock

    @property
    def conn(self) -> psycopg.Connection:
        assert self._conn is not None, "PostgresIndexWriter: call write() inside lock()"
        return self._conn

    def read_previous(self) -> PostgresPrevious | None:
        try:
            store = PostgresStore.open(self.url, load_model=False, load_files=True)
        except IndexNotFoundError:
            return None
        if self._conn is not None:
            self._opened.append(store)
        return PostgresPrevious(store)

    def write(self, generation: Generation) -> None:
        """Make the database hold exactly `generation`, in one transaction (an update: `_update`).

        Chunks already stored (same chunk id: same document content and offsets) keep their rows, terms
        and vectors; the rest is inserted; what the generation no longer holds is deleted. A changed
        model, prompts or analyzer rewrites everything (the generation is complete, so nothing is lost).
        """
        if generation.kept is not None:
            self._update(generation)
            return
        conn = self.conn
        manifest, chunks, vectors = generation.manifest, generation.chunks, generation.vectors
        dimension = int(vectors.shape[1]) if vectors is not None else None
        with conn.transaction():
            migrate(conn, self.url)
            old = conn.execute("SELECT manifest FROM rag_manifest").fetchone()
            old_manifest = old[0] if old else {}
            old_dimension = (
                (old_manifest.get("embedding") or {}).get("dimension")
                if old_manifest.get("mode") == "hybrid"
                else None
            )
            empty_before = not conn.execute("SELECT 1 FROM rag_chunks LIMIT 1").fetchone()
            if (
                old_manifest.get("embedding") != manifest.embedding
                or old_manifest.get("analyzer") != manifest.analyzer
                or old_dimension != dimension
            ):
                # DELETE, not TRUNCATE: TRUNCATE would block the readers until the commit.
                conn.execute("DELETE FROM rag_postings")
                conn.execute("DELETE FROM rag_chunks")
                conn.execute("DELETE FROM rag_documents")
                conn.execute("DELETE FROM rag_terms")
                if old_dimension != dimension:
                    conn.execute("DROP TABLE IF EXISTS rag_vectors")
            if dimension is not None:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS rag_vectors (row_id integer PRIMARY KEY REFERENCES rag_chunks "
                    f"(row_id) ON DELETE CASCADE, embedding vector({dimension}) NOT NULL)"
                )
            stored = dict(conn.execute("SELECT chunk_id, row_id FROM rag_chunks").fetchall())
            wanted = {chunk.chunk_id for chunk in chunks}
            gone_rows = [row for chunk_id, row in stored.items() if chunk_id not in wanted]
            if gone_rows:
                self._remove_rows(gone_rows)
            kept_docs = self._remove_documents(generation.documents)
            self._refresh_kept(kept_docs, manifest.files)
            self._insert_documents(
                [(d, lang) for d, lang in generation.documents if d.doc_id not in kept_docs], manifest.files
            )
            if old_manifest.get("instruction_detector") != manifest.instruction_detector:
                # Another detector version flagged the stored chunks: take the generation's flags.
                flagged = [chunk.chunk_id for chunk in chunks if chunk.instruction_like]
                conn.execute("UPDATE rag_chunks SET instruction_like = (chunk_id = ANY(%s))", (flagged,))
            new = [i for i, chunk in enumerate(chunks) if chunk.chunk_id not in stored]
            postings = _NewPostings(generation.bm25, np.asarray(new, dtype=np.int64))
            if empty_before:  # impacts use the new index's average chunk length
                impact_length = max(float(postings.lengths.sum()) / max(len(new), 1), 1.0)
            else:
                impact_length = conn.execute("SELECT impact_length FROM rag_manifest").fetchone()[0]
            if new:
                self._insert_chunks(
                    [chunks[i] for i in new],
                    postings,
                    vectors[new] if vectors is not None else None,
                    bulk=empty_before,
                    impact_length=impact_length,
                )
            self._insert_windows(generation)
            self._write_manifest(manifest, impact_length, *self._corpus_size())
        # Index-only scans of the postings need the visibility map a VACUUM sets (autovacuum would, later);
        # statistics for the planner. Outside the transaction: the new state is committed already.
        tables = "rag_postings, rag_chunks, rag_terms" + (", rag_vectors" if dimension is not None else "")
        with contextlib.suppress(Exception):
            conn.execute(f"VACUUM (ANALYZE) {tables}")

    def _update(self, update: Generation) -> None:
        """Apply an update (`Generation.kept`) in one transaction: the documents not kept are deleted with
        their rows, the update's inserted; the kept documents' rows are neither read nor rewritten (only
        their path, size and mtime, where those moved). Chunk count and total length move by the deltas."""
        conn = self.conn
        manifest, kept = update.manifest, update.kept or []
        with conn.transaction():
            migrate(conn, self.url)
            row = conn.execute(
                "SELECT manifest, chunk_count, total_length, impact_length FROM rag_manifest"
            ).fetchone()
            if row is None or any(
                row[0].get(key) != value
                for key, value in (
                    ("mode", manifest.mode),
                    ("embedding", manifest.embedding),
                    ("analyzer", manifest.analyzer),
                    ("instruction_detector", manifest.instruction_detector),
                )
            ):
                raise IndexFormatError(
                    f"The index in {self.location} is not the one this run planned an update of. Run rag index "
                    "again."
                )
            _, count, total, impact_length = row
            gone = [
                doc_id
                for (doc_id,) in conn.execute(
                    "SELECT doc_id FROM rag_documents WHERE doc_id <> ALL(%s)", (kept,)
                )
            ]
            removed, removed_length = self._delete_documents(gone)
            self._refresh_kept(set(kept), manifest.files)
            self._insert_documents(update.documents, manifest.files)
            postings = _NewPostings(update.bm25, np.arange(len(update.chunks), dtype=np.int64))
            if update.chunks:
                self._insert_chunks(
                    update.chunks, postings, update.vectors, bulk=False, impact_length=impact_length
                )
            self._insert_windows(update, stored=set())
            count += len(update.chunks) - removed
            total += int(postings.lengths.sum()) - removed_length
            self._write_manifest(manifest, impact_length, count, total)
        if len(update.chunks) + removed > count // 10:
            # A large change: the planner's statistics and the visibility map now (see `write`); a small one
            # is left to autovacuum (a VACUUM reads every index of a table that lost rows, HNSW included).
            tables = "rag_postings, rag_chunks, rag_terms" + (
                ", rag_vectors" if update.vectors is not None else ""
            )
            with contextlib.suppress(Exception):
                conn.execute(f"VACUUM (ANALYZE) {tables}")

    def _corpus_size(self) -> tuple[int, int]:
        """(chunk count, total length in terms) counted over every stored chunk."""
        return self.conn.execute(
            "SELECT count(*)::int, coalesce(sum((SELECT sum(x) FROM unnest(term_counts) x)), 0)::bigint "
            "FROM rag_chunks"
        ).fetchone()

    def _insert_windows(self, generation: Generation, stored: set[str] | None = None) -> None:
        """The windows of every document of the generation that has none stored yet (new, changed, or
        kept from an index written before windows were stored). `stored`: the documents that have windows
        (default: read from the table)."""
        table = generation.windows
        if table is None:
            return
        if stored is None:
            stored = {doc_id for (doc_id,) in self.conn.execute("SELECT DISTINCT doc_id FROM rag_windows")}
        with self.conn.cursor().copy(
            "COPY rag_windows (doc_id, ordinal, start_offset, sentence_offset, end_offset, embedding) FROM STDIN"
        ) as copy:
            for doc_row, (document, _) in enumerate(generation.documents):
                if document.doc_id in stored:
                    continue
                for ordinal, (row, span) in enumerate(table.spans_of(doc_row)):
                    vector = (
                        None if table.vectors is None else np.asarray(table.vectors[row], "<f2").tobytes()
                    )
                    copy.write_row((document.doc_id, ordinal, span.start, span.sentence, span.end, vector))

    def _remove_documents(self, documents: Sequence[tuple[Document, str]]) -> set[str]:
        """Delete the stored documents the generation no longer holds or holds with another content;
        returns the ids of those kept."""
        wanted = {doc.doc_id: doc.content_hash for doc, _ in documents}
        stored = dict(self.conn.execute("SELECT doc_id, content_hash FROM rag_documents").fetchall())
        gone = [doc_id for doc_id, digest in stored.items() if wanted.get(doc_id) != digest]
        self._delete_documents(gone)
        return {doc_id for doc_id in stored if doc_id not in gone}

    def _delete_documents(self, gone: list[str]) -> tuple[int, int]:
        """Delete these documents and their rows; returns (chunks deleted, their total length in terms)."""
        if not gone:
            return 0, 0
        rows = [
            row
            for (row,) in self.conn.execute("SELECT row_id FROM rag_chunks WHERE doc_id = ANY(%s)", (gone,))
        ]
        removed = self._remove_rows(rows) if rows else (0, 0)
        self.conn.execute("DELETE FROM rag_documents WHERE doc_id = ANY(%s)", (gone,))
        return removed

    def _refresh_kept(self, kept: set[str], entries: dict[str, FileEntry]) -> None:
        if not kept:
            return
        ids = sorted(kept)
        self.conn.execute(
            """UPDATE rag_documents d SET source = u.source, root = u.root, size = u.size, mtime_ns = u.mtime_ns
               FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])
                    AS u(doc_id, source, root, size, mtime_ns)
               WHERE d.doc_id = u.doc_id
                 AND (d.source, d.root, d.size, d.mtime_ns) IS DISTINCT FROM (u.source, u.root, u.size, u.mtime_ns)""",
            (
                ids,
                [entries[d].source for d in ids],
                [entries[d].root for d in ids],
                [entries[d].size for d in ids],
                [entries[d].mtime_ns for d in ids],
            ),
        )

    def _insert_documents(
        self, documents: Sequence[tuple[Document, str]], entries: dict[str, FileEntry]
    ) -> None:
        with self.conn.cursor().copy(
            "COPY rag_documents (doc_id, source, root, title, text, content_hash, size, mtime_ns, language, "
            "sections, metadata) FROM STDIN"
        ) as copy:
            for doc, language in documents:
                entry = entries[doc.doc_id]
                sections = [[s.start, s.end, list(s.heading_path), s.page] for s in doc.sections]
                copy.write_row(
                    (doc.doc_id, doc.source, entry.root, doc.title, doc.text, doc.content_hash, entry.size,
                     entry.mtime_ns, language, json.dumps(sections), json.dumps(doc.metadata))
                )  # fmt: skip

    def _remove_rows(self, rows: list[int]) -> tuple[int, int]:
        """Delete these chunk rows, their postings and vectors (document frequencies updated); returns
        (rows deleted, their total length in terms)."""
        conn = self.conn
        conn.execute(
            """WITH gone AS (
                   SELECT c.row_id, t.term_id, t.tf FROM rag_chunks c,
                          unnest(c.term_ids, c.term_counts) AS t(term_id, tf)
                   WHERE c.row_id = ANY(%(rows)s)),
               dropped AS (
                   DELETE FROM rag_postings p USING gone g WHERE p.term_id = g.term_id AND p.row_id = g.row_id)
               UPDATE rag_terms t SET df = t.df - g.n
               FROM (SELECT term_id, count(*) AS n FROM gone GROUP BY term_id) g WHERE t.term_id = g.term_id""",
            {"rows": rows},
        )
        lengths = conn.execute(
            "DELETE FROM rag_chunks WHERE row_id = ANY(%s) "
            "RETURNING (SELECT coalesce(sum(x), 0) FROM unnest(term_counts) x)::bigint",
            (rows,),
        ).fetchall()
        return len(lengths), sum(length for (length,) in lengths)

    def _term_ids(self, terms: set[str]) -> dict[str, int]:
        conn = self.conn
        ordered = sorted(terms)
        conn.execute(
            "INSERT INTO rag_terms (term) SELECT unnest(%s::text[]) ON CONFLICT (term) DO NOTHING", (ordered,)
        )
        return dict(
            conn.execute("SELECT term, term_id FROM rag_terms WHERE term = ANY(%s)", (ordered,)).fetchall()
        )

    def _insert_chunks(
        self,
        chunks: Sequence[Chunk],
        postings: _NewPostings,
        vectors: np.ndarray | None,
        *,
        bulk: bool,
        impact_length: float,
    ) -> None:
        conn = self.conn
        names = postings.names
        used = np.unique(postings.terms)
        found = self._term_ids({names[t] for t in used.tolist()})
        database_ids = np.zeros(len(names), dtype=np.int64)
        database_ids[used] = [found[names[t]] for t in used.tolist()]
        first = (
            conn.execute(
                "SELECT setval(pg_get_serial_sequence('rag_chunks', 'row_id'), "
                "nextval(pg_get_serial_sequence('rag_chunks', 'row_id')) + %s - 1)",
                (len(chunks),),
            ).fetchone()[0]
            - len(chunks)
            + 1
        )
        row_ids = np.arange(first, first + len(chunks), dtype=np.int64)
        post_terms = database_ids[postings.terms]
        post_rows = row_ids[postings.rows]
        post_lengths = postings.lengths[postings.rows]
        # A chunk's terms and counts as array literals, cut from the postings (grouped by chunk): 1M chunks
        # in seconds, where a Python list per chunk took minutes.
        ids_text = _array_literals(post_terms, postings.pointer)
        tfs_text = _array_literals(postings.counts, postings.pointer)
        with conn.cursor().copy(
            "COPY rag_chunks (row_id, chunk_id, doc_id, start_offset, end_offset, text, ordinal, heading_path, "
            "page, instruction_like, term_ids, term_counts) FROM STDIN"
        ) as copy:
            for row_id, chunk, ids, tfs in zip(row_ids.tolist(), chunks, ids_text, tfs_text, strict=True):
                copy.write_row(
                    (row_id, chunk.chunk_id, chunk.doc_id, chunk.start, chunk.end, chunk.text, chunk.ordinal,
                     list(chunk.heading_path) or "{}", chunk.page, chunk.instruction_like, ids, tfs)
                )  # fmt: skip

        def posting_rows(part: slice) -> bytes:
            tfs, lengths = postings.counts[part], post_lengths[part]
            impacts = _impacts(tfs.astype(np.float64), lengths.astype(np.float64), impact_length)
            return _binary_rows(
                [(post_terms[part], ">i4"), (post_rows[part], ">i4"), (tfs, ">i4"), (lengths, ">i4"),
                 (impacts, ">f4")]
            )  # fmt: skip

        with (
            self._bulk_indexes(bulk),
            conn.cursor().copy(
                "COPY rag_postings (term_id, row_id, tf, chunk_length, impact) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            _copy_binary(copy, len(post_terms), posting_rows)
        delta = np.bincount(post_terms)
        touched = np.flatnonzero(delta)
        conn.execute(
            "UPDATE rag_terms t SET df = t.df + u.n FROM unnest(%s::integer[], %s::integer[]) AS u(term_id, n) "
            "WHERE t.term_id = u.term_id",
            (touched.tolist(), delta[touched].tolist()),
        )
        if vectors is not None:
            with conn.cursor().copy(
                "COPY rag_vectors (row_id, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                _copy_binary(
                    copy,
                    len(row_ids),
                    lambda part: _binary_vector_rows(row_ids[part], np.asarray(vectors[part], np.float32)),
                )
            self._ensure_vector_index()

    @contextlib.contextmanager
    def _bulk_indexes(self, bulk: bool) -> Iterator[None]:
        """On a first fill, drop the postings' indexes while copying and build them once after (several
        times faster); an empty index has no readers to block."""
        if not bulk:
            yield
            return
        self.conn.execute("ALTER TABLE rag_postings DROP CONSTRAINT rag_postings_pkey")
        self.conn.execute("DROP INDEX rag_postings_impact")
        yield
        self.conn.execute(
            "ALTER TABLE rag_postings ADD PRIMARY KEY (term_id, row_id) INCLUDE (tf, chunk_length)"
        )
        self.conn.execute(
            "CREATE INDEX rag_postings_impact ON rag_postings (term_id, impact DESC) INCLUDE (row_id, tf, chunk_length)"
        )

    def _ensure_vector_index(self) -> None:
        if not self.conn.execute("SELECT to_regclass('rag_vectors_hnsw') IS NOT NULL").fetchone()[0]:
            self.conn.execute(
                f"CREATE INDEX rag_vectors_hnsw ON rag_vectors USING hnsw (embedding vector_cosine_ops) "
                f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
            )

    def _write_manifest(self, manifest: Manifest, impact_length: float, count: int, total: int) -> int:
        """The manifest row, with the corpus statistics `count` (chunks) and `total` (their length in
        terms); the main language counted from the manifest's files (chunks per language)."""
        conn = self.conn
        manifest.chunk_count = count
        average = max(total / max(count, 1), 1.0)
        if abs(average / impact_length - 1) > IMPACT_LENGTH_DRIFT:  # the stored order has drifted: renew it
            impact_length = average
            conn.execute(
                f"UPDATE rag_postings p SET impact = {_bm25_sql(str(BM25_K1), str(BM25_B), '%s')}",
                (impact_length,),
            )
        data = json.dumps(_manifest_json(manifest), ensure_ascii=False)
        conn.execute(
            """INSERT INTO rag_manifest (id, generation, manifest, chunk_count, total_length, main_language,
                   impact_length, updated_at)
               VALUES (true, 1, %(m)s, %(n)s, %(t)s, %(lang)s, %(il)s, now())
               ON CONFLICT (id) DO UPDATE SET generation = rag_manifest.generation + 1, manifest = %(m)s,
                   chunk_count = %(n)s, total_length = %(t)s, main_language = %(lang)s, impact_length = %(il)s,
                   updated_at = now()""",
            {"m": data, "n": count, "t": total, "lang": _main_language(manifest), "il": impact_length},
        )
        return count


def _main_language(manifest: Manifest) -> str:
    """The language with the most chunks (ties: the first by name); "fr" for an empty index."""
    chunks: Counter[str] = Counter()
    for entry in manifest.files.values():
        if entry.chunk_ids:
            chunks[entry.language] += len(entry.chunk_ids)
    return min(chunks.items(), key=lambda item: (-item[1], item[0]))[0] if chunks else "fr"


def folder_generation(store: IndexStore) -> Generation:
    """Everything a folder index holds, as the generation a writer takes: documents (in the order of its
    window table), chunks, term counts, vectors, sentence windows."""
    infos = sorted(store.documents(), key=lambda info: store.document_row(info.doc_id))
    documents = [(store.document(info.doc_id), info.language) for info in infos]
    return Generation(
        store.manifest,
        documents,
        list(store.chunks),
        store.bm25,
        store.stored_vectors(),
        store.stored_windows(),
    )


def copy_folder_index(index_dir: str | os.PathLike[str], url: str) -> int:
    """Copy the folder index in `index_dir` into the database at `url` as one generation (its chunks, term
    counts and vectors as they are: nothing is analysed or embedded again); returns the chunk count.
    The database must not hold an index yet (nothing there is replaced by mistake); the folder is not
    touched."""
    from index.store import IndexStore

    store = IndexStore.open(Path(index_dir).expanduser().resolve(), load_model=False)
    generation = folder_generation(store)
    writer = PostgresIndexWriter(url)
    with writer.lock():
        previous = writer.read_previous()
        if previous is not None and previous.chunk_count:  # the manifest's count: no chunk is read
            raise IndexError_(
                f"The database {writer.location} already holds an index ({previous.chunk_count} chunks): copy "
                f"into an empty database, or point {SETTING} at another one."
            )
        writer.write(generation)
    return len(generation.chunks)
