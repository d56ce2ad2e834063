"""The README's PostgreSQL walk-through, as a person runs it: `python -m index.pg_local DIR` starts a
server and prints the URL to export, `RAG_INDEX__STORE_URL=... rag chat seeds/` indexes seeds/ into it and
serves the chat, a second process (`rag ask`) answers from the same database, Ctrl-C stops the server.
Also: `LocalPostgres(DIR).stop()` stops a server another object (or process) started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from index.pg_local import LocalPostgres, free_port
from tests.conftest import EMPTY_CONFIG, REPO

pytestmark = pytest.mark.slow


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_INDEX__STORE_URL=url, RAG_INDEX__EMBEDDING_MODEL="", RAG_CONFIG=str(EMPTY_CONFIG))
    return env


def _wait_for(predicate, seconds: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _serves(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def outside_tmp():  # noqa: ANN201 - yields a Path
    """A temp folder outside pytest's own: every pytest start (another session's too) makes
    /tmp/pytest-of-USER private again, which locks out the server's system user when running as root."""
    import shutil
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="rag-fr-pg-chat-"))
    folder.chmod(0o755)
    yield folder
    LocalPostgres(folder / "rag-pg").stop()  # a failed test leaves no server behind
    LocalPostgres(folder / "pg").stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_stop_from_a_fresh_object_stops_the_server(outside_tmp: Path) -> None:
    data = outside_tmp / "pg"
    started = LocalPostgres(data).start()
    assert (data / "postmaster.pid").exists()
    LocalPostgres(data).stop()  # another object, as another process would hold
    assert not (data / "postmaster.pid").exists()
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", started.port), timeout=2).close()
    LocalPostgres(data).stop()  # nothing running: nothing to do


def test_chat_on_seeds_against_a_server_started_as_the_readme_shows(outside_tmp: Path) -> None:
    data = outside_tmp / "rag-pg"
    server = subprocess.Popen(
        [sys.executable, "-m", "index.pg_local", str(data)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    chat = None
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(2)]
        match = re.search(r"export RAG_INDEX__STORE_URL=(\S+)", "".join(lines))
        assert match, lines
        url = match.group(1)
        port = free_port()
        chat = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "chat", "seeds/", "--port", str(port)],
            cwd=REPO,
            env=_env(url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(lambda: chat.poll() is not None or _serves(f"http://127.0.0.1:{port}/"), 240, "the chat")
        assert chat.poll() is None, chat.stderr.read() if chat.stderr else ""
        # A second process on the same database: the chat indexed seeds/ there.
        asked = subprocess.run(
            [sys.executable, "-m", "rag.cli", "ask", "Quelle est la valorisation d'OpenAI ?"],
            cwd=REPO,
            env=_env(url),
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert asked.returncode == 0, asked.stderr
        assert "80 milliards de dollars" in asked.stdout and "openai-altman.fr.txt" in asked.stdout
    finally:
        if chat is not None:
            chat.terminate()
            chat.wait(30)
        server.send_signal(signal.SIGINT)  # Ctrl-C, as the README says
        server.wait(180)
    # A fast shutdown still writes a checkpoint: on a busy machine it may outlast pg_ctl's own wait.
    _wait_for(lambda: not (data / "postmaster.pid").exists(), 120, "Ctrl-C to stop the server")
