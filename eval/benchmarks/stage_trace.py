"""Where a streamed answer's time to first token goes, question by question, inside the chat server.

For `eval.benchmarks.concurrency`'s slow-LLM rounds. `install(path)` is called in the server's process
before the page is built; it wraps (in that process only, nothing of the product changes) the page's
`respond`, the chain's preparation and the chat model's streaming, and appends one JSON line per event to
`path`, with `time.monotonic()` (one clock for every process of the machine, so the benchmark's own submit
and first-seen times line up with the server's). The benchmark then prints, per stage, p50 / p95 of:

    queue      submit (client) -> `respond` starts (Gradio's queue and thread pool)
    shown      `respond` starts -> its first update (the question shown) is yielded
    condense   the LLM's rewrite of a follow-up (only the questions that had one)
    prepare    the other stages before generation (language, retrieval, evidence, abstention, prompt)
    llm        answer request sent -> first piece from the chat model (the fake server's 1/tokens_per_s
               pacing included)
    update     first piece -> the update that shows it is yielded (the stream budget's wait, if any)
    delivery   that update yielded -> the client sees it (Gradio's postprocessing, diff, SSE, the client's
               20 ms poll)

Events are keyed by the question's text (the benchmark tags each session's questions, so each is unique in
a round); everything `respond` does before its next update runs in the thread that asked for that update,
so the wrapped stages find their question in a thread-local.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_current = threading.local()
STAGES = ("queue", "shown", "condense", "prepare", "llm", "update", "delivery")


def _write(output: int, question: str | None, event: str, **extra: Any) -> None:
    """One line, one `write` on a file opened for appending: whole lines, no lock (a lock and an open
    per event were 10 % of the server's samples under 50 sessions)."""
    if question is None:
        return
    line = json.dumps({"q": question, "e": event, "t": time.monotonic(), **extra}, ensure_ascii=False)
    os.write(output, (line + "\n").encode())


def install(path: Path) -> None:
    """Wrap the server's stages to record their times in `path` (call before `ui.app.build_app`); empty
    the file by truncating it, not by removing it."""
    from rag.backends.chat_model import ChatModelGenerator
    from rag.chain import AnswerChain
    from ui.app import ChatHandlers

    # The benchmark empties the file between rounds (truncating: this descriptor keeps appending to it).
    output = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    respond = ChatHandlers.respond

    @functools.wraps(respond)  # Gradio reads the signature (its gr.Request parameter) through __wrapped__
    def traced_respond(self: Any, question: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
        key = (question or "").strip()
        _current.question = key
        _write(output, key, "start")
        updates = respond(self, question, *args, **kwargs)
        shown_text = False
        while True:
            _current.question = key  # the next step may run in another thread of Gradio's pool
            try:
                update = next(updates)
            except StopIteration:
                return
            _write(output, key, "yield")
            chat = update[0] if isinstance(update, tuple) else []
            last = str(chat[-1].get("content", "")) if chat and isinstance(chat[-1], dict) else ""
            if not shown_text and "answer" in last and 'class="thinking"' not in last:
                shown_text = True
                _write(output, key, "text_yield")
            yield update

    ChatHandlers.respond = traced_respond

    prepare = AnswerChain._prepare

    def traced_prepare(self: AnswerChain, state: dict) -> dict:
        prepared = prepare(self, state)
        timings = {k: v for k, v in prepared.get("timings", {}).items() if not k.startswith("_")}
        _write(output, getattr(_current, "question", None), "prepared", timings=timings)
        return prepared

    AnswerChain._prepare = traced_prepare

    stream_text = ChatModelGenerator._stream_text

    def traced_stream_text(self: Any, messages: Any, *, mid_answer: bool = True) -> Iterator[str]:
        kind = "answer" if mid_answer else "condense"
        question = getattr(_current, "question", None)
        _write(output, question, f"{kind}_request")
        first = True
        for piece in stream_text(self, messages, mid_answer=mid_answer):
            if first:
                first = False
                _write(output, question, f"{kind}_first")
            yield piece
        _write(output, question, f"{kind}_end")

    ChatModelGenerator._stream_text = traced_stream_text


def read(path: Path) -> dict[str, dict[str, Any]]:
    """question -> {event: first time seen (and `timings`)}."""
    events: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        mine = events.setdefault(record["q"], {})
        mine.setdefault(record["e"], record["t"])
        if "timings" in record:
            mine["timings"] = record["timings"]
    return events


def stage_times(
    events: Mapping[str, Mapping[str, Any]], client: Sequence[tuple[str, float, float | None]]
) -> dict[str, list[float]]:
    """Seconds per stage (see the module's docstring) for each question the client timed: `client` holds
    (question, submitted, first token seen), monotonic."""
    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def add(stage: str, start: float | None, end: float | None) -> None:
        if start is not None and end is not None:
            stages[stage].append(end - start)

    for question, submitted, seen in client:
        mine = events.get(question.strip())
        if not mine:
            continue
        add("queue", submitted, mine.get("start"))
        add("shown", mine.get("start"), mine.get("yield"))
        add("condense", mine.get("condense_request"), mine.get("condense_end"))
        timings = mine.get("timings") or {}
        if timings:
            stages["prepare"].append(sum(v for k, v in timings.items() if k != "condense"))
        add("llm", mine.get("answer_request"), mine.get("answer_first"))
        add("update", mine.get("answer_first"), mine.get("text_yield"))
        add("delivery", mine.get("text_yield"), seen)
    return stages


def breakdown(stages: Mapping[str, list[float]]) -> str:
    """One line: each stage's p50 / p95 in ms (and how many questions had it, when not all did)."""
    counts = [len(values) for values in stages.values() if values]
    most = max(counts, default=0)
    parts = []
    for stage, values in stages.items():
        if not values:
            continue
        p50, p95 = np.percentile(values, 50) * 1000, np.percentile(values, 95) * 1000
        count = "" if len(values) == most else f" (n={len(values)})"
        parts.append(f"{stage} {p50:.0f}/{p95:.0f}{count}")
    return "stages to first token, p50/p95 ms: " + ", ".join(parts)
