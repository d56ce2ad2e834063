"""A memo of text -> vector in front of the embedding model, for the answering side.

The extractive backend and the citation check embed the sentences of the retrieved passages on every
question; the same passages come back again and again, so each sentence is embedded once and then read
from memory. Bounded (least recently used first out) so a long-running chat does not grow without limit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rag.protocols import TextEmbedder


class CachedEmbedder:
    """A `rag.protocols.TextEmbedder` in front of another: same results, repeated texts are not re-embedded."""

    def __init__(self, embedder: TextEmbedder, max_entries: int = 50_000) -> None:
        self._embedder = embedder
        self._max_entries = max_entries
        self._passages: OrderedDict[str, np.ndarray] = OrderedDict()
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._embedder.name

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    def _remember(self, memo: OrderedDict[str, np.ndarray], text: str, vector: np.ndarray) -> None:
        memo[text] = vector
        if len(memo) > self._max_entries:
            memo.popitem(last=False)

    def embed_passages(self, texts: Sequence[str], *, show_progress: bool = False) -> np.ndarray:
        texts = list(texts)
        with self._lock:
            known = {t: self._passages[t] for t in texts if t in self._passages}
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            known.update(
                zip(missing, self._embedder.embed_passages(missing, show_progress=show_progress), strict=True)
            )
        with self._lock:
            for text in dict.fromkeys(texts):  # most recently used last; eviction never loses a row of ours
                self._passages.pop(text, None)
                self._remember(self._passages, text, known[text])
        if not texts:
            return np.zeros((0, self._embedder.dimension), dtype=np.float32)
        return np.stack([known[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            vector = self._queries.get(text)
            if vector is not None:
                self._queries.move_to_end(text)
                return vector
        vector = self._embedder.embed_query(text)
        with self._lock:
            self._remember(self._queries, text, vector)
        return vector
