"""The `rag` command: ask (text and JSON), the no-index error, settings errors; all without a traceback."""

from __future__ import annotations

import json

import pytest

from rag.cli import main
from tests.conftest import EMPTY_CONFIG


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _env(monkeypatch) -> None:
    # The test's settings come from flags only: no stray rag.toml or RAG_* variable of the machine.
    for name in [n for n in __import__("os").environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", "")
    monkeypatch.setenv("RAG_CONFIG", str(EMPTY_CONFIG))


def test_ask_prints_the_answer_and_numbered_sources(capsys, monkeypatch, seed_index_dir) -> None:
    _env(monkeypatch)
    code, out, err = _run(
        capsys, "ask", "Quelle est la valorisation d'OpenAI ?", "--index-dir", str(seed_index_dir)
    )
    assert code == 0, err
    assert "80 milliards de dollars" in out
    assert "Sources:" in out and "openai-altman.fr.txt" in out
    assert "**80 milliards de dollars." in out  # the cited span is marked in the excerpt


def test_ask_abstains_on_an_unanswerable_question(capsys, monkeypatch, seed_index_dir) -> None:
    _env(monkeypatch)
    code, out, _ = _run(
        capsys, "ask", "Combien d'employés compte OpenAI ?", "--index-dir", str(seed_index_dir)
    )
    assert code == 0
    assert out.startswith("Les documents ne le disent pas") and "Sources:" not in out


def test_ask_json_is_the_whole_answer(capsys, monkeypatch, seed_index_dir) -> None:
    _env(monkeypatch)
    code, out, _ = _run(
        capsys,
        "ask",
        "Qui guide Microsoft dans son pari sur OpenAI ?",
        "--index-dir",
        str(seed_index_dir),
        "--json",
        "--top-k",
        "3",
    )
    assert code == 0
    data = json.loads(out)
    assert {"question", "text", "citations", "passages", "abstained", "timings", "verification"} <= set(data)
    assert data["abstained"] is False
    assert (
        sum(len(p["chunk_ids"]) for p in data["passages"]) == 3
    )  # --top-k 3: three chunks, touching ones merged
    assert data["citations"][0]["supported"] is True and "Satya Nadella" in data["citations"][0]["quote"]


def test_ask_without_an_index_says_how_to_build_one(capsys, monkeypatch, tmp_path) -> None:
    _env(monkeypatch)
    code, out, err = _run(capsys, "ask", "Une question ?", "--index-dir", str(tmp_path / "none"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "rag index" in err and str(tmp_path / "none") in err


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "/nonexistent/file.toml", "ask", "q"],
        ["ask", "q", "--top-k", "0"],
        ["ask", "q", "--backend", "telepathy"],
    ],
)
def test_bad_settings_are_one_line_errors(capsys, monkeypatch, seed_index_dir, argv) -> None:
    _env(monkeypatch)
    code, out, err = (
        _run(capsys, *argv, "--index-dir", str(seed_index_dir)) if argv[0] == "ask" else _run(capsys, *argv)
    )
    assert code == 2
    assert err.startswith("rag ask: error:") and err.count("\n") == 1


def test_index_then_ask(capsys, monkeypatch, tmp_path) -> None:
    _env(monkeypatch)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text(
        "# Projet Hélios\n\nLe projet Hélios a coûté 12 millions d'euros en 2021.\n", "utf-8"
    )
    index_dir = str(tmp_path / "index")
    code, _, err = _run(capsys, "index", str(docs), "--index-dir", index_dir)
    assert code == 0, err
    code, out, _ = _run(capsys, "ask", "Combien a coûté le projet Hélios ?", "--index-dir", index_dir)
    assert code == 0 and "12 millions" in out and "note.md" in out


def _indexed_note(capsys, monkeypatch, tmp_path):  # noqa: ANN202 - (docs folder, index folder)
    _env(monkeypatch)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("Le projet Hélios a coûté 12 millions d'euros en 2021.\n", "utf-8")
    index_dir = str(tmp_path / "index")
    assert _run(capsys, "index", str(docs), "--index-dir", index_dir)[0] == 0
    return docs, index_dir


def test_ask_says_when_a_configured_model_is_not_used(capsys, monkeypatch, tmp_path) -> None:
    # An index built without a model answers by keywords whatever model is configured: say so, once.
    docs, index_dir = _indexed_note(capsys, monkeypatch, tmp_path)
    question = ("ask", "Combien a coûté le projet Hélios ?", "--index-dir", index_dir)
    code, out, err = _run(capsys, *question)
    assert code == 0 and "12 millions" in out and err == ""  # lexical chosen: nothing to say
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", str(tmp_path / "some-model"))
    code, out, err = _run(capsys, *question)
    assert code == 0 and "12 millions" in out
    assert err.count("\n") == 1 and "keyword search only" in err and "rag index <folders>" in err
    assert "some-model" in err and index_dir in err


def test_chat_indexes_the_paths_then_launches_the_ui(capsys, monkeypatch, tmp_path, seeds_dir) -> None:
    import sys
    import types

    import ui

    _env(monkeypatch)
    calls = []
    fake_ui = types.ModuleType("ui.app")
    fake_ui.launch = lambda settings, paths, **kwargs: calls.append((settings, paths, kwargs))
    fake_ui.check_login = lambda settings: None  # 127.0.0.1: no login needed
    fake_ui.check_port = lambda settings: None
    monkeypatch.setitem(sys.modules, "ui.app", fake_ui)
    monkeypatch.setattr(ui, "app", fake_ui, raising=False)
    index_dir = tmp_path / "index"
    code, _, err = _run(capsys, "chat", str(seeds_dir), "--index-dir", str(index_dir), "--port", "7999")
    assert code == 0, err
    ((settings, paths, kwargs),) = calls
    assert settings.ui.port == 7999 and [str(p) for p in paths] == [str(seeds_dir)]
    assert kwargs["assistant"].status()["documents"] == 1
    assert (index_dir / "CURRENT").is_file()
    code, _, err = _run(capsys, "chat", str(tmp_path / "missing"), "--index-dir", str(index_dir))
    assert code == 2 and "Not found" in err


def test_chat_without_gradio_names_the_package_and_how_to_install_it(capsys, monkeypatch, tmp_path) -> None:
    import sys

    import ui

    _env(monkeypatch)
    monkeypatch.delattr(ui, "app", raising=False)
    monkeypatch.delitem(sys.modules, "ui.app", raising=False)
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` now fails as if it were not installed
    (tmp_path / "docs").mkdir()
    code, _, err = _run(capsys, "chat", str(tmp_path / "docs"), "--index-dir", str(tmp_path / "index"))
    assert code == 2
    assert (
        "The chat UI needs the Python package 'gradio', which is not installed" in err and "make setup" in err
    )
    assert not (tmp_path / "index").exists()  # refused before indexing anything


def test_users_without_a_terminal_nor_password_stdin_says_how_to_give_the_password(
    capsys, monkeypatch, tmp_path
) -> None:
    # Was an EOFError traceback from getpass (a script, a CI job, `< /dev/null`).
    import io

    _env(monkeypatch)
    monkeypatch.setenv("RAG_UI__DATABASE", str(tmp_path / "chat.sqlite3"))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": (_ for _ in ()).throw(EOFError))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, _, err = _run(capsys, "users", "add", "alice")
    assert code == 2
    assert "No password was typed" in err and "--password-stdin" in err and "Traceback" not in err
    assert not (tmp_path / "chat.sqlite3").exists() or "alice" not in (
        tmp_path / "chat.sqlite3"
    ).read_bytes().decode("latin-1")


def test_python_dash_m_rag_runs_the_cli() -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "rag", "--help"], cwd=repo, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: rag ") and "index" in done.stdout and "ask" in done.stdout


def test_ask_on_an_empty_index_says_it_is_empty(capsys, monkeypatch, tmp_path) -> None:
    # An index with no chunk (an empty folder indexed, or every file forgotten): "the documents do not
    # say" would blame the documents; the fix is to index some.
    _env(monkeypatch)
    (tmp_path / "empty").mkdir()
    index_dir = str(tmp_path / "index")
    assert _run(capsys, "index", str(tmp_path / "empty"), "--index-dir", index_dir)[0] == 0
    code, out, err = _run(capsys, "ask", "Combien a coûté le projet Hélios ?", "--index-dir", index_dir)
    assert code == 2 and out == ""
    assert err.startswith("rag ask: error:") and err.count("\n") == 1
    assert "is empty" in err and "rag index" in err and index_dir in err


def test_index_without_paths_updates_the_remembered_folders(capsys, monkeypatch, tmp_path) -> None:
    # README: "the index remembers them (every run re-checks them all)": `rag index` alone re-checks them.
    docs, index_dir = _indexed_note(capsys, monkeypatch, tmp_path)
    (docs / "b.md").write_text("Le projet Séléné a coûté 7 millions d'euros en 2022.\n", "utf-8")
    code, out, err = _run(capsys, "index", "--index-dir", index_dir)
    assert code == 0, err
    assert "1 new" in out
    code, out, _ = _run(capsys, "ask", "Combien a coûté le projet Séléné ?", "--index-dir", index_dir)
    assert code == 0 and "7 millions" in out


def test_index_without_paths_and_without_an_index_says_what_to_give(capsys, monkeypatch, tmp_path) -> None:
    _env(monkeypatch)
    index_dir = tmp_path / "index"
    code, out, err = _run(capsys, "index", "--index-dir", str(index_dir))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "rag index docs/" in err and str(index_dir) in err
    assert not index_dir.exists()


@pytest.mark.parametrize("what", ["not-a-database", "under-a-file", "a-folder"])
@pytest.mark.parametrize("command", [["users", "list"], ["chat"]])
def test_a_bad_chat_database_is_one_line_before_anything_runs(
    capsys, monkeypatch, tmp_path, command, what
) -> None:
    _env(monkeypatch)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("garbage " * 200, encoding="utf-8")
    database = {"not-a-database": a_file, "under-a-file": a_file / "chat.sqlite3", "a-folder": tmp_path}[what]
    monkeypatch.setenv("RAG_UI__DATABASE", str(database))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "note.md").write_text("Le projet Hélios a coûté 12 millions d'euros.\n", "utf-8")
    argv = command + ([str(docs), "--index-dir", str(tmp_path / "index")] if command == ["chat"] else [])
    code, out, err = _run(capsys, *argv)
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(database) in err and "RAG_UI__DATABASE" in err
    assert not (tmp_path / "index").exists()  # the chat stopped before indexing
    assert a_file.read_text(encoding="utf-8") == "garbage " * 200
