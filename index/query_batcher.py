"""Questions embedded one at a time by many threads -> one model call for those that wait together.

A chat server embeds each question in the thread that answers it. Under load many threads want the model
at the same moment, and one call for N short questions costs far less CPU than N calls (e5-small with
ONNX Runtime, busy machine: 17 ms of CPU per question alone, 10-11 ms in batches of 8 or more; each call
pays the tokenizer, the session's set-up and per-layer overheads once, whatever the batch).

No timer: a caller who finds the model idle runs at once, alone (no added latency when nobody else
asks). Up to `max_running` calls run at the same time (one per core: a one-thread ONNX session runs a
batch on one core, and releases the interpreter lock meanwhile); callers who arrive while they all run
wait, and when a call ends the oldest waiter runs everybody waiting (up to `max_batch`) and hands each
their row. A batch may be split into several model calls (`split`, the model's choice: like lengths pad
less); each call's callers get their rows as soon as it ends, and a caller of the next call runs it (the
others go on answering meanwhile, instead of waiting for the whole batch: a burst of 32 questions in calls
of 8 was four calls long for all 32). A failure of the model reaches every caller of that call, as the
exception it was.
It remembers the vectors of the last `remember` questions: every store opened with one embedder (a
shared index and each person's private collection, searched together by `rag.collections.CombinedIndex`)
shares its batcher, and each store's own memo (`IndexStore.query_vector`) knows only its own questions, so
without it a question was embedded once per part.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(eq=False)
class _Request:
    text: str
    ready: threading.Event = field(default_factory=threading.Event)
    vector: Any = None  # the model's result for the text: a vector, or a `QueryEncoding`
    error: BaseException | None = None
    calls: list[list[_Request]] | None = None  # handed to it to run (it is in the first), instead of a result


class QueryBatcher:
    """`embed(text)` from any thread; concurrent calls share `embed_batch` calls (see the module doc).
    `embed_batch(texts)` gives one result per text: a vector (row of an array), or any read-only record
    (`index.tokens.QueryEncoding`: the vector and the question's token vectors). `split(texts)`: the
    positions of a batch's texts in each model call, in the order to run them (default: one call)."""

    def __init__(
        self,
        embed_batch: Callable[[Sequence[str]], Sequence[Any]],
        max_batch: int = 32,
        max_running: int = 1,
        remember: int = 64,
        split: Callable[[Sequence[str]], Sequence[Sequence[int]]] | None = None,
    ) -> None:
        if max_batch < 1 or max_running < 1 or remember < 0:
            raise ValueError(
                f"max_batch and max_running must be at least 1 and remember at least 0, got {max_batch}, "
                f"{max_running}, {remember}"
            )
        self._embed_batch = embed_batch
        self._split = split
        self.max_batch = max_batch
        self.max_running = max_running
        self.remember = remember
        self._recent: OrderedDict[str, Any] = OrderedDict()  # text -> result, oldest first
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []  # empty whenever fewer than max_running calls run
        self._running = 0
        self.calls = 0  # model calls made (how many questions shared them: tests and benchmarks)

    def embed(self, text: str) -> Any:
        request = _Request(text)
        with self._lock:
            known = self._recent.get(text)
            if known is not None:
                self._recent.move_to_end(text)
                return known
            if self._running < self.max_running:
                self._running += 1
                calls: list[list[_Request]] | None = [[request]]
            else:
                self._waiting.append(request)
                calls = None
        if calls is None:
            request.ready.wait()
            calls = request.calls
        if calls is not None:
            self._run(calls)
        if request.error is not None:
            raise request.error
        assert request.vector is not None
        return request.vector

    def _calls(self, batch: list[_Request]) -> list[list[_Request]]:
        """`batch` as the model calls that embed it (`split`); one call when `split` fails or does not hold
        each request once (never a caller left without a call: it would wait forever)."""
        if self._split is None or len(batch) == 1:
            return [batch]
        try:
            calls = [[batch[i] for i in positions] for positions in self._split([r.text for r in batch])]
        except Exception:  # noqa: BLE001 - the batch is still embedded, in one call
            return [batch]
        calls = [call for call in calls if call]
        if sorted(id(r) for call in calls for r in call) != sorted(id(r) for r in batch):
            return [batch]
        return calls

    def _run(self, calls: list[list[_Request]]) -> None:
        """Make the first of `calls` (this thread's request is in it) and answer its callers; hand the next
        call to one of its callers, or the oldest waiting requests to the oldest of them as the next batch,
        or free the slot."""
        call = calls[0]
        try:
            vectors = self._embed_batch([r.text for r in call])
            if isinstance(vectors, np.ndarray):
                vectors = np.asarray(vectors, dtype=np.float32)
            if len(vectors) != len(call):
                raise RuntimeError(f"the model returned {len(vectors)} vectors for {len(call)} questions")
            for request, vector in zip(call, vectors, strict=True):
                request.vector = vector
        except BaseException as exc:  # noqa: BLE001 - every caller of the call gets it, raised in its thread
            for request in call:
                request.error = exc
        finally:
            following: list[list[_Request]] = calls[1:]
            with self._lock:
                self.calls += 1
                for request in call:
                    if request.vector is not None and self.remember:
                        if isinstance(request.vector, np.ndarray):
                            request.vector.flags.writeable = False  # handed to every later asker
                        self._recent[request.text] = request.vector
                        self._recent.move_to_end(request.text)
                while len(self._recent) > self.remember:
                    self._recent.popitem(last=False)
                batch: list[_Request] = []
                if not following:
                    batch = self._waiting[: self.max_batch]
                    del self._waiting[: len(batch)]
                    if not batch:
                        self._running -= 1  # else the slot goes on to the next call
            if batch:
                following = self._calls(batch)
            for request in call:
                request.ready.set()
            if following:
                following[0][0].calls = following
                following[0][0].ready.set()
