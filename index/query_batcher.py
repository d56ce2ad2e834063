"""Questions embedded one at a time by many threads -> one model call for those that wait together.

A chat server embeds each question in the thread that answers it. Under load many threads want the model
at the same moment, and one call for N short questions costs far less CPU than N calls (e5-small with
ONNX Runtime, busy machine: 17 ms of CPU per question alone, 10-11 ms in batches of 8 or more; each call
pays the tokenizer, the session's set-up and per-layer overheads once, whatever the batch).

No timer: a caller who finds the model idle runs at once, alone (no added latency when nobody else
asks). Callers who arrive while a batch runs wait, and the oldest of them then runs everybody waiting
(up to `max_batch`) in one call and hands each their row. A failure of the model reaches every caller of
that batch, as the exception it was. It does not keep a cache: `IndexStore.query_vector` memoises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(eq=False)
class _Request:
    text: str
    ready: threading.Event = field(default_factory=threading.Event)
    vector: np.ndarray | None = None
    error: BaseException | None = None
    lead: bool = False  # woken to run the next batch, not with a result


class QueryBatcher:
    """`embed(text)` from any thread; concurrent calls share `embed_batch` calls (see the module doc)."""

    def __init__(self, embed_batch: Callable[[Sequence[str]], np.ndarray], max_batch: int = 32) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._embed_batch = embed_batch
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._running = False
        self.calls = 0  # model calls made (how many questions shared them: tests and benchmarks)

    def embed(self, text: str) -> np.ndarray:
        request = _Request(text)
        with self._lock:
            self._waiting.append(request)
            lead = not self._running
            self._running = True
        if not lead:
            request.ready.wait()
            if not request.lead:
                return self._result(request)
        self._run_next_batch()
        return self._result(request)

    @staticmethod
    def _result(request: _Request) -> np.ndarray:
        if request.error is not None:
            raise request.error
        assert request.vector is not None
        return request.vector

    def _run_next_batch(self) -> None:
        """Embed the oldest waiting requests (the caller's own among them: it is the oldest), then wake the
        next oldest to run the following batch, or mark the model idle."""
        with self._lock:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: len(batch)]
        try:
            vectors = np.asarray(self._embed_batch([r.text for r in batch]), dtype=np.float32)
            if len(vectors) != len(batch):
                raise RuntimeError(f"the model returned {len(vectors)} vectors for {len(batch)} questions")
            for request, vector in zip(batch, vectors, strict=True):
                request.vector = vector
        except BaseException as exc:  # noqa: BLE001 - every caller of the batch gets it, raised in its thread
            for request in batch:
                request.error = exc
        finally:
            with self._lock:
                self.calls += 1
                following = self._waiting[0] if self._waiting else None
                self._running = following is not None
            for request in batch:
                request.ready.set()
            if following is not None:
                following.lead = True
                following.ready.set()
