"""`rag eval` with bad inputs: one line naming the problem and the fix, exit 2, before anything is run (a
report folder that cannot be written must not be found out after the whole evaluation)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from eval.datasets import DatasetError, load_golden
from rag.cli import main
from tests.conftest import EMPTY_CONFIG

GOOD = {
    "id": "x",
    "question": "Que fait le chat ?",
    "lang": "fr",
    "answerable": True,
    "answer": "Il dort.",
    "evidence": [{"doc": "a.txt", "quote": "Le chat dort."}],
}


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("Le chat dort.", encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", "")
    monkeypatch.setenv("RAG_CONFIG", str(EMPTY_CONFIG))
    monkeypatch.setenv("RAG_INDEX__SHOW_PROGRESS", "false")
    monkeypatch.setenv("RAG_EVAL__RUNS_DIR", str(tmp_path / "runs"))


def _golden(tmp_path: Path, *lines: object, raw: bytes | None = None) -> Path:
    path = tmp_path / "golden.jsonl"
    if raw is not None:
        path.write_bytes(raw)
    else:
        path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"lang": "FR"}, r"golden.jsonl:1: lang 'FR' is not a language code.*ISO 639-1.*fr, en, de"),
        ({"lang": "French"}, r"lang 'French' is not a language code"),
        ({"lang": None}, r"lang None is not a language code"),
        ({"answerable": "yes"}, r"golden.jsonl:1: answerable must be true or false"),
        ({"question": ""}, r"golden.jsonl:1: question must be a non-empty text"),
        ({"id": 7}, r"golden.jsonl:1: id must be a non-empty text"),
        ({"evidence": "a.txt"}, r"golden.jsonl:1: evidence must be a list of"),
        ({"evidence": [["a.txt", "Le chat dort."]]}, r"golden.jsonl:1: evidence 1 must be an object"),
    ],
)
def test_a_golden_line_of_the_wrong_shape_names_the_field(tmp_path, docs, change, expected) -> None:
    with pytest.raises(DatasetError, match=expected):
        load_golden([_golden(tmp_path, {**GOOD, **change})], docs)


def test_a_golden_line_that_is_not_an_object_says_so(tmp_path, docs) -> None:
    with pytest.raises(DatasetError, match=r"golden.jsonl:1: a JSON list, not an object.*one JSON object"):
        load_golden([_golden(tmp_path, [1, 2])], docs)


def test_a_golden_file_that_is_not_utf8_a_folder_or_empty_says_so(tmp_path, docs) -> None:
    with pytest.raises(DatasetError, match=r"golden.jsonl is not UTF-8 text.*Save it as UTF-8"):
        load_golden([_golden(tmp_path, raw=b"\xff\xfe{}\n")], docs)
    with pytest.raises(DatasetError, match=r"is a folder, not a file"):
        load_golden([docs], docs)
    with pytest.raises(DatasetError, match=r"golden.jsonl holds no question"):
        load_golden([_golden(tmp_path, raw=b"\n\n")], docs)


def _eval(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _no_run(monkeypatch) -> None:
    def refuse(*_args, **_kwargs):
        raise AssertionError("the evaluation ran although its report folder cannot be written")

    monkeypatch.setattr("eval.runner.run_eval", refuse)


def test_an_unwritable_runs_dir_is_said_before_running(capsys, monkeypatch, tmp_path, docs) -> None:
    _no_run(monkeypatch)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    monkeypatch.setenv("RAG_EVAL__RUNS_DIR", str(a_file / "runs"))
    golden = _golden(tmp_path, GOOD)
    code, _, err = _eval(capsys, "--golden", str(golden), "--docs", str(docs), "--piaf", "none")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(a_file / "runs") in err and "RAG_EVAL__RUNS_DIR" in err


def test_an_unwritable_out_folder_is_said_before_running(capsys, monkeypatch, tmp_path, docs) -> None:
    _no_run(monkeypatch)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    golden = _golden(tmp_path, GOOD)
    argv = ["--golden", str(golden), "--docs", str(docs), "--piaf", "none", "--out", str(a_file / "out")]
    code, _, err = _eval(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(a_file / "out") in err and "--out" in err


def _chat_database(path: Path, *, feedback: bool) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
        if feedback:
            db.execute(
                "CREATE TABLE feedback (id INTEGER PRIMARY KEY, question TEXT, answer_text TEXT, "
                "answer_json TEXT, comment TEXT, created_at REAL, rating TEXT)"
            )
    return path


def test_from_feedback_without_any_thumbs_down_says_so(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RAG_UI__DATABASE", str(_chat_database(tmp_path / "chat.sqlite3", feedback=False)))
    code, out, err = _eval(capsys, "--from-feedback", str(tmp_path / "candidates.jsonl"))
    assert code == 0, err
    assert "No thumbs-down answer" in out and "chat.sqlite3" in out


@pytest.mark.parametrize("where", ["a-folder", "under-a-file"])
def test_from_feedback_to_an_unwritable_file_is_one_line(capsys, monkeypatch, tmp_path, where) -> None:
    monkeypatch.setenv("RAG_UI__DATABASE", str(_chat_database(tmp_path / "chat.sqlite3", feedback=True)))
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x", encoding="utf-8")
    out_path = tmp_path if where == "a-folder" else a_file / "candidates.jsonl"
    code, _, err = _eval(capsys, "--from-feedback", str(out_path))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert str(out_path) in err and "--from-feedback FILE" in err


def test_from_feedback_on_a_file_that_is_not_a_database_is_one_line(capsys, monkeypatch, tmp_path) -> None:
    not_a_db = tmp_path / "chat.sqlite3"
    not_a_db.write_text("garbage " * 100, encoding="utf-8")
    monkeypatch.setenv("RAG_UI__DATABASE", str(not_a_db))
    code, _, err = _eval(capsys, "--from-feedback", str(tmp_path / "candidates.jsonl"))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert "not a chat database" in err and "RAG_UI__DATABASE" in err


def test_a_document_that_is_not_utf8_in_docs_is_named(tmp_path, docs) -> None:
    (docs / "b.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(DatasetError, match=r"b\.txt is not UTF-8 text.*Save it as UTF-8"):
        load_golden([_golden(tmp_path, GOOD)], docs)
