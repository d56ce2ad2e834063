"""Browser fixtures: Debian's headless Chromium driven by Playwright, one browser per test session.

The browser is never downloaded (`playwright install` is not used): without /usr/bin/chromium the browser
tests are skipped, except in CI where that is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from ui_browser import CHROMIUM, ChatPage

from ui.screenshot import CHROMIUM_ARGS


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install -y chromium chromium-driver`."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def chat_page_factory(browser: Any) -> Iterator[Any]:
    """chat_page_factory(url) -> a ChatPage in its own browser context (its own session)."""
    contexts = []

    def make(url: str) -> ChatPage:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        return ChatPage(context.new_page(), url).open()

    yield make
    for context in contexts:
        context.close()
