"""The limits of a shared chat: question length, upload size and count, questions per minute per user.

Each check returns None when the input is fine, else one sentence for the person: what the limit is, by
how much it was passed, and what to do. The numbers come from `settings.ui` (see `rag.settings`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path


def question_problem(question: str, max_chars: int) -> str | None:
    if len(question) <= max_chars:
        return None
    return (
        f"This question is {len(question):,} characters long; the limit is {max_chars:,}. Ask a shorter "
        "question (the documents are searched for you: there is no need to paste them)."
    )


def too_many_files(count: int, max_files: int) -> str | None:
    if count <= max_files:
        return None
    return f"{count} files chosen; at most {max_files} can be added at once. Add them in several goes."


def file_problem(path: Path, max_mb: float) -> str | None:
    """Why one uploaded file cannot be indexed (too big, empty), or None."""
    size = path.stat().st_size
    if size == 0:
        return f"Rejected {path.name}: the file is empty. Choose a file with text in it."
    if size > max_mb * 1_000_000:
        return (
            f"Rejected {path.name}: {size / 1_000_000:,.1f} MB, more than the {max_mb:g} MB limit. "
            "Split it into smaller files."
        )
    return None


class RateLimiter:
    """At most `limit` events per `window` seconds per key (a user name, or a browser session)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> str | None:
        """Count one event for `key`; None if allowed, else the message saying when to try again."""
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                wait = math.ceil(events[0] + self.window - now)
                return (
                    f"Too many questions: at most {self.limit} per minute for each person. "
                    f"Wait {wait} s and ask again."
                )
            events.append(now)
        return None
