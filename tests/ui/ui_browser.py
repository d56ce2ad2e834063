"""Helpers of the browser tests: chat servers on free ports and a page object for the chat page.

(A plain module, not a conftest, so test modules can import it; its name is unique under tests/.)
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ui.screenshot import CHROMIUM as SCREENSHOT_CHROMIUM

# The same browser and flags as `python -m ui.screenshot` (see DEVELOPERS.md for why these flags).
CHROMIUM = Path(SCREENSHOT_CHROMIUM)
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
ANSWER_TIMEOUT_MS = 60_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(assistant: Any) -> Iterator[str]:
    """Serve the chat page over `assistant` on 127.0.0.1:<free port> in this process; yield its URL."""
    from ui.app import build_app, serve

    demo = build_app(assistant)
    url = serve(demo, "127.0.0.1", free_port(), block=False, quiet=True)
    try:
        yield url.rstrip("/")
    finally:
        demo.close()


class ChatPage:
    """What a person does on the chat page, and what they see."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.console: list[str] = []
        self.dialogs: list[str] = []
        self.external_requests: list[str] = []
        page.on("console", lambda message: self.console.append(message.text))
        page.on("dialog", self._on_dialog)
        page.on("request", self._on_request)

    def _on_dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _on_request(self, request: Any) -> None:
        if not re.match(r"^(https?|wss?)://(127\.0\.0\.1|localhost)(:\d+)?/", request.url) and not (
            request.url.startswith(("data:", "blob:"))
        ):
            self.external_requests.append(request.url)

    def open(self) -> ChatPage:
        self.page.goto(self.url)
        self.page.wait_for_selector("#question textarea")
        return self

    def answers(self) -> Any:
        return self.page.locator("#chat .answer:not(.answer-streaming)")

    def questions(self) -> list[str]:
        return [text.strip() for text in self.page.locator("#chat .question").all_inner_texts()]

    def submit(self, question: str) -> int:
        """Type and send a question; return how many answers were complete before it."""
        before = self.answers().count()
        self.page.fill("#question textarea", question)
        self.page.press("#question textarea", "Enter")
        return before

    def wait_for_answer(self, before: int) -> Any:
        """Wait until answer number `before + 1` is complete (final or error) and return it."""
        self.page.wait_for_function(
            "n => document.querySelectorAll('#chat .answer:not(.answer-streaming)').length > n",
            arg=before,
            timeout=ANSWER_TIMEOUT_MS,
        )
        return self.answers().last

    def ask(self, question: str) -> Any:
        """Ask and wait until the answer is complete; return it."""
        return self.wait_for_answer(self.submit(question))

    def choose(self, elem_id: str, option: str) -> None:
        """Pick `option` in a Gradio dropdown."""
        self.page.click(f"#{elem_id} input")
        self.page.click(f'#{elem_id} li[role=option][aria-label="{option}"]')
        self.page.wait_for_function(
            "([id, value]) => document.querySelector(`#${id} input`).value === value", arg=[elem_id, option]
        )

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path), full_page=False)
        return path


def copy_seeds(seeds_dir: Path, destination: Path) -> Path:
    target = destination / "seeds"
    shutil.copytree(seeds_dir, target)
    for path in target.iterdir():
        path.chmod(0o644)  # the originals are read-only; the index may not care, the cleanup does
    return target
