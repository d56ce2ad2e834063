"""Take the README screenshot of the chat page: `python -m ui.screenshot [--out ui/screenshot.png]`.

Indexes a temp copy of seeds/ (keyword mode, extractive answers: what runs without model weights), serves
the page on a free local port, asks one question in headless Chromium and saves the answered chat.
Needs Debian's /usr/bin/chromium (the Playwright browser download is never used).
"""

from __future__ import annotations

import argparse
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
QUESTION = "Quelle est la valorisation d'OpenAI ?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def offline_settings(workspace: Path, **overrides: object) -> Any:
    """Settings of a chat kept in `workspace` that runs without model weights: keyword search (no
    embedding model), extractive answers. The screenshot and the browser tests use it."""
    from rag import load_settings

    return load_settings(
        environ={},
        overrides={
            "index.index_dir": str(workspace / "index"),
            "index.embedding_model": "",
            "index.show_progress": False,
            "llm.backend": "extractive",
            "ui.uploads_dir": str(workspace / "uploads"),
            **overrides,
        },
    )


def take(out: Path, *, question: str = QUESTION, width: int = 1280, height: int = 860) -> Path:
    from playwright.sync_api import sync_playwright

    from rag import build_assistant
    from ui.app import build_app, serve

    with tempfile.TemporaryDirectory(prefix="rag-screenshot-") as tmp:
        workspace = Path(tmp)
        shutil.copytree(REPO / "seeds", workspace / "seeds")
        settings = offline_settings(workspace)
        assistant = build_assistant([workspace / "seeds"], settings)
        demo = build_app(assistant)
        url = serve(demo, "127.0.0.1", _free_port(), block=False, quiet=True)
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(url)
                page.fill("#question textarea", question)
                page.press("#question textarea", "Enter")
                page.wait_for_selector("#chat .answer:not(.answer-streaming)", timeout=60_000)
                page.evaluate("() => window.scrollTo(0, 0)")
                page.wait_for_timeout(400)  # let the last frame settle (fonts, scroll)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
                browser.close()
            _shrink(out)
        finally:
            demo.close()
    return out


def _shrink(path: Path) -> None:
    """Quantise to a 256-colour palette: a UI screenshot stays sharp and the committed file stays small."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "screenshot.png")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        parser.error(f"{CHROMIUM} is missing: install it with `apt-get install -y chromium chromium-driver`.")
    print(take(args.out, question=args.question))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
