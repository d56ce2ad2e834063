"""Building, updating and reopening an index: incremental runs, atomic writes, mismatches, no pickle."""

from __future__ import annotations

import json
import os
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from index import vector_index as vector_index_module
from index import writer as writer_module
from index.build import build_index
from index.cli import run_index
from index.config import IndexConfig
from index.errors import (
    IndexFormatError,
    IndexLockedError,
    IndexMismatchError,
    IndexNotFoundError,
    IndexPathError,
    IndexWriteError,
)
from index.generations import current_generation
from index.lexical import ANALYZER_VERSION, BM25Index
from index.manifest import Manifest
from index.records import Chunk
from index.store import IndexStore
from index.writer import index_lock
from tests.index.conftest import PARIS


def _config(tmp_path: Path, model: str = "") -> IndexConfig:
    return IndexConfig(index_dir=tmp_path / "index", embedding_model=model, show_progress=False)


def _snapshot(store: IndexStore) -> tuple:
    vectors = store.vector_index.reconstruct_n(0, store.vector_index.ntotal) if store.vector_index else None
    return [c.chunk_id for c in store.chunks], [c.text for c in store.chunks], vectors


def test_incremental_runs(tmp_path: Path, corpus: Path, counting_embedder) -> None:  # noqa: ANN001
    config = _config(tmp_path, counting_embedder.name)
    first = build_index([corpus], config, embedder=counting_embedder)
    assert (first.files, first.new_files, first.mode) == (3, 3, "hybrid")
    assert first.embedded_chunks == first.chunks > 0
    # Every chunk and every sentence window (index.windows) embedded once.
    assert first.embedded_windows == len(store_windows := counting_embedder.embedded) - first.chunks > 0
    assert "Berlin is the capital of Germany." in store_windows
    store = IndexStore.open(config.index_dir, config=config, embedder=counting_embedder)
    assert sorted(d.doc_id for d in store.documents()) == ["berlin.txt", "paris.txt", "sub/lyon.md"]
    before = _snapshot(store)

    counting_embedder.embedded.clear()
    second = build_index([corpus], config, embedder=counting_embedder)
    assert counting_embedder.embedded == [] and second.embedded_chunks == 0 and not second.written
    assert _snapshot(IndexStore.open(config.index_dir, embedder=counting_embedder))[0] == before[0]

    (corpus / "paris.txt").write_text(PARIS + " Elle compte deux millions d’habitants.", encoding="utf-8")
    third = build_index([], config, embedder=counting_embedder)  # roots come from the manifest
    assert (third.changed_files, third.new_files, third.removed_files) == (1, 0, 0)
    changed = PARIS + " Elle compte deux millions d’habitants."
    assert counting_embedder.embedded and all(t in changed for t in counting_embedder.embedded)
    store = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert third.embedded_windows == len(counting_embedder.embedded) - third.embedded_chunks
    assert sum("Berlin" in t or "wall" in t for t in counting_embedder.embedded) == 0  # kept windows reused
    kept_rows = [i for i, c in enumerate(store.chunks) if c.doc_id != "paris.txt"]
    old_rows = [before[0].index(store.chunks[i].chunk_id) for i in kept_rows]
    assert np.array_equal(_snapshot(store)[2][kept_rows], before[2][old_rows]), "unchanged vectors are reused"

    (corpus / "berlin.txt").unlink()
    counting_embedder.embedded.clear()
    fourth = build_index([], config, embedder=counting_embedder)
    assert (fourth.removed_files, fourth.embedded_chunks, fourth.files) == (1, 0, 2)
    assert fourth.embedded_windows == 0 and counting_embedder.embedded == []
    store = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert all(c.doc_id != "berlin.txt" for c in store.chunks)
    assert store.bm25.size == store.vector_index.ntotal == len(store.chunks)
    row, _ = store.search_dense("gastronomie lyonnaise quenelles", 1)[0]
    assert store.chunks[row].doc_id in {"sub/lyon.md", "paris.txt"}
    lexical = store.search_lexical("Quelle est la gastronomie de Lyon ?", 2)
    assert store.chunks[lexical[0][0]].doc_id == "sub/lyon.md"


def test_touching_a_file_does_not_reembed(tmp_path: Path, corpus: Path, counting_embedder) -> None:  # noqa: ANN001
    config = _config(tmp_path, counting_embedder.name)
    build_index([corpus], config, embedder=counting_embedder)
    counting_embedder.embedded.clear()
    os.utime(corpus / "paris.txt", ns=(1, 1))
    report = build_index([corpus], config, embedder=counting_embedder)
    assert report.embedded_chunks == 0 and report.changed_files == 0 and counting_embedder.embedded == []


def test_lexical_mode_and_documents(tmp_path: Path, corpus: Path) -> None:
    config = _config(tmp_path)
    report = build_index([corpus], config)
    assert report.mode == "lexical" and report.embedded_chunks == 0
    store = IndexStore.open(config.index_dir, config=config)
    assert store.mode == "lexical" and store.embedder is None and store.search_dense("Paris", 3) == []
    row, _ = store.search_lexical("Quand la tour Eiffel a-t-elle été construite ?", 1)[0]
    assert store.search_lexical("Quand la tuor Eifel fut-elle construitte ?", 1)[0][0] == row  # typos
    chunk = store.chunks[row]
    assert chunk.doc_id == "paris.txt" and store.chunk(chunk.chunk_id) == chunk
    assert store.document_text("paris.txt")[chunk.start : chunk.end] == chunk.text
    assert store.chunk_index(chunk.chunk_id) == row
    (info,) = [d for d in store.documents() if d.doc_id == "sub/lyon.md"]
    assert info.title == "Lyon" and info.language == "fr" and info.chunk_count >= 1
    assert store.document_language("berlin.txt") == "en"


def test_titles_and_headings_are_searchable_and_old_indexes_are_reanalysed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    filler = " ".join(f"Le rôle numéro {n} fut joué au théâtre de la ville." for n in range(12))
    (folder / "cremer.md").write_text(f"# Bruno Cremer\n\n{filler}\n\nIl débute en 1953.\n", encoding="utf-8")
    (folder / "gabin.md").write_text(f"# Jean Gabin\n\n{filler}\n\nIl débute en 1922.\n", encoding="utf-8")
    config = IndexConfig(
        index_dir=tmp_path / "index", embedding_model="", show_progress=False,
        chunk_size_tokens=32, chunk_overlap_tokens=0,
    )  # fmt: skip
    question = "Quand Cremer débute-t-il ?"

    def best(store: IndexStore) -> Chunk:
        return store.chunks[store.search_lexical(question, 1)[0][0]]

    # An index written by the previous analyzer (chunk text only, version 1): the chunk with the answer no
    # longer says whose life it tells, so the question finds the name or the verb, never both...
    monkeypatch.setattr("index.lexical.ANALYZER_VERSION", 1)
    monkeypatch.setattr(
        "index.lexical.Analyzer.analyze_chunk", lambda self, text, *_, **__: self.analyze(text)
    )
    build_index([folder], config)
    old = IndexStore.open(config.index_dir, config=config)
    assert "1953" not in best(old).text
    monkeypatch.undo()

    # ... and the next build re-analyses it although no file changed: the title now counts in every chunk.
    build_index([folder], config)
    store = IndexStore.open(config.index_dir, config=config)
    assert store.manifest.analyzer["version"] == ANALYZER_VERSION > 1
    assert best(store).doc_id == "cremer.md" and "Il débute en 1953." in best(store).text
    assert "Cremer" not in best(store).text


def test_interrupted_write_keeps_previous_index(tmp_path: Path, corpus: Path, monkeypatch) -> None:  # noqa: ANN001
    config = _config(tmp_path)
    build_index([corpus], config)
    before = _snapshot(IndexStore.open(config.index_dir))
    (corpus / "new.txt").write_text("Un nouveau fichier sur Marseille.", encoding="utf-8")
    for exception in (KeyboardInterrupt(), RuntimeError("disk full")):

        def explode(*args, exc=exception, **kwargs):  # noqa: ANN002, ANN003, ANN202
            raise exc

        # Mid-write: after the texts and chunks are written, before the BM25 files.
        monkeypatch.setattr(BM25Index, "save", explode)
        with pytest.raises(type(exception)):
            build_index([corpus], config)
        monkeypatch.undo()
        assert _snapshot(IndexStore.open(config.index_dir)) == before
        # Between the new generation being complete and CURRENT switching.
        monkeypatch.setattr(writer_module.os, "replace", explode)
        with pytest.raises(type(exception)):
            build_index([corpus], config)
        monkeypatch.undo()
        assert _snapshot(IndexStore.open(config.index_dir)) == before
    report = build_index([corpus], config)
    assert report.new_files == 1
    entries = sorted(p.name for p in config.index_dir.iterdir())
    assert len([e for e in entries if e.startswith("gen-")]) == 1, entries
    assert not [e for e in entries if e.startswith(".tmp")]


def test_model_mismatch(tmp_path: Path, corpus: Path, tiny_embedder) -> None:  # noqa: ANN001
    config = _config(tmp_path, tiny_embedder.name)
    build_index([corpus], config, embedder=tiny_embedder)
    other = config.model_copy(update={"embedding_model": "intfloat/multilingual-e5-small"})
    with pytest.raises(IndexMismatchError, match="--rebuild") as info:
        IndexStore.open(config.index_dir, config=other)
    assert tiny_embedder.name in str(info.value) and "multilingual-e5-small" in str(info.value)
    # The model cannot be loaded now: the build refuses rather than dropping the vectors.
    with pytest.raises(IndexMismatchError, match="vectors"):
        build_index([corpus], other)
    with pytest.raises(IndexMismatchError, match="vectors"):
        build_index([corpus], config.model_copy(update={"embedding_model": ""}))
    assert IndexStore.open(config.index_dir, embedder=tiny_embedder).mode == "hybrid"
    # Opening with lexical-only configured keeps working on the same index.
    assert (
        IndexStore.open(config.index_dir, config=config.model_copy(update={"embedding_model": ""})).mode
        == "lexical"
    )
    report = build_index([corpus], config.model_copy(update={"embedding_model": ""}), rebuild=True)
    assert report.mode == "lexical" and report.files == 3


def test_unknown_format_version_and_missing_index(tmp_path: Path, corpus: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(IndexNotFoundError, match="rag index"):
        IndexStore.open(config.index_dir)
    build_index([corpus], config)
    generation = current_generation(config.resolved_index_dir())
    manifest = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    manifest["format_version"] = 99
    (generation / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexFormatError, match="99.*--rebuild"):
        IndexStore.open(config.index_dir)
    with pytest.raises(IndexFormatError):
        build_index([corpus], config)
    assert build_index([corpus], config, rebuild=True).files == 3
    assert (
        IndexStore.open(config.index_dir).manifest.format_version
        == Manifest.read(current_generation(config.resolved_index_dir())).format_version
    )


def test_missing_path_fails_before_touching_index(tmp_path: Path, corpus: Path) -> None:
    config = _config(tmp_path)
    with pytest.raises(IndexPathError, match="nope"):
        build_index([corpus, tmp_path / "nope"], config)
    assert not config.index_dir.exists()


def test_empty_folder_gives_message_and_valid_index(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    config = _config(tmp_path)
    report = build_index([empty], config)
    assert report.files == 0 and any("No supported files" in m for m in report.messages)
    store = IndexStore.open(config.index_dir)
    assert store.chunks == [] and store.search_lexical("rien", 5) == []


def test_a_path_that_adds_nothing_beside_indexed_folders_is_said(tmp_path: Path, corpus: Path) -> None:
    # Was silent once the index held other files: `rag index empty/` or `rag index notes.odt` printed only
    # the summary, as if it had been indexed.
    config = _config(tmp_path)
    build_index([corpus], config)
    empty = tmp_path / "empty"
    empty.mkdir()
    other = tmp_path / "notes.odt"
    other.write_bytes(b"PK")
    inside = sorted(corpus.glob("*.txt"))[0]  # already indexed through its folder: adds nothing, says nothing
    report = build_index([empty, other, inside], config)
    assert any(f"{empty} holds no supported file" in m for m in report.messages)
    assert any(f"{other} is not a supported file" in m and ".docx" in m for m in report.messages)
    assert not any(str(inside) in m for m in report.messages)


def test_unreadable_files_are_reported_by_name(tmp_path: Path, corpus: Path) -> None:
    (corpus / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.7 broken")
    config = _config(tmp_path)
    report = build_index([corpus], config)
    skipped = {Path(path).name: reason for path, reason in report.skipped}
    assert set(skipped) == {"binary.txt", "broken.pdf"}
    assert "binary" in skipped["binary.txt"] and "PDF" in skipped["broken.pdf"]
    assert report.files == 3


def test_forget_removes_a_root(tmp_path: Path, corpus: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "rome.txt").write_text("Rome est la capitale de l’Italie.", encoding="utf-8")
    config = _config(tmp_path)
    build_index([corpus], config)
    assert build_index([other], config).files == 4
    report = build_index([], config, forget=[corpus])
    assert report.files == 1 and report.removed_files == 3
    assert IndexStore.open(config.index_dir).manifest.roots == [str(other.resolve())]


def test_lock_prevents_two_writers(tmp_path: Path, corpus: Path) -> None:
    config = _config(tmp_path)
    with index_lock(config.resolved_index_dir()), pytest.raises(IndexLockedError, match="process"):
        build_index([corpus], config)
    build_index([corpus], config)


def test_no_pickle_on_disk_or_in_loading(tmp_path: Path, corpus: Path, tiny_embedder, monkeypatch) -> None:  # noqa: ANN001
    config = _config(tmp_path, tiny_embedder.name)
    build_index([corpus], config, embedder=tiny_embedder)
    for path in config.index_dir.rglob("*"):
        if path.is_file():
            head = path.read_bytes()[:2]
            assert not (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")), path
    poisoned = types.ModuleType("pickle")

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        setattr(poisoned, name, refuse)
    monkeypatch.setitem(sys.modules, "pickle", poisoned)
    monkeypatch.setattr(np.lib.format, "pickle", poisoned, raising=False)
    store = IndexStore.open(config.index_dir, embedder=tiny_embedder)
    assert store.mode == "hybrid" and len(store.chunks) >= 3


def test_run_index_summary_and_exit_codes(tmp_path: Path, corpus: Path, capsys) -> None:  # noqa: ANN001
    config = _config(tmp_path)
    (corpus / "binary.txt").write_bytes(b"\x00\x01\x02")
    assert run_index([corpus], config) == 0
    out = capsys.readouterr().out
    assert "skipped" in out and "binary.txt" in out and "3 files" in out and "lexical mode" in out
    assert run_index([corpus], config) == 0
    assert "Up to date" in capsys.readouterr().out
    assert run_index([tmp_path / "missing"], config) == 2
    assert "does not exist" in capsys.readouterr().err


def test_watch_picks_up_changes(tmp_path: Path, corpus: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    config = _config(tmp_path)
    calls = {"n": 0}
    real_sleep = __import__("time").sleep

    def fake_sleep(seconds: float) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            (corpus / "nice.txt").write_text("Nice est au bord de la mer.", encoding="utf-8")
        real_sleep(0)

    monkeypatch.setattr("index.cli.time.sleep", fake_sleep)
    assert run_index([corpus], config, watch=True, poll_seconds=0, max_cycles=2) == 0
    assert "nice.txt" in {d.doc_id for d in IndexStore.open(config.index_dir).documents()}
    assert "Watching" in capsys.readouterr().out


def test_copied_index_folder_still_opens(tmp_path: Path, corpus: Path) -> None:
    config = _config(tmp_path)
    build_index([corpus], config)
    shutil.copytree(config.index_dir, tmp_path / "copy")
    assert len(IndexStore.open(tmp_path / "copy").chunks) == len(IndexStore.open(config.index_dir).chunks)


def test_hnsw_above_the_flat_threshold(tmp_path: Path, corpus: Path, counting_embedder, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(vector_index_module, "FLAT_MAX_VECTORS", 2)
    config = _config(tmp_path, counting_embedder.name)
    build_index([corpus], config, embedder=counting_embedder)
    store = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert store.manifest.vector_index == "hnsw_ip" and hasattr(store.vector_index, "hnsw")
    query = store.chunks[0].text
    assert store.search_dense(query, 1)[0][0] == 0
    (corpus / "nice.txt").write_text("Nice est au bord de la mer Méditerranée.", encoding="utf-8")
    counting_embedder.embedded.clear()
    build_index([corpus], config, embedder=counting_embedder)
    # The new chunk and its one sentence window; the other vectors are read back from HNSW.
    assert counting_embedder.embedded == ["Nice est au bord de la mer Méditerranée."] * 2


def test_default_model_offline_falls_back_to_lexical_fast(
    tmp_path: Path, seeds_dir: Path, capsys, monkeypatch
) -> None:  # noqa: ANN001
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    config = IndexConfig(
        index_dir=tmp_path / "index", show_progress=False
    )  # multilingual-e5-small, not cached
    started = time.perf_counter()
    assert run_index([seeds_dir], config) == 0
    assert time.perf_counter() - started < 30
    captured = capsys.readouterr()
    assert captured.err.count("Warning:") == 1 and "multilingual-e5-small" in captured.err
    assert "lexical mode" in captured.out
    manifest = IndexStore.open(config.index_dir, load_model=False).manifest
    assert manifest.mode == "lexical" and manifest.files["openai-altman.fr.txt"].chunk_ids


def test_a_full_disk_while_writing_is_one_message_and_the_index_is_unchanged(
    tmp_path: Path, corpus: Path, monkeypatch, capsys
) -> None:
    # Was an OSError traceback ("No space left on device") from `rag index` (the index was left whole).
    import errno

    config = _config(tmp_path)
    build_index([corpus], config)
    before = _snapshot(IndexStore.open(config.index_dir))
    (corpus / "new.txt").write_text("Une phrase de plus sur Marseille.", encoding="utf-8")

    def full(*_args, **_kwargs):  # noqa: ANN202
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer_module, "_write_jsonl", full)
    with pytest.raises(IndexWriteError, match="No space left on device.*unchanged.*Free some disk space"):
        build_index([corpus], config)
    assert run_index([corpus], config) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RAG_INDEX__INDEX_DIR" in err
    assert _snapshot(IndexStore.open(config.index_dir)) == before
    assert [p.name for p in config.index_dir.iterdir() if p.name.startswith(".")] == []


def test_an_index_left_empty_remembers_its_folders(tmp_path: Path, corpus: Path) -> None:  # noqa: ANN001
    # Every file moved out for a while (or filtered out by index.extensions): the index holds no chunk, but
    # still the folders it was built from; the next run finds the files back without being given the folder.
    config = _config(tmp_path)
    build_index([corpus], config)
    moved = tmp_path / "moved"
    shutil.move(corpus, moved)
    corpus.mkdir()
    emptied = build_index([], config)
    assert emptied.chunks == 0 and IndexStore.open(config.index_dir).manifest.roots == [str(corpus)]
    shutil.rmtree(corpus)
    shutil.move(moved, corpus)
    back = build_index([], config)
    assert back.files == 3 and back.new_files == 3


def test_no_files_of_the_configured_types_names_those_types(tmp_path: Path, corpus: Path) -> None:  # noqa: ANN001
    config = IndexConfig(
        index_dir=tmp_path / "index", embedding_model="", show_progress=False, extensions=(".docx",)
    )
    report = build_index([corpus], config)
    message = next(m for m in report.messages if "No supported files" in m)
    assert "(index.extensions: .docx)" in message and ".txt" not in message


def test_forget_of_a_path_that_is_no_root_says_what_happens(tmp_path: Path, corpus: Path) -> None:  # noqa: ANN001
    # --forget drops what was given to the index (a folder, a file); a file inside an indexed folder stays
    # while its folder is indexed: said, not an "Up to date" that looks like success.
    config = _config(tmp_path)
    build_index([corpus], config)
    report = build_index([], config, forget=[corpus / "paris.txt", tmp_path / "elsewhere.txt"])
    assert report.files == 3
    assert any(
        f"{corpus / 'paris.txt'} is inside {corpus}, which stays indexed" in m and "move it out" in m
        for m in report.messages
    ), report.messages
    assert any(f"{tmp_path / 'elsewhere.txt'} is not in the index" in m for m in report.messages)
