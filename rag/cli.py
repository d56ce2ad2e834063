"""The `rag` command: index documents, ask questions, chat in the browser, run the evaluation.

    rag index [PATHS...] [--index-dir DIR] [--watch] [--rebuild] [--forget PATH]
    rag ask "question" [--index-dir DIR] [--top-k N] [--backend NAME] [--json]
    rag chat [PATHS...] [--host HOST] [--port PORT] [--index-dir DIR]
    rag users add NAME [--admin] | passwd NAME | remove NAME | list
    rag eval ...            (options of eval.cli)

`--config FILE` (before the subcommand) reads a TOML settings file; flags override it (see
`rag.settings.load_settings`). Each subcommand imports what it needs when it runs, so `rag ask` works
without the UI or eval dependencies. Errors meant for people (bad settings, no index, backend down) print
one line on stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.terminal import printable, printable_json

if TYPE_CHECKING:
    from rag.records import Answer
    from rag.settings import Settings

EXIT_USAGE = 2
DEFAULT_CHAT_PATHS = ("seeds",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Questions and answers over your own documents, with verified citations."
    )
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file (default: ./rag.toml if present)."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    index = commands.add_parser("index", help="Index files or folders (incremental).")
    index.add_argument("paths", nargs="*", metavar="PATH", help="Files or folders to index.")
    index.add_argument("--index-dir", metavar="DIR", help="Folder of the index (setting index.index_dir).")
    index.add_argument("--watch", action="store_true", help="Keep watching the paths and re-index on change.")
    index.add_argument("--rebuild", action="store_true", help="Delete the index first and build it anew.")
    index.add_argument(
        "--forget",
        metavar="PATH",
        action="append",
        default=[],
        help="Drop a folder or file given before, with its documents (repeatable).",
    )
    index.add_argument(
        "--from-folder",
        metavar="DIR",
        help="Copy the folder index in DIR into the PostgreSQL database of index.store_url "
        "(RAG_INDEX__STORE_URL), vectors included: nothing is embedded again; DIR is left as it is.",
    )

    ask = commands.add_parser("ask", help="Answer one question from the index.")
    ask.add_argument("question", help="The question, in quotes.")
    ask.add_argument("--index-dir", metavar="DIR", help="Folder of the index (setting index.index_dir).")
    ask.add_argument("--top-k", type=int, metavar="N", help="Passages to retrieve (setting retrieval.top_k).")
    ask.add_argument(
        "--backend", metavar="NAME", help="extractive, ollama, openai or hf (setting llm.backend)."
    )
    ask.add_argument("--json", action="store_true", help="Print the whole Answer as JSON.")

    chat = commands.add_parser("chat", help="Index PATHS (default: seeds/) and open the chat in the browser.")
    chat.add_argument("paths", nargs="*", metavar="PATH", help="Files or folders to index first.")
    chat.add_argument("--host", help="Address to listen on (setting ui.host).")
    chat.add_argument("--port", type=int, help="Port to listen on (setting ui.port).")
    chat.add_argument("--index-dir", metavar="DIR", help="Folder of the index (setting index.index_dir).")

    users = commands.add_parser("users", help="Accounts of the shared chat (login when not on 127.0.0.1).")
    users_commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add_user = users_commands.add_parser("add", help="Create a user (asks for the password).")
    add_user.add_argument("name")
    add_user.add_argument("--admin", action="store_true", help="May add documents to the shared corpus.")
    add_user.add_argument(
        "--password-stdin", action="store_true", help="Read the password from stdin (scripts)."
    )
    passwd = users_commands.add_parser("passwd", help="Change a user's password.")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="Read the password from stdin.")
    remove_user = users_commands.add_parser("remove", help="Delete a user.")
    remove_user.add_argument("name")
    users_commands.add_parser("list", help="List the users and their roles.")

    evaluate = commands.add_parser("eval", help="Run the evaluation suite (see `rag eval --help`).")
    from eval.cli import add_arguments

    add_arguments(evaluate)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "index.index_dir": getattr(args, "index_dir", None),
        "retrieval.top_k": getattr(args, "top_k", None),
        "llm.backend": getattr(args, "backend", None),
        "ui.host": getattr(args, "host", None),
        "ui.port": getattr(args, "port", None),
    }


def _cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from index.cli import run_index

    if args.from_folder:
        from index.cli import run_copy_from_folder

        return run_copy_from_folder(Path(args.from_folder), settings.index)
    if not args.paths and not args.forget and not args.rebuild:
        _check_remembered_folders(settings)  # the index remembers its folders: this run re-checks them
    code = run_index(
        [Path(p) for p in args.paths],
        settings.index,
        watch=args.watch,
        forget=args.forget,
        rebuild=args.rebuild,
    )
    return int(code or 0)


def _check_remembered_folders(settings: Settings) -> None:
    """`rag index` without a path re-checks the folders the index records; without an index, or one that
    records none, there is nothing to re-check: say what to give."""
    from index.errors import IndexNotFoundError
    from index.stores import open_store, store_location

    where = store_location(settings.index)
    try:
        roots = open_store(settings.index, load_model=False).manifest.roots
    except IndexNotFoundError:
        raise _UsageError(
            f"There is no index in {where} yet, so no folder to re-check. Give the files or folders to "
            "index, e.g. `rag index docs/`."
        ) from None
    if not roots:
        raise _UsageError(
            f"The index in {where} records no folder to re-check. Give the files or folders to index, "
            "e.g. `rag index docs/`."
        )


def _excerpt(text: str, start: int, end: int, width: int = 240, context: int = 60) -> str:
    """The cited span with a little context around it, the span itself in **bold** (Markdown style)."""
    start, end = max(0, start), min(len(text), end)
    span = text[start:end]
    if len(span) > width:
        span = span[:width].rsplit(" ", 1)[0] + " …"
    before = ("…" if start > context else "") + text[max(0, start - context) : start]
    after = text[end : end + context] + ("…" if end + context < len(text) else "")
    return " ".join(f"{before}**{span.strip()}**{after}".split())


def format_answer(answer: Answer) -> str:
    """The answer, then its numbered sources (file, heading/page, excerpt with the cited span).

    Names and texts come from the documents: printed through `printable`, so that no escape sequence in a
    file name or a passage reaches the terminal."""
    return printable(_format_answer(answer))


def _format_answer(answer: Answer) -> str:
    from rag.prompts import passage_label

    lines = [textwrap.fill(answer.text, width=100, break_long_words=False) if answer.text else ""]
    if answer.abstained:
        return lines[0]
    cited = {}
    for citation in answer.citations:
        cited.setdefault(citation.marker, citation)
    if cited:
        lines += ["", "Sources:"]
    for passage in answer.passages:
        citation = cited.get(passage.number)
        if citation is None:
            continue
        flag = "" if citation.supported else f"  (weak support: {citation.support:.2f})"
        if passage.instruction_like:
            flag += "  (⚠ this passage gives instructions to an AI assistant: treat it with care)"
        lines.append(f"  {passage_label(passage)}{flag}")
        relative_start = citation.start - passage.start
        relative_end = citation.end - passage.start
        lines.append(
            textwrap.indent(
                textwrap.fill(
                    _excerpt(passage.text, relative_start, relative_end), 96, break_long_words=False
                ),
                "      ",
            )
        )
    return "\n".join(lines)


def _lexical_index_note(status: dict[str, Any], settings: Settings) -> str | None:
    """One line when a model is configured but the index was built without one: the answer comes from
    keyword search only (the chat says so in its banner; `rag ask` would say nothing)."""
    model = settings.index.embedding_model
    if status.get("retrieval_mode") != "lexical" or not model or settings.retrieval.lexical_only:
        return None
    return (
        f"Note: the index in {status.get('index_dir')} was built without an embedding model, so this answer "
        f"comes from keyword search only, although '{model}' is configured. To search by meaning, index the "
        "folders again with it: rag index <folders>."
    )


def _cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag.assistant import _index_command, open_assistant

    assistant = open_assistant(settings)
    status = assistant.status()
    if not status["chunks"]:  # "the documents do not say" would blame documents there are none of
        raise _UsageError(
            f"The index in {status['index_dir']} is empty (no text was indexed from any document). Index "
            f"your documents first: {_index_command(settings)}"
        )
    note = _lexical_index_note(status, settings)
    if note:
        print(printable(note), file=sys.stderr)
    answer = assistant.ask(args.question, top_k=args.top_k, backend=args.backend)
    if args.json:
        print(printable_json(answer.to_dict(), indent=2))
    else:
        print(format_answer(answer))
    return 0


def _cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    from rag.assistant import build_assistant

    paths = [Path(p) for p in (args.paths or DEFAULT_CHAT_PATHS)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise _UsageError(f"Not found: {', '.join(missing)}. Give existing files or folders to `rag chat`.")
    _check_chat_database(settings)
    try:
        from ui import app
    except ModuleNotFoundError as exc:
        _raise_if_not_installed(exc, "The chat UI")
        raise
    app.check_login(settings)  # before indexing: a chat that cannot start should say so at once
    app.check_port(settings)
    assistant = build_assistant(paths, settings)  # builds or updates the index: the UI opens on fresh data
    app.launch(settings, paths, assistant=assistant)
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    try:
        password = getpass.getpass("Password: ")
        again = getpass.getpass("Password again: ")
    except EOFError:  # no terminal and nothing on the standard input (a script, a pipe from /dev/null)
        raise _UsageError(
            "No password was typed (the input ended). Run the command in a terminal, or pipe the password "
            "in with --password-stdin."
        ) from None
    if again != password:
        raise _UsageError("The two passwords differ. Run the command again.")
    return password


_PROJECT_PACKAGES = frozenset({"rag", "index", "ui", "eval"})


def _raise_if_not_installed(exc: ModuleNotFoundError, what: str) -> None:
    """A third-party package a subcommand needs (gradio for the chat) is not installed: say which and how to
    install it. A module of the project itself that fails to import is a bug: the caller re-raises it."""
    if exc.name is None or exc.name.split(".")[0] in _PROJECT_PACKAGES:
        return
    raise _UsageError(
        f"{what} needs the Python package '{exc.name}', which is not installed. "
        "Install the project with `make setup` (or `pip install -e .` in its virtual environment)."
    ) from exc


def _check_chat_database(settings: Settings) -> None:
    """The chat's SQLite file (accounts, conversations, feedback) can be opened or created: said in one line
    before anything runs, instead of a traceback from inside the chat (or after indexing)."""
    import sqlite3

    path = Path(settings.ui.database)
    fix = "Point ui.database (RAG_UI__DATABASE) at the chat's SQLite file, or at a new file in a folder you can write to."
    if path.is_dir():
        raise _UsageError(f"The chat database {path} is a folder. {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _UsageError(f"The chat database {path} cannot be created ({exc.strerror}). {fix}") from None
    if not path.is_file():
        return
    try:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise _UsageError(f"{path} is not a chat database ({exc}). {fix}") from None


def _cmd_users(args: argparse.Namespace, settings: Settings) -> int:
    from ui.accounts import AccountError, Accounts, Database

    _check_chat_database(settings)
    accounts = Accounts(Database(settings.ui.database))
    try:
        if args.users_command == "add":
            user = accounts.add(
                args.name, _read_password(args.password_stdin), "admin" if args.admin else "user"
            )
            print(f"User {user.name} ({user.role}) added to {settings.ui.database}.")
        elif args.users_command == "passwd":
            accounts.set_password(args.name, _read_password(args.password_stdin))
            print(f"Password of {args.name} changed.")
        elif args.users_command == "remove":
            accounts.remove(args.name)
            print(f"User {args.name} removed.")
        else:
            users = accounts.users()
            for user in users:
                print(f"{user.name}\t{user.role}")
            if not users:
                print(f"No users in {settings.ui.database}. Add one with `rag users add NAME --admin`.")
    except AccountError as exc:
        raise _UsageError(str(exc)) from exc
    return 0


def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from eval.cli import run

    return int(run(args, settings) or 0)


class _UsageError(Exception):
    pass


def _known_errors() -> tuple[type[BaseException], ...]:
    from index.errors import IndexError_
    from rag.errors import RagError
    from rag.settings import SettingsError

    return (RagError, SettingsError, _UsageError, IndexError_)


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    commands = {
        "index": _cmd_index,
        "ask": _cmd_ask,
        "chat": _cmd_chat,
        "users": _cmd_users,
        "eval": _cmd_eval,
    }
    try:
        from rag.settings import load_settings

        settings = load_settings(args.config, overrides=_overrides(args))
        return commands[args.command](args, settings)
    except _known_errors() as exc:
        message = " ".join(str(exc).split())  # one line, whatever the error's own layout
        print(printable(f"rag {args.command}: error: {message}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
