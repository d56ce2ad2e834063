"""The query adapter experiment's pieces (eval/benchmarks/query_adapter.py): the closed-form ridge map, its
application to unit vectors, the dense MRR it is chosen by, and the folds' unit (the article)."""

from __future__ import annotations

import numpy as np

from eval.benchmarks.query_adapter import adapt, article, dense_mrr, ridge


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_ridge_learns_a_map_and_a_large_penalty_keeps_the_vectors() -> None:
    rng = np.random.default_rng(0)
    questions = _unit(rng.normal(size=(400, 8)))
    rotation = np.linalg.qr(rng.normal(size=(8, 8)))[0].astype(np.float32)
    targets = questions @ rotation
    learned = ridge(questions, targets, 1e-6)
    assert np.allclose(questions + questions @ learned, targets, atol=1e-3)
    assert np.allclose(adapt(questions, learned), targets, atol=1e-3)
    # A penalty far above the questions' Gram matrix leaves A near zero: q' = q.
    kept = ridge(questions, targets, 1e9)
    assert np.abs(kept).max() < 1e-5
    assert np.allclose(adapt(questions, kept), questions, atol=1e-4)


def test_adapt_returns_unit_vectors_and_none_is_the_identity() -> None:
    rng = np.random.default_rng(1)
    questions = _unit(rng.normal(size=(5, 6)))
    assert adapt(questions, None) is questions
    out = adapt(questions, rng.normal(size=(6, 6)).astype(np.float32))
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_dense_mrr_counts_the_chunks_scored_above_the_gold() -> None:
    chunks = np.eye(3, dtype=np.float32)
    questions = np.array([[1.0, 0.5, 0.0], [1.0, 0.5, 0.2]], dtype=np.float32)
    # first: gold chunk 0 ranks 1st; second: gold chunk 1 ranks 2nd (chunk 0 above it).
    assert dense_mrr(questions, np.array([0, 1]), chunks) == (1.0 + 0.5) / 2


def test_folds_are_by_article() -> None:
    assert article("a0076-p03") == "a0076"
    assert article("a0076-p10") == article("a0076-p00")
