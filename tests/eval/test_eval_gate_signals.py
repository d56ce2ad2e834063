"""The gate-signals benchmark's arithmetic (`eval.benchmarks.gate_signals`): the whole-index standout of the
best cosine, the rankings' agreement, and the sweep of a third term of the gate's line."""

from __future__ import annotations

import numpy as np
import pytest

from eval.benchmarks.gate_signals import _stats, auc, derived, sweep


def test_the_stats_read_the_scores_best_first() -> None:
    stats = _stats(np.array([0.9, 0.7, 0.5, 0.5]))
    assert stats["best"] == 0.9 and stats["second"] == 0.7
    assert stats["tenth"] == 0.5  # fewer than ten scores: the last one
    assert stats["mean"] == pytest.approx(0.65)
    assert stats["std"] == pytest.approx(np.std([0.9, 0.7, 0.5, 0.5]))


def test_the_signals_say_how_far_the_best_stands_out_and_whether_the_rankings_agree() -> None:
    flat = {"best": 0.8, "second": 0.8, "tenth": 0.8, "mean": 0.8, "std": 1.0, "p99": 0.8, "p90": 0.8}
    standing = {**flat, "best": 0.9, "second": 0.82, "mean": 0.8, "std": 0.02}
    signal = {
        "chunk": standing,
        "window": flat,
        "lexical": flat,
        "dense_top_in_lexical": 0,
        "lexical_top_in_dense": 3,
        "sentence_top_in_lexical": 0,
        "lexical_top_in_sentence": 0,
        "overlap5": 2,
        "overlap10": 4,
    }
    values = derived(signal)
    assert values["chunk z"] == pytest.approx(5.0)
    assert values["window z"] == 0.0
    assert values["chunk gap12"] == pytest.approx(0.08)
    assert values["agree dense→lex"] == 0.0  # the dense top chunk is the lexical top chunk
    assert values["agree lex→dense"] == pytest.approx(-np.log(4))
    assert values["overlap5"] == 2.0


def test_auc_counts_ties_as_half() -> None:
    labels = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert auc(np.array([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_a_separating_third_term_lifts_the_best_line() -> None:
    # Two languages' worth of records is not needed: every language holds the same four questions.
    records, base, extra = [], [], []
    for lang in ("fr", "en", "de"):
        for answerable, kind, margin, signal in (
            (True, "piaf", 0.01, 1.0),
            (True, "piaf", -0.01, 1.0),  # abstained wrongly by the line alone, saved by the signal
            (False, "held-out", 0.01, 0.0),  # answered wrongly by the line alone, caught with the signal
            (False, "near", -0.02, 0.0),
        ):
            records.append({"set": lang, "answerable": answerable, "kind": kind})
            base.append(margin)
            extra.append(signal)
    records.append({"set": "golden", "answerable": True, "kind": "golden"})
    base.append(0.05)
    extra.append(1.0)
    lexical_false = dict.fromkeys(("fr", "en", "de"), 1.0)
    (_, alone), (_, with_term) = sweep(records, np.array(base), np.array(extra), lexical_false, [0.0, 0.1])
    assert alone[1] < 1.0
    assert with_term[1] == 1.0  # every answerable answered, every unanswerable caught
    assert with_term[3] == 1  # the golden question stays answered
