"""Starting the chat server: a port or host it cannot listen on is one line naming it and the fix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest

from rag.cli import main
from rag.errors import RagError
from rag.settings import Settings
from ui.app import check_port, serve, served_stack


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port another server listens on (127.0.0.1)."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_rag_chat_on_a_busy_port_says_so_in_one_line_before_indexing(busy_port, tmp_path: Path, capsys):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.md").write_text("Le projet Hélios a coûté 12 millions d'euros.\n")
    index_dir = tmp_path / "index"
    code = main(["chat", "--port", str(busy_port), "--index-dir", str(index_dir), str(tmp_path / "docs")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"Port {busy_port} on 127.0.0.1 is already in use" in err
    assert f"rag chat --port {busy_port + 1}" in err and "stop the server that uses it" in err
    assert not index_dir.exists()  # refused before indexing anything


def test_a_free_port_passes_the_check():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    check_port(Settings(ui={"port": port}))  # no error


def test_a_host_that_is_not_this_machine_is_named_with_the_fix():
    with pytest.raises(RagError, match=r"192\.0\.2\.1 is not an address of this machine.*--host"):
        check_port(Settings(ui={"host": "192.0.2.1", "port": 8000}))  # TEST-NET-1: never a local address


def test_serve_on_a_port_taken_after_the_check_raises_the_same_error(busy_port):
    with gr.Blocks() as demo:
        gr.Markdown("x")
    with pytest.raises(RagError, match=f"Port {busy_port} on 127.0.0.1 is already in use"):
        serve(demo, "127.0.0.1", busy_port, block=False, quiet=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_server_runs_on_uvloop_and_httptools(caplog):
    """Both are the project's dependencies; uvicorn picks them unless Gradio pins its loop or parser. Read
    from a live connection's protocol object, so a Gradio that pins asyncio / h11 fails here."""
    with gr.Blocks() as demo:
        gr.Markdown("x")
    with caplog.at_level("INFO", logger="ui.app"):
        serve(demo, "127.0.0.1", _free_port(), block=False, quiet=True)
    try:
        assert served_stack(demo) == "uvloop + httptools"
        assert "Serving with uvloop + httptools" in caplog.text
        # No run history: a task per run on the event loop, and each run's chat kept in the browser.
        assert demo.run_history is False and demo.config["run_history"] is False
    finally:
        demo.close()


def test_served_stack_of_a_page_not_serving():
    with gr.Blocks() as demo:
        gr.Markdown("x")
    assert served_stack(demo) == "not serving"
