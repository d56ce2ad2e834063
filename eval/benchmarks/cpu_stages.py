"""Where the chat server's CPU goes per question, stage by stage (`eval.benchmarks.concurrency --cpu-stages`).

`install(path)` is called in the server's process before the page is built; it wraps (in that process only,
nothing of the product changes) the answer's stages and adds up the CPU time of the thread that runs each
(`time.thread_time`), then keeps writing the totals to `path`. The benchmark reads them before and after a
round and prints the difference per answered question (`breakdown`). Stages nest: the answer event's
handler holds the query embedding, the answer chain and the save; the chain holds retrieval, evidence and
verification. The query embedding of questions embedded together is counted in the thread that ran their
model call. The event loop's share is the benchmark's CPU by thread kind (`cpu_note`).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: (label, module, class, method, generator): what is timed, in the order printed.
STAGES = (
    ("answer event", "ui.app", "ChatHandlers", "respond", True),
    ("query embedding", "rag.assistant", "Assistant", "embed_ahead", False),
    ("answer chain", "rag.chain", "AnswerChain", "stream", True),
    ("retrieval", "rag.chain", "AnswerChain", "_retrieve", False),
    ("evidence", "rag.chain", "AnswerChain", "_evidence", False),
    ("verification", "rag.chain", "AnswerChain", "_verify", False),
    ("save", "ui.app", "ChatHandlers", "_save", False),
    ("page payload", "gradio.components", "Chatbot", "postprocess", False),
)

_totals: dict[str, float] = {}
_lock = threading.Lock()


def _add(label: str, seconds: float) -> None:
    with _lock:
        _totals[label] = _totals.get(label, 0.0) + seconds


def _timed(label: str, function: Any) -> Any:
    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            _add(label, time.thread_time() - started)

    return run


def _timed_generator(label: str, function: Any) -> Any:
    """Each step of the generator, in the thread that asks for it (Gradio runs each in a worker thread)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        inner = function(*args, **kwargs)
        while True:
            started = time.thread_time()
            try:
                item = next(inner)
            except StopIteration:
                return
            finally:
                _add(label, time.thread_time() - started)
            yield item

    return run


def install(path: Path, interval_s: float = 0.5) -> list[str]:
    """Wrap the stages (those the server's code has) and write their totals to `path` every `interval_s`.
    Returns the labels of the stages it could not find (an older checkout)."""
    import importlib

    missing = []
    for label, module_name, class_name, method, generator in STAGES:
        owner = getattr(importlib.import_module(module_name), class_name, None)
        function = getattr(owner, method, None)
        if function is None:
            missing.append(label)
            continue
        setattr(owner, method, (_timed_generator if generator else _timed)(label, function))

    def keep_writing() -> None:
        while True:
            with _lock:
                data = json.dumps(_totals)
            partial = path.with_suffix(".partial")
            partial.write_text(data)
            os.replace(partial, path)
            time.sleep(interval_s)

    threading.Thread(target=keep_writing, name="cpu-stages", daemon=True).start()
    return missing


def read(path: Path | None) -> dict[str, float]:
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()} if path else {}
    except (OSError, ValueError):
        return {}


def breakdown(before: Mapping[str, float], after: Mapping[str, float], answered: int) -> str:
    """ms of CPU per answered question of each stage, between two `read`s."""
    parts = []
    for label, *_ in STAGES:
        if label in after:
            parts.append(f"{label} {1000 * (after[label] - before.get(label, 0.0)) / max(answered, 1):.2f}")
    return "CPU per question by stage (ms): " + ", ".join(parts) if parts else "no stage timed"
