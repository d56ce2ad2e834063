"""`passage_windows` finds a passage's windows by bisection: the same windows, in the same order, with the
same vectors, as looking at every window of the document."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from index.windows import WindowSpan, document_windows
from rag.evidence import passage_windows
from rag.records import Passage


def _every_window(passage: Passage, spans: list[WindowSpan], vectors: np.ndarray) -> list[tuple]:
    """What passage_windows returned before: every window of the document looked at."""
    inside = []
    for index, span in enumerate(spans):
        if span.sentence < passage.start or span.end > passage.end:
            continue
        start = span.start if span.start >= passage.start else span.sentence
        inside.append((WindowSpan(start, span.sentence, span.end), vectors[index]))
    return inside


def test_the_windows_of_any_passage_are_those_of_a_full_scan(seeds_dir: Path) -> None:
    text = "\n\n".join(path.read_text(encoding="utf-8") for path in sorted(seeds_dir.glob("*.txt")))
    spans = document_windows(text)
    assert len(spans) > 50 and [s.sentence for s in spans] == sorted(s.sentence for s in spans)
    vectors = np.arange(len(spans), dtype=np.float32)[:, None] * np.ones((1, 4), dtype=np.float32)
    bounds = sorted(
        {0, len(text)} | {s.start for s in spans} | {s.sentence for s in spans} | {s.end for s in spans}
    )
    rng = random.Random(7)
    for _ in range(500):
        # passages cut at window edges (as chunks are) and anywhere, empty ones and the whole text too
        picks = rng.sample(bounds, 2) if rng.random() < 0.7 else [rng.randrange(len(text) + 1) for _ in "ab"]
        start, end = sorted(picks)
        passage = Passage(1, ["c"], "d", "d.txt", "d", text[start:end], start, end, 1.0)
        found = passage_windows(passage, (spans, vectors))
        expected = _every_window(passage, spans, vectors)
        assert [span for span, _ in found] == [span for span, _ in expected]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(found, expected, strict=True))
