"""Bad input through every door: the CLI exits 2 with one line naming the problem, the Python API raises a
`RagError` naming the argument, and nothing printed to a terminal carries its control characters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rag_fakes import lexical_settings

from rag.cli import main
from rag.errors import RagError
from tests.conftest import EMPTY_CONFIG


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def _env(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", "")
    monkeypatch.setenv("RAG_CONFIG", str(EMPTY_CONFIG))
    monkeypatch.setenv("RAG_INDEX__SHOW_PROGRESS", "false")


# -- CLI exit codes -----------------------------------------------------------------------------------
def test_rag_index_on_a_missing_path_exits_2(capsys, tmp_path: Path) -> None:
    code, _, err = _run(capsys, "index", str(tmp_path / "missing"), "--index-dir", str(tmp_path / "ix"))
    assert code == 2
    assert "does not exist" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["index", "ask"])
def test_index_dir_that_is_a_file_is_a_clear_error(capsys, tmp_path: Path, seeds_dir: Path, command) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello", encoding="utf-8")
    argv = [str(seeds_dir)] if command == "index" else ["Qui dirige OpenAI ?"]
    code, _, err = _run(capsys, command, *argv, "--index-dir", str(a_file))
    assert code == 2, err
    assert "is a file" in err and str(a_file) in err
    assert a_file.read_text(encoding="utf-8") == "hello"


@pytest.mark.parametrize("where", ["under-a-file", "dev-null"])
def test_index_dir_that_cannot_be_created_is_a_clear_error(capsys, tmp_path: Path, seeds_dir, where) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("hello", encoding="utf-8")
    target = a_file / "index" if where == "under-a-file" else Path("/dev/null/index")
    code, _, err = _run(capsys, "index", str(seeds_dir), "--index-dir", str(target))
    assert code == 2, err
    assert "cannot be created" in err and "--index-dir" in err


# -- the Python API validates its arguments -----------------------------------------------------------
@pytest.mark.parametrize("question", [42, b"Qui dirige OpenAI ?", None, ["Qui ?"]])
def test_a_question_that_is_not_text_is_named_as_such(seed_assistant, question) -> None:
    with pytest.raises(RagError, match=r"question must be text.*got"):
        seed_assistant.ask(question)
    with pytest.raises(RagError, match="question must be text"):
        list(seed_assistant.stream(question))


def test_a_question_over_the_length_limit_is_refused_at_once_by_every_door(seed_assistant, capsys) -> None:
    """A million characters took the lexical analysis minutes; the page had a limit, the API and CLI none."""
    limit = seed_assistant.settings.ui.max_question_chars
    too_long = "Pourquoi ? " * (limit // 10 + 1)
    assert len(too_long) > limit
    for call in (
        lambda: seed_assistant.ask(too_long),
        lambda: list(seed_assistant.stream(too_long)),
        lambda: seed_assistant.retrieve(too_long),
        lambda: seed_assistant.embed_ahead(too_long),
    ):
        with pytest.raises(RagError, match=rf"{len(too_long):,} characters long; the limit is {limit:,}"):
            call()
    assert seed_assistant.ask("Pourquoi ? " * (limit // 11)).text  # at the limit: answered


def test_rag_ask_with_a_question_over_the_limit_exits_2(capsys, tmp_path: Path, seeds_dir: Path) -> None:
    ix = str(tmp_path / "ix")
    assert _run(capsys, "index", str(seeds_dir), "--index-dir", ix)[0] == 0
    code, _, err = _run(capsys, "ask", "x" * 5000, "--index-dir", ix)
    assert code == 2, err
    assert "5,000 characters long" in err and "RAG_UI__MAX_QUESTION_CHARS" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "history",
    ["bonjour", [("user", "bonjour")], [{"role": "user"}], [{"role": "robot", "content": "x"}], 3],
)
def test_a_malformed_history_names_the_argument(seed_assistant, history) -> None:
    with pytest.raises(RagError, match=r"history"):
        seed_assistant.ask("Qui dirige OpenAI ?", history)


def test_a_well_formed_history_is_accepted(seed_assistant) -> None:
    history = [
        {"role": "user", "content": "Qui dirige OpenAI ?"},
        {"role": "assistant", "content": "Sam Altman [1]."},
    ]
    assert seed_assistant.ask("Et sa valorisation ?", history).text


@pytest.mark.parametrize("top_k", [0, -1, 10_000, "5", 2.5, True])
def test_top_k_out_of_range_names_the_argument_and_the_range(seed_assistant, top_k) -> None:
    with pytest.raises(RagError, match=r"top_k.*1 and 100"):
        seed_assistant.ask("Qui dirige OpenAI ?", top_k=top_k)
    with pytest.raises(RagError, match=r"\bk must be.*1 and 100"):
        seed_assistant.retrieve("Qui dirige OpenAI ?", top_k)


def test_build_assistant_on_a_missing_path_raises_a_rag_error(tmp_path: Path) -> None:
    from rag import build_assistant

    with pytest.raises(RagError, match="does not exist"):
        build_assistant([tmp_path / "missing"], lexical_settings(tmp_path / "ix"))
    assert not (tmp_path / "ix" / "CURRENT").exists()


def test_build_assistant_paths_must_be_a_list_of_paths(tmp_path: Path) -> None:
    from rag import build_assistant

    with pytest.raises(RagError, match="paths"):
        build_assistant(42, lexical_settings(tmp_path / "ix"))  # type: ignore[arg-type]


@pytest.mark.parametrize("settings", [{"a": 1}, "rag.toml", 42])
def test_settings_of_the_wrong_type_name_the_argument(tmp_path: Path, seeds_dir: Path, settings) -> None:
    from rag import build_assistant, open_assistant

    with pytest.raises(RagError, match=r"settings must be a rag\.Settings.*load_settings"):
        build_assistant([seeds_dir], settings)  # type: ignore[arg-type]
    with pytest.raises(RagError, match=r"settings must be a rag\.Settings.*load_settings"):
        open_assistant(settings)  # type: ignore[arg-type]


@pytest.mark.parametrize("k", [0, -1, 10_000, "5", 2.5, True])
def test_langchain_retriever_k_out_of_range_names_the_argument(seed_assistant, k) -> None:
    with pytest.raises(RagError, match=r"\bk must be.*1 and 100"):
        seed_assistant.as_langchain_retriever(k=k)


# -- terminal output ----------------------------------------------------------------------------------
ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x9b31m\u202e"


def test_rag_ask_prints_no_control_characters_from_names_or_texts(capsys, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    name = f"evil{ESCAPES}name.txt"
    (docs / name).write_text(
        f"La valorisation de Zorglub atteint 12 milliards.{ESCAPES} Zorglub est une entreprise.",
        encoding="utf-8",
    )
    ix = str(tmp_path / "ix")
    code, out, err = _run(capsys, "index", str(docs), "--index-dir", ix)
    assert code == 0, err
    code, out, err = _run(capsys, "ask", "Quelle est la valorisation de Zorglub ?", "--index-dir", ix)
    assert code == 0, err
    assert "12 milliards" in out and "evil" in out
    for char in "\x1b\x07\x9b\u202e":
        assert char not in out + err


def test_rag_index_prints_skipped_names_without_control_characters(capsys, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / f"bad{ESCAPES}.txt").write_bytes(b"\x00\x01\x02binary")
    code, out, err = _run(capsys, "index", str(docs), "--index-dir", str(tmp_path / "ix"))
    assert code == 0
    assert "skipped" in out
    for char in "\x1b\x07\x9b\u202e":
        assert char not in out + err


# -- questions in a language without wording: English is the fallback (README) ---------------------------
@pytest.mark.parametrize("question", ["OpenAI的估值是多少？", "Какова оценка OpenAI?", "OpenAIの評価額は？"])
def test_a_question_in_a_non_latin_script_is_answered_in_english(seed_assistant, question) -> None:
    answer = seed_assistant.ask(question)
    assert answer.language != "fr"
    assert answer.text.startswith(("The documents do not say", "According to the documents")), answer.text


def test_index_dir_and_backend_of_the_wrong_type_name_the_argument(seed_assistant, tmp_path) -> None:
    from rag import open_assistant

    with pytest.raises(RagError, match=r"index_dir must be a folder path"):
        open_assistant(lexical_settings(tmp_path / "ix"), index_dir=42)  # type: ignore[arg-type]
    with pytest.raises(RagError, match=r"backend must be the name of a backend.*got 3"):
        seed_assistant.ask("Qui dirige OpenAI ?", backend=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda load: load(42), r"config_file must be the path of a TOML file.*got 42"),
        (lambda load: load(overrides=[1]), r"overrides must be a mapping of dotted keys.*retrieval\.top_k"),
    ],
)
def test_load_settings_arguments_of_the_wrong_type_are_named(call, expected) -> None:
    from rag import SettingsError, load_settings

    with pytest.raises(SettingsError, match=expected):
        call(load_settings)
