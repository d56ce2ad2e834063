"""One contract, two stores: the folder index and the PostgreSQL one (a real server, see tests/conftest.py).

Incremental runs, an interrupted write (exception, and kill -9 in a child process), model mismatch,
concurrent writers, and a second reader process. Where the two stores differ on purpose the test says so:
a second folder writer fails at once (flock), a second PostgreSQL writer waits (advisory lock).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.config import IndexConfig
from index.errors import IndexFormatError, IndexLockedError, IndexMismatchError
from index.stores import open_store
from index.writer import index_lock
from tests.conftest import REPO
from tests.index.conftest import PARIS

MARSEILLE = "Marseille est un grand port de la Méditerranée ; la bouillabaisse y est née."


@pytest.fixture(params=["folder", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def config(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> IndexConfig:
    url = request.getfixturevalue("pg_url") if kind == "postgres" else ""
    return IndexConfig(index_dir=tmp_path / "index", store_url=url, embedding_model="", show_progress=False)


def _state(config: IndexConfig) -> tuple:
    store = open_store(config, load_model=False)
    chunks = sorted((c.chunk_id, c.doc_id, c.text) for c in store.chunks)
    return chunks, sorted(d.doc_id for d in store.documents()), store.search_lexical("capitale", 3)


def _windows(store, doc_id: str) -> tuple[list[tuple[int, int]], list]:  # noqa: ANN001
    """A document's windows as (sentence start, end) and their vectors, comparable across stores."""
    spans, vectors = store.windows(doc_id)
    return [(s.sentence, s.end) for s in spans], (
        vectors.astype(float).round(3).tolist() if vectors is not None else None
    )


def _best_doc(store, question: str) -> str | None:  # noqa: ANN001
    found = store.search_lexical(question, 1)
    return store.chunks[found[0][0]].doc_id if found else None


def test_incremental_runs(kind: str, config: IndexConfig, corpus: Path, counting_embedder) -> None:  # noqa: ANN001
    config = config.model_copy(update={"embedding_model": counting_embedder.name})
    first = build_index([corpus], config, embedder=counting_embedder)
    assert (first.files, first.new_files, first.mode) == (3, 3, "hybrid")
    assert first.embedded_chunks == first.chunks > 0
    # Both stores keep sentence windows (index.windows), embedded once too.
    assert len(counting_embedder.embedded) == first.chunks + first.embedded_windows
    assert first.embedded_windows > 0 and "Berlin is the capital of Germany." in counting_embedder.embedded
    store = open_store(config, embedder=counting_embedder)
    assert sorted(d.doc_id for d in store.documents()) == ["berlin.txt", "paris.txt", "sub/lyon.md"]
    before = sorted(c.chunk_id for c in store.chunks)
    berlin_windows = _windows(store, "berlin.txt")

    counting_embedder.embedded.clear()
    second = build_index([corpus], config, embedder=counting_embedder)
    assert counting_embedder.embedded == [] and second.embedded_chunks == 0 and not second.written
    assert sorted(c.chunk_id for c in open_store(config, embedder=counting_embedder).chunks) == before

    (corpus / "paris.txt").write_text(PARIS + " Elle compte deux millions d’habitants.", encoding="utf-8")
    third = build_index([], config, embedder=counting_embedder)  # roots come from the manifest
    assert (third.changed_files, third.new_files, third.removed_files) == (1, 0, 0)
    changed = PARIS + " Elle compte deux millions d’habitants."
    assert counting_embedder.embedded and all(t in changed for t in counting_embedder.embedded)
    assert third.embedded_windows == len(counting_embedder.embedded) - third.embedded_chunks > 0
    store = open_store(config, embedder=counting_embedder)
    assert _windows(store, "berlin.txt") == berlin_windows  # kept: not embedded again, stored as they were
    paris = store.document_text("paris.txt")
    assert paris[slice(*_windows(store, "paris.txt")[0][-1])] == "Elle compte deux millions d’habitants."

    (corpus / "berlin.txt").unlink()
    counting_embedder.embedded.clear()
    fourth = build_index([], config, embedder=counting_embedder)
    assert (fourth.removed_files, fourth.embedded_chunks, fourth.files) == (1, 0, 2)
    store = open_store(config, embedder=counting_embedder)
    assert store.mode == "hybrid" and len(store) == fourth.chunks
    assert all(c.doc_id != "berlin.txt" for c in store.chunks)
    dense = store.search_dense("gastronomie lyonnaise quenelles", 10)
    assert len(dense) == len(store) and -1.0 <= dense[0][1] <= 1.0001
    assert _best_doc(store, "Quelle est la gastronomie de Lyon ?") == "sub/lyon.md"
    assert _best_doc(store, "Combien d'habitants compte Paris ?") == "paris.txt"
    assert _best_doc(store, "Quand la tuor Eifel fut-elle construitte ?") == "paris.txt"  # typo repair
    row, _ = store.search_lexical("Quand la tour Eiffel a-t-elle été construite ?", 1)[0]
    chunk = store.chunks[row]
    assert store.chunk(chunk.chunk_id) == chunk and store.chunk_index(chunk.chunk_id) == row
    assert store.document_text("paris.txt")[chunk.start : chunk.end] == chunk.text
    assert store.document_language("paris.txt") == "fr"


def test_same_lexical_ranking_on_both_stores(tmp_path: Path, corpus: Path, pg_url: str) -> None:
    folder = IndexConfig(index_dir=tmp_path / "index", embedding_model="", show_progress=False)
    postgres = folder.model_copy(update={"store_url": pg_url})
    for config in (folder, postgres):
        build_index([corpus], config)
    a, b = open_store(folder), open_store(postgres)
    for question in ("Quelle est la capitale de la France ?", "mur de Berlin 1989", "gastronomie lyonnaise"):
        ranked_a = [(a.chunks[row].chunk_id, round(score, 4)) for row, score in a.search_lexical(question, 5)]
        ranked_b = [(b.chunks[row].chunk_id, round(score, 4)) for row, score in b.search_lexical(question, 5)]
        assert ranked_a == ranked_b and ranked_a
        rows_a = [row for row, _ in a.search_lexical(question, 20)]
        rows_b = [b.chunk_index(a.chunks[row].chunk_id) for row in rows_a]
        # Term coverage (hybrid fusion's fourth signal) is the same share on both stores.
        covered_a = a.term_coverage(question, rows_a)
        covered_b = b.term_coverage(question, rows_b)
        assert [round(covered_a[r], 6) for r in rows_a] == [round(covered_b[r], 6) for r in rows_b]
        assert max(covered_a.values()) > 0


def test_question_analysed_once_per_generation(
    kind: str, config: IndexConfig, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lexical search and the term coverage of one question share its analysis (on PostgreSQL also
    the SQL lookups of its terms); a write starts it again, so a term the write adds is counted."""
    import index.lexical
    import index.pg_store
    import index.store

    calls: list[str] = []

    def counting(analyzer, query, *args, **options):  # noqa: ANN001, ANN002, ANN003
        calls.append(query)
        return index.lexical.analyze_query(analyzer, query, *args, **options)

    monkeypatch.setattr(index.store, "analyze_query", counting)
    monkeypatch.setattr(index.pg_store, "analyze_query", counting)
    build_index([corpus], config)
    store = open_store(config, load_model=False)
    question = "Quelle ville sert des quenelles à Marseille ?"
    rows = [row for row, _ in store.search_lexical(question, 5)]
    analysed = len(calls)
    assert analysed > 0 and rows
    before = store.term_coverage(question, rows)
    assert len(calls) == analysed  # shared, not analysed again
    assert max(before.values()) > 0

    (corpus / "marseille.txt").write_text(MARSEILLE + " On y sert aussi des quenelles.", encoding="utf-8")
    build_index([corpus], config)
    if kind == "folder":  # a folder store is one generation: the next one is opened
        store = open_store(config, load_model=False)
    rows = [row for row, _ in store.search_lexical(question, 5)]
    assert len(calls) > analysed  # the new generation analyses the question again
    marseille = next(r for r in rows if store.chunks[r].doc_id == "marseille.txt")
    after = store.term_coverage(question, rows)
    assert after[marseille] == max(after.values()) > max(before.values())


def test_same_windows_on_both_stores(tmp_path: Path, corpus: Path, pg_url: str, tiny_embedder) -> None:  # noqa: ANN001
    """The sentence windows and their vectors read back from PostgreSQL are the folder store's; in lexical
    mode both keep the windows without vectors."""
    for model, embedder in (("", None), (tiny_embedder.name, tiny_embedder)):
        folder = IndexConfig(index_dir=tmp_path / f"index{model}", embedding_model=model, show_progress=False)
        postgres = folder.model_copy(update={"store_url": pg_url})
        stores = []
        for config in (folder, postgres):
            build_index([corpus], config, embedder=embedder, rebuild=True)
            stores.append(open_store(config, embedder=embedder))
        a, b = stores
        assert a.mode == b.mode == ("hybrid" if model else "lexical")
        for doc in ("paris.txt", "berlin.txt", "sub/lyon.md"):
            assert _windows(a, doc) == _windows(b, doc) and _windows(b, doc)[0]
            assert (_windows(b, doc)[1] is None) == (not model)
        question = "Quand la tour Eiffel fut-elle construite ?"
        assert (a.query_vector(question) is None) == (b.query_vector(question) is None) == (not model)


def test_postings_cut_per_term_keeps_the_ranking(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL reads a frequent term only for its best postings (`POSTINGS_PER_TERM`), then scores the
    best rows exactly: with a cut of 3 postings on a corpus where every term is in 40 chunks, the top
    rows and their scores are the folder store's exact BM25."""
    docs = tmp_path / "docs"
    docs.mkdir()
    words = ["fromage", "montagne", "rivière", "château", "cathédrale", "forêt", "village", "moulin"]
    for i in range(40):
        # Every document holds every word, with counts and lengths that vary: all postings differ in weight.
        text = " ".join(f"{w} " * (1 + (i * (j + 3)) % 5) for j, w in enumerate(words)) + " pont" * (i % 7)
        (docs / f"d{i:02d}.txt").write_text(text.strip() + ".", encoding="utf-8")
    folder = IndexConfig(index_dir=tmp_path / "index", embedding_model="", show_progress=False)
    postgres = folder.model_copy(update={"store_url": pg_url})
    for config in (folder, postgres):
        build_index([docs], config)
    a, b = open_store(folder), open_store(postgres)
    b.postings_per_term = 3
    for question in ("fromage de montagne", "château forêt moulin", "village rivière cathédrale pont"):
        exact = [(a.chunks[row].doc_id, round(score, 4)) for row, score in a.search_lexical(question, 3)]
        cut = [(b.chunks[row].doc_id, round(score, 4)) for row, score in b.search_lexical(question, 3)]
        assert cut == exact and len(exact) == 3


def test_interrupted_write_keeps_previous_index(
    kind: str, config: IndexConfig, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index([corpus], config)
    before = _state(config)
    (corpus / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
    (corpus / "berlin.txt").unlink()

    def explode(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    # After every row is written, before the commit point.
    if kind == "folder":
        from index import writer as writer_module

        monkeypatch.setattr(writer_module.os, "replace", explode)
    else:
        from index.pg_store import PostgresIndexWriter

        monkeypatch.setattr(PostgresIndexWriter, "_write_manifest", explode)
    with pytest.raises(KeyboardInterrupt):
        build_index([corpus], config)
    monkeypatch.undo()
    assert _state(config) == before
    report = build_index([corpus], config)
    assert (report.new_files, report.removed_files) == (1, 1)
    assert _best_doc(open_store(config), "bouillabaisse") == "marseille.txt"


KILLED_WRITER = """
import os, signal, sys
from index import writer as writer_module
from index.build import build_index
from index.config import IndexConfig
from index.pg_store import PostgresIndexWriter

def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

writer_module.os.replace = die           # folder store: just before CURRENT switches
PostgresIndexWriter._write_manifest = die     # PostgreSQL: every row sent, the transaction still open
config = IndexConfig(index_dir=sys.argv[1], store_url=sys.argv[2], embedding_model="", show_progress=False)
build_index([sys.argv[3]], config)
"""


def test_kill_9_during_a_write_leaves_the_index_whole(
    config: IndexConfig, corpus: Path, tmp_path: Path
) -> None:
    build_index([corpus], config)
    before = _state(config)
    (corpus / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
    script = tmp_path / "killed.py"
    script.write_text(KILLED_WRITER, encoding="utf-8")
    child = subprocess.run(
        [sys.executable, str(script), str(config.index_dir), config.store_url, str(corpus)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    assert _state(config) == before
    report = build_index([corpus], config)  # the dead writer's lock is gone with it
    assert report.new_files == 1


def test_model_mismatch(config: IndexConfig, corpus: Path, tiny_embedder) -> None:  # noqa: ANN001
    config = config.model_copy(update={"embedding_model": tiny_embedder.name})
    build_index([corpus], config, embedder=tiny_embedder)
    other = config.model_copy(update={"embedding_model": "intfloat/multilingual-e5-small"})
    with pytest.raises(IndexMismatchError, match="--rebuild") as info:
        open_store(other)
    assert tiny_embedder.name in str(info.value) and "multilingual-e5-small" in str(info.value)
    with pytest.raises(IndexMismatchError, match="vectors"):
        build_index([corpus], config.model_copy(update={"embedding_model": ""}))
    assert open_store(config, embedder=tiny_embedder).mode == "hybrid"
    assert open_store(config.model_copy(update={"embedding_model": ""})).mode == "lexical"
    report = build_index([corpus], config.model_copy(update={"embedding_model": ""}), rebuild=True)
    assert report.mode == "lexical" and report.files == 3
    assert open_store(config.model_copy(update={"embedding_model": ""})).search_dense("Paris", 3) == []


def test_concurrent_writers(kind: str, config: IndexConfig, corpus: Path) -> None:
    build_index([corpus], config)
    (corpus / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
    if kind == "folder":
        with index_lock(config.resolved_index_dir()), pytest.raises(IndexLockedError, match="being written"):
            build_index([corpus], config)  # the folder store refuses a second writer at once
        return
    from index.pg_store import PostgresIndexWriter

    done: list[object] = []
    with PostgresIndexWriter(config.store_url).lock():  # another writer holds the advisory lock
        thread = threading.Thread(target=lambda: done.append(build_index([corpus], config)))
        thread.start()
        time.sleep(1.5)
        assert not done, "the second writer must wait for the first"
        assert _best_doc(open_store(config), "bouillabaisse") is None  # readers are not blocked
    thread.join(60)
    assert done and done[0].new_files == 1
    assert _best_doc(open_store(config), "bouillabaisse") == "marseille.txt"


READER = """
import sys
from index.config import IndexConfig
from index.stores import open_store

store = open_store(IndexConfig(store_url=sys.argv[1], embedding_model=""))
for line in sys.stdin:
    found = store.search_lexical(line, 1)
    print(store.chunks[found[0][0]].doc_id if found else "-", flush=True)
"""


def test_second_process_sees_new_documents_at_its_next_question(
    pg_url: str, corpus: Path, tmp_path: Path
) -> None:
    """PostgreSQL only: a folder index is loaded in memory and stays as it was opened."""
    config = IndexConfig(
        index_dir=tmp_path / "unused", store_url=pg_url, embedding_model="", show_progress=False
    )
    build_index([corpus], config)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, pg_url],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdin is not None and reader.stdout is not None

        def ask(question: str) -> str:
            reader.stdin.write(question + "\n")
            reader.stdin.flush()
            return reader.stdout.readline().strip()

        assert ask("bouillabaisse Méditerranée") == "-"
        (corpus / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
        build_index([corpus], config)
        assert ask("bouillabaisse Méditerranée") == "marseille.txt"
        (corpus / "marseille.txt").unlink()
        build_index([corpus], config)
        assert ask("bouillabaisse Méditerranée") == "-"
        assert ask("gastronomie lyonnaise") == "sub/lyon.md"
    finally:
        reader.kill()
        reader.wait(10)


def test_a_reader_never_waits_for_a_writer(pg_url: str, corpus: Path, tmp_path: Path) -> None:
    """A write transaction left open (rows sent, not committed) hides its rows and blocks no reader."""
    from index.pg_store import PostgresIndexWriter

    config = IndexConfig(
        index_dir=tmp_path / "unused", store_url=pg_url, embedding_model="", show_progress=False
    )
    build_index([corpus], config)
    store = open_store(config)
    entered, release = threading.Event(), threading.Event()
    original = PostgresIndexWriter._write_manifest

    def slow_commit(self, *args):  # noqa: ANN001, ANN002, ANN202
        entered.set()
        release.wait(30)
        return original(self, *args)

    PostgresIndexWriter._write_manifest = slow_commit
    try:
        (corpus / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
        (corpus / "paris.txt").unlink()
        writer = threading.Thread(target=build_index, args=([corpus], config))
        writer.start()
        assert entered.wait(30)
        started = time.perf_counter()
        assert _best_doc(store, "bouillabaisse") is None and _best_doc(store, "tour Eiffel") == "paris.txt"
        assert time.perf_counter() - started < 5
        release.set()
        writer.join(60)
    finally:
        release.set()
        PostgresIndexWriter._write_manifest = original
    assert _best_doc(store, "bouillabaisse") == "marseille.txt" and _best_doc(store, "tour Eiffel") is None


def test_folder_index_moves_to_postgres_without_reembedding(
    tmp_path: Path,
    corpus: Path,
    pg_url: str,
    counting_embedder,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    from rag.cli import main

    folder = IndexConfig(
        index_dir=tmp_path / "index", embedding_model=counting_embedder.name, show_progress=False
    )
    build_index([corpus], folder, embedder=counting_embedder)
    counting_embedder.embedded.clear()
    environ = {"RAG_INDEX__STORE_URL": pg_url, "RAG_INDEX__EMBEDDING_MODEL": counting_embedder.name}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environ.items():
            patch.setenv(key, value)
        assert main(["index", "--from-folder", str(folder.index_dir)]) == 0
        assert "nothing embedded again" in capsys.readouterr().out
        # Never over an existing index, and refused without reading the chunks there.
        patch.setattr("index.pg_store.PostgresPrevious.chunks", property(lambda self: pytest.fail("read")))
        assert main(["index", "--from-folder", str(folder.index_dir)]) == 2
        assert "already holds an index (3 chunks)" in capsys.readouterr().err
    assert counting_embedder.embedded == []
    a = open_store(folder, embedder=counting_embedder)
    b = open_store(folder.model_copy(update={"store_url": pg_url}), embedder=counting_embedder)
    assert b.mode == "hybrid" and len(b) == len(a)
    for question in ("Quelle est la capitale de la France ?", "gastronomie lyonnaise"):
        for search in ("search_lexical", "search_dense"):
            ranked_a = [(a.chunks[r].chunk_id, round(s, 4)) for r, s in getattr(a, search)(question, 5)]
            ranked_b = [(b.chunks[r].chunk_id, round(s, 4)) for r, s in getattr(b, search)(question, 5)]
            assert ranked_a == ranked_b
    for doc in ("paris.txt", "berlin.txt", "sub/lyon.md"):  # the sentence windows move with their vectors
        assert _windows(a, doc) == _windows(b, doc) and _windows(b, doc)[1] is not None
    # The moved index is updated incrementally like any other: nothing re-embedded for unchanged files.
    report = build_index(
        [corpus], folder.model_copy(update={"store_url": pg_url}), embedder=counting_embedder
    )
    assert report.embedded_chunks == 0 and counting_embedder.embedded == []


def test_two_assistants_on_one_database(pg_url: str, corpus: Path, tmp_path: Path) -> None:
    """What a second `rag chat` sees: documents added through another assistant answer its next question."""
    from rag import build_assistant, open_assistant
    from rag.settings import load_settings

    settings = load_settings(
        overrides={"index.store_url": pg_url, "index.embedding_model": "", "index.show_progress": False}
    )
    first = build_assistant([corpus], settings)
    second = open_assistant(settings)
    question = "Où la bouillabaisse est-elle née ?"
    assert second.ask(question).abstained
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
    first.add_documents([extra])
    answer = second.ask(question)
    assert not answer.abstained and "Marseille" in answer.text
    assert {c.doc_id for c in answer.citations} == {"marseille.txt"}


def test_instruction_flag_is_stored_and_refreshed(kind: str, config: IndexConfig, tmp_path: Path) -> None:
    from index.instructions import DETECTOR_VERSION
    from tests.index.test_index_instructions import INJECTED

    docs = tmp_path / "flagged"
    docs.mkdir()
    (docs / "evil.txt").write_text(INJECTED, encoding="utf-8")
    (docs / "good.txt").write_text(MARSEILLE, encoding="utf-8")
    build_index([docs], config)

    def flags() -> dict[str, bool]:
        return {chunk.doc_id: chunk.instruction_like for chunk in open_store(config).chunks}

    assert flags() == {"evil.txt": True, "good.txt": False}
    assert open_store(config).manifest.instruction_detector == DETECTOR_VERSION
    if kind == "postgres":  # an index flagged by no detector yet (version 0): the next run flags it
        import psycopg

        with psycopg.connect(config.store_url, autocommit=True) as conn:
            conn.execute("UPDATE rag_chunks SET instruction_like = false")
            conn.execute(
                "UPDATE rag_manifest SET manifest = jsonb_set(manifest, '{instruction_detector}', '0')"
            )
        assert flags() == {"evil.txt": False, "good.txt": False}
        assert build_index([docs], config).written
        assert flags() == {"evil.txt": True, "good.txt": False}


def test_a_schema_2_index_gets_windows_without_embedding_its_chunks_again(
    pg_url: str,
    corpus: Path,
    tmp_path: Path,
    counting_embedder,  # noqa: ANN001
) -> None:
    """Schema 3 added the impact-ordered postings and the windows: a database written by schema 2 is
    migrated by the next `rag index`, which embeds the windows only (the chunks and vectors are kept)."""
    import psycopg

    config = IndexConfig(
        index_dir=tmp_path / "unused",
        store_url=pg_url,
        embedding_model=counting_embedder.name,
        show_progress=False,
    )
    build_index([corpus], config, embedder=counting_embedder)
    reader = open_store(config, embedder=counting_embedder)
    before = reader.search_lexical("capitale de la France", 3)
    # Closed before the DDL below: its dense prefetch (started by the lexical search) reads rag_manifest
    # then rag_documents, the DDL locks them the other way round (a deadlock, seen under load).
    reader.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:  # back to what schema 2 wrote
        conn.execute(
            "DROP TABLE rag_windows; DROP INDEX rag_postings_impact; ALTER TABLE rag_postings DROP COLUMN impact; "
            "ALTER TABLE rag_manifest DROP COLUMN impact_length; UPDATE rag_schema SET version = 2"
        )
    with pytest.raises(IndexFormatError, match="older"):
        open_store(config, embedder=counting_embedder)
    counting_embedder.embedded.clear()
    report = build_index([corpus], config, embedder=counting_embedder)
    assert report.embedded_chunks == 0 and report.embedded_windows == len(counting_embedder.embedded) > 0
    store = open_store(config, embedder=counting_embedder)
    assert store.search_lexical("capitale de la France", 3) == before
    spans, vectors = store.windows("paris.txt")
    assert spans and vectors is not None and len(vectors) == len(spans)


class _ChunksNotIterated(list):
    """A store's chunk table that fails when something reads every chunk (lookups by row still work)."""

    def __init__(self, table) -> None:  # noqa: ANN001
        super().__init__()
        self.table = table

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, row):  # noqa: ANN001, ANN204
        return self.table[row]

    def __iter__(self):  # noqa: ANN204
        raise AssertionError("every chunk was read to count the documents")


def test_document_count_reads_no_chunk(kind: str, config: IndexConfig, corpus: Path) -> None:
    """The chat shows the document count on every page load: both stores count without reading chunks."""
    from rag import Assistant
    from rag.settings import load_settings

    build_index([corpus], config)
    store = open_store(config, load_model=False)
    assert len({c.doc_id for c in store.chunks}) == 3
    store.chunks = _ChunksNotIterated(store.chunks)
    assert store.document_count() == 3
    settings = load_settings(
        environ={},
        overrides={"index.index_dir": str(config.index_dir), "index.store_url": config.store_url,
                   "index.embedding_model": "", "index.show_progress": False},
    )  # fmt: skip
    status = Assistant(settings, store).status()
    assert (status["documents"], status["chunks"]) == (3, len(store.chunks))

    (corpus / "berlin.txt").unlink()
    build_index([corpus], config)
    assert open_store(config, load_model=False).document_count() == 2


def test_a_run_that_changes_nothing_reads_no_chunk_nor_window(
    pg_url: str, corpus: Path, tiny_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """`rag index` again on an unchanged folder: the PostgreSQL store answers from its manifest (a 1M-chunk
    database is not read back)."""
    from index import pg_store

    config = IndexConfig(store_url=pg_url, embedding_model=tiny_embedder.name, show_progress=False)
    first = build_index([corpus], config, embedder=tiny_embedder)

    def fail(*_: object) -> None:
        raise AssertionError("read back for a run that changes nothing")

    monkeypatch.setattr(pg_store.PostgresPrevious, "chunks", property(fail))
    monkeypatch.setattr(pg_store.PostgresPrevious, "stored_windows", fail)
    monkeypatch.setattr(pg_store.PostgresPrevious, "stored_vectors", fail)
    again = build_index([corpus], config, embedder=tiny_embedder)
    assert not again.written and (again.files, again.chunks) == (first.files, first.chunks)


def test_dense_search_runs_beside_the_lexical_one(
    tmp_path: Path,
    corpus: Path,
    pg_url: str,
    tiny_embedder,  # noqa: ANN001
) -> None:
    """PostgreSQL only: a lexical search starts the dense search of the same question on a second
    connection. Its result is the one a dense search alone gives (the folder store's), its chunks come
    with it, a prefetch made before a write is not used after it, and a lexical-only caller keeps few."""
    from index.pg_store import DENSE_PREFETCH_KEPT

    folder = IndexConfig(
        index_dir=tmp_path / "index", embedding_model=tiny_embedder.name, show_progress=False
    )
    postgres = folder.model_copy(update={"store_url": pg_url})
    for config in (folder, postgres):
        build_index([corpus], config, embedder=tiny_embedder)
    reference, alone, paired = (open_store(c, embedder=tiny_embedder) for c in (folder, postgres, postgres))
    try:
        for question in ("Quand la tour Eiffel fut-elle construite ?", "gastronomie lyonnaise", "capital"):
            expected = [
                (reference.chunks[row].chunk_id, round(score, 4))
                for row, score in reference.search_dense(question, 3)
            ]
            assert [
                (alone.chunks[r].chunk_id, round(s, 4)) for r, s in alone.search_dense(question, 3)
            ] == expected
            paired.search_lexical(question, 3)
            found = paired.search_dense(question, 3)
            assert not paired._dense_prefetched  # taken
            with paired.connection_lock:  # the chunks came with the search: none is fetched now
                paired.connection.close()
                assert [(paired.chunks[r].chunk_id, round(s, 4)) for r, s in found] == expected
                paired.connection = psycopg_connect(pg_url)
        # A write between the two searches: the dense search sees the new document.
        question = "bouillabaisse Méditerranée"
        paired.search_lexical(question, 5)
        paired._dense_prefetched[(question, 5)][1].result()
        (corpus / "marseille.txt").write_text(MARSEILLE, encoding="utf-8")
        build_index([corpus], postgres, embedder=tiny_embedder)
        assert "marseille.txt" in {paired.chunks[row].doc_id for row, _ in paired.search_dense(question, 5)}
        for i in range(3 * DENSE_PREFETCH_KEPT):  # lexical only: prefetches are dropped, not piled up
            paired.search_lexical(f"capitale {i}", 3)
            assert len(paired._dense_prefetched) <= DENSE_PREFETCH_KEPT
    finally:
        for store in (alone, paired):
            store.close()
    assert paired._dense_worker is not None and paired._dense_worker._shutdown


def test_a_failed_dense_prefetch_is_searched_again(
    corpus: Path,
    pg_url: str,
    tiny_embedder,  # noqa: ANN001
    tmp_path: Path,
) -> None:
    """PostgreSQL only: a prefetch that failed in its worker (e.g. a deadlock with a migration's DDL) does
    not fail the question: `search_dense` searches again and returns what a dense search alone gives."""
    import psycopg

    config = IndexConfig(
        index_dir=tmp_path / "unused",
        store_url=pg_url,
        embedding_model=tiny_embedder.name,
        show_progress=False,
    )
    build_index([corpus], config, embedder=tiny_embedder)
    store = open_store(config, embedder=tiny_embedder)
    try:
        question = "Quand la tour Eiffel fut-elle construite ?"
        expected = store.search_dense(question, 3)
        search = store._dense_search

        def deadlocked(query: str, k: int, generation: int | None = None):  # noqa: ANN202
            if generation is not None:  # the prefetch
                raise psycopg.errors.DeadlockDetected("deadlock detected")
            return search(query, k, generation)

        store._dense_search = deadlocked  # type: ignore[method-assign]
        store.search_lexical(question, 3)
        assert store.search_dense(question, 3) == expected
    finally:
        store.close()


def psycopg_connect(url: str):  # noqa: ANN201
    import psycopg

    return psycopg.connect(url, autocommit=True)


ROME = "Rome est la capitale de l'Italie. Le Colisée y fut inauguré en l'an 80."
# What a previous index hands out that an incremental run must not read for the documents it keeps.
_READ_BACK = {"chunks", "chunk_index", "document", "row_term_counts", "stored_vectors", "stored_windows"}


class _CountingPrevious:
    """The previous index as `build_index` sees it, recording which of its rows it reads back."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self.read: list[str] = []

    def __getattr__(self, name: str) -> object:
        value = getattr(self._inner, name)
        if name == "chunks":
            self.read.append(name)
        elif name in _READ_BACK and callable(value):

            def counted(*args: object, **kwargs: object) -> object:
                self.read.append(name)
                return value(*args, **kwargs)

            return counted
        return value


def _counting_writer(config: IndexConfig) -> tuple[object, list[_CountingPrevious]]:
    from index.stores import open_writer

    writer = open_writer(config)
    seen: list[_CountingPrevious] = []
    original = writer.read_previous

    def read_previous() -> object:
        previous = original()
        if previous is None:
            return None
        seen.append(_CountingPrevious(previous))
        return seen[-1]

    writer.read_previous = read_previous  # type: ignore[method-assign]
    return writer, seen


def _pg_rows(url: str) -> dict[str, set[tuple]]:
    """Every stored row of the chunks, vectors, postings and windows, with its row version (xmin: a
    rewritten row has a new one)."""
    import psycopg

    with psycopg.connect(url) as conn:
        return {
            table: set(conn.execute(f"SELECT xmin::text, {columns} FROM {table}").fetchall())
            for table, columns in (
                ("rag_chunks", "row_id, chunk_id, doc_id"),
                ("rag_vectors", "row_id"),
                ("rag_postings", "row_id, term_id, tf"),
                ("rag_windows", "doc_id, ordinal"),
            )
        }


def test_an_incremental_run_reads_and_rewrites_only_what_changed(
    kind: str,
    config: IndexConfig,
    corpus: Path,
    counting_embedder,  # noqa: ANN001
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One file added, one changed, one removed: the build reads nothing of the unchanged document back
    (no chunk, term count, vector nor window: a 1M-chunk index is not read for a one-file change), embeds
    only the new text, and PostgreSQL leaves the unchanged document's rows as they were (same row ids,
    same row versions). The result is the index a full rebuild of the same files gives."""
    from index import pg_store

    # Three tiny files: any change moves the average chunk length past the drift at which PostgreSQL
    # renews every posting's stored impact (by design; a one-file change to a big index does not).
    monkeypatch.setattr(pg_store, "IMPACT_LENGTH_DRIFT", 10.0)
    config = config.model_copy(update={"embedding_model": counting_embedder.name})
    build_index([corpus], config, embedder=counting_embedder)
    before = _pg_rows(config.store_url) if kind == "postgres" else None
    store = open_store(config, embedder=counting_embedder)
    lyon_chunks = [c for c in store.chunks if c.doc_id == "sub/lyon.md"]
    lyon_windows = _windows(store, "sub/lyon.md")

    (corpus / "rome.txt").write_text(ROME, encoding="utf-8")
    (corpus / "paris.txt").write_text(PARIS + " Elle compte deux millions d’habitants.", encoding="utf-8")
    (corpus / "berlin.txt").unlink()
    counting_embedder.embedded.clear()
    writer, seen = _counting_writer(config)
    report = build_index([corpus], config, embedder=counting_embedder, writer=writer)  # type: ignore[arg-type]
    assert (report.new_files, report.changed_files, report.removed_files, report.files) == (1, 1, 1, 3)
    assert seen and seen[0].read == []  # nothing of the kept document read back
    assert counting_embedder.embedded and not any(c.text in counting_embedder.embedded for c in lyon_chunks)

    store = open_store(config, embedder=counting_embedder)
    assert _windows(store, "sub/lyon.md") == lyon_windows
    assert [c for c in store.chunks if c.doc_id == "sub/lyon.md"] == lyon_chunks
    if kind == "postgres":
        after = _pg_rows(config.store_url)
        lyon_rows = {row for (_, row, _, doc) in before["rag_chunks"] if doc == "sub/lyon.md"}
        for table, rows in before.items():
            kept = {
                r for r in rows if (r[1] in lyon_rows if table != "rag_windows" else r[1] == "sub/lyon.md")
            }
            assert kept and kept <= after[table], table  # same rows, same versions: not rewritten

    rebuilt = config.model_copy(update={"index_dir": tmp_path / "rebuilt", "store_url": ""})
    build_index([corpus], rebuilt, embedder=counting_embedder)
    fresh = open_store(rebuilt, embedder=counting_embedder)
    assert _state(config)[:2] == _state(rebuilt)[:2]  # chunks and documents (rows are numbered apart)
    assert store.main_language == fresh.main_language and len(store) == len(fresh)
    for doc_id in ("paris.txt", "rome.txt", "sub/lyon.md"):
        assert _windows(store, doc_id) == _windows(fresh, doc_id)
    for question in ("Quelle est la capitale de l'Italie ?", "gastronomie lyonnaise", "habitants de Paris"):
        ranked = [(store.chunks[r].chunk_id, round(s, 4)) for r, s in store.search_lexical(question, 5)]
        assert ranked == [
            (fresh.chunks[r].chunk_id, round(s, 4)) for r, s in fresh.search_lexical(question, 5)
        ]
        dense = [(store.chunks[r].chunk_id, round(s, 3)) for r, s in store.search_dense(question, 5)]
        assert dense == [(fresh.chunks[r].chunk_id, round(s, 3)) for r, s in fresh.search_dense(question, 5)]


def test_a_folder_hnsw_index_that_loses_no_row_is_extended(
    tmp_path: Path, corpus: Path, counting_embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # noqa: ANN001
    """Above FLAT_MAX_VECTORS the folder store's vectors are an HNSW graph, which an added file extends
    (its build is the cost of a big index); a removed file makes it build again."""
    from index import vector_index

    monkeypatch.setattr(vector_index, "FLAT_MAX_VECTORS", 2)
    config = IndexConfig(
        index_dir=tmp_path / "index", embedding_model=counting_embedder.name, show_progress=False
    )
    build_index([corpus], config, embedder=counting_embedder)
    built = []
    monkeypatch.setattr(
        vector_index,
        "make_vector_index",
        lambda v, original=vector_index.make_vector_index: built.append(len(v)) or original(v),
    )
    (corpus / "rome.txt").write_text(ROME, encoding="utf-8")
    build_index([corpus], config, embedder=counting_embedder)
    store = open_store(config, embedder=counting_embedder)
    assert built == [] and hasattr(store.vector_index, "hnsw") and store.vector_index.ntotal == len(store)
    stored = store.vector_index.reconstruct_n(0, len(store))
    assert np.allclose(stored, counting_embedder.embed_passages([c.text for c in store.chunks]), atol=1e-5)
    _, found = store.vector_index.search(stored, 1)
    assert found[:, 0].tolist() == list(range(len(store)))
    (corpus / "berlin.txt").unlink()
    build_index([corpus], config, embedder=counting_embedder)
    assert built == [len(open_store(config, load_model=False))]
