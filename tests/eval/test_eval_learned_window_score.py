"""The learned window score experiment's parts (`eval.benchmarks.learned_window_score`)."""

from __future__ import annotations

import pytest

from eval.benchmarks.learned_window_score import (
    FEATURES,
    expand,
    features,
    fit_listwise,
    fit_pointwise,
    in_shipped_units,
)
from rag.evidence import Evidence, ScoredWindow, Window
from rag.records import Passage


def _window(passage: Passage, rank: int, start: int, native: float, cosine_gap: float) -> ScoredWindow:
    return ScoredWindow(
        passage, rank, Window(start, start + 5, "un deux trois", frozenset()), native, True, 0.8, frozenset(),
        cosine_gap=cosine_gap, match_native=native,
    )  # fmt: skip


def test_the_features_read_the_window_its_passage_and_the_first_passage() -> None:
    first = Passage(1, ["a"], "a.txt", "/a.txt", "a", "x", 0, 20, 2.0)
    second = Passage(2, ["b"], "b.txt", "/b.txt", "b", "y", 0, 20, 1.0)
    windows = (
        _window(first, 0, 0, 0.5, 0.0),
        _window(first, 0, 10, 0.2, 0.1),
        _window(second, 1, 0, 0.7, 0.05),
    )
    evidence = Evidence("q", "fr", "", windows, False, True)
    values = dict(zip(FEATURES, features(windows[1], evidence), strict=True))
    assert values["native"] == 0.2 and values["rank"] == 0.0
    assert values["cosine_gap_same"] == 0.1 and values["cosine_gap_xl"] == 0.0  # one language
    assert values["first"] == 0.0 and values["position"] == 1.0  # the passage's second and last window
    assert values["score_ratio"] == 1.0
    second_values = dict(zip(FEATURES, features(windows[2], evidence), strict=True))
    assert second_values["score_ratio"] == 0.5 and second_values["retrieval_gap"] == 0.5
    assert second_values["dense_gap"] == 0.0  # no retriever's own score kept: no gap


@pytest.mark.parametrize("fit", [fit_listwise, fit_pointwise])
def test_a_fit_weighs_up_what_the_gold_windows_have_and_down_what_they_lack(fit) -> None:
    # Two features (native words, cosine gap): the gold window holds more words and is closer by meaning.
    rows = [
        ([[0.8, 0.0], [0.3, 0.1], [0.5, 0.2]], [1, 0, 0]),
        ([[0.2, 0.15], [0.6, 0.0], [0.1, 0.05]], [0, 1, 0]),
        ([[0.4, 0.1], [0.4, 0.3], [0.9, 0.0]], [0, 0, 1]),
        ([[0.7, 0.05], [0.2, 0.0], [0.3, 0.3]], [1, 0, 0]),
    ]
    weights = in_shipped_units(fit(rows, 0.1))
    assert weights[0] == pytest.approx(1.0)  # the unit: a question word held in its own spelling
    assert weights[1] < 0


def test_left_out_features_weigh_nothing() -> None:
    assert expand([1.0, -2.0], [True, False, True]) == [1.0, 0.0, -2.0]
