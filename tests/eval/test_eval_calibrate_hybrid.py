"""The calibration's held-out index (`eval.benchmarks.calibrate_hybrid`): kept rows keep their own figures."""

from __future__ import annotations

import numpy as np
import pytest

from eval.benchmarks.calibrate_hybrid import _KeptRows
from index.lexical import BM25Index


def test_kept_rows_read_the_term_coverage_of_the_right_rows() -> None:
    """Store row numbers are not positions in the index of the kept rows: row 2 holds both terms."""
    docs = [["alpha"], ["beta"], ["alpha", "beta"], ["gamma"], ["alpha", "gamma"], ["alpha"]]
    kept = [1, 2, 3, 4, 5]  # row 0 held out
    index = _KeptRows(BM25Index().build(docs).take_rows(np.asarray(kept)), kept)
    found = index.coverage(["alpha", "beta"], [0, 1, 2, 3, 4])
    assert found[2] == pytest.approx(1.0)
    assert found[0] == 0.0 and found[3] == 0.0  # held out; holds neither
    assert 0.0 < found[1] < 1.0 and 0.0 < found[4] < 1.0
    # The statistics are the kept rows': alpha (3 of 5 kept rows) weighs less than beta (2).
    assert found[1] > found[4]
    assert [row for row, _ in index.search(["alpha", "beta"], 5)][0] == 2


def _window_record(passage: int, start: int, end: int, text: str, coverage: float) -> dict:
    return {
        "passage": passage, "doc_id": "doc.txt", "instruction_like": False, "rank": passage - 1,
        "start": start, "end": end, "text": text, "coverage": coverage, "typed": True, "cosine": None,
        "covered": [["alpha"]] if coverage else [], "crosslingual": False, "match_native": coverage,
        "match_translated": 0.0, "match_cognate": 0.0, "covered_native": [["alpha"]] if coverage else [],
    }  # fmt: skip


def test_golden_citation_precision_scores_the_cited_passages_as_rag_eval_does() -> None:
    """A cited passage counts when its span (kept in the features) holds the evidence quote, as in
    `eval.metrics.citation_precision`; a window inside it need not hold the quote itself."""
    from eval.benchmarks.calibrate_hybrid import golden_citation_precision, rebuild_evidence
    from eval.datasets import Evidence

    record = {
        "set": "golden", "id": "q1", "focus": "alpha ?", "language": "fr", "answer_type": "",
        "unknown_name": False, "question_tokens": None,
        # word, stems, weight, own-spelling stems, answer weight, translated (`evidence_record`)
        "term_groups": [["alpha", ["alpha"], 1.0, ["alpha"], 1.0, False]],
        # Passage 1 runs 0-100 (its window quoted: 10-40); passage 2 runs 200-300.
        "passages": [[1, 0, 100], [2, 200, 300]],
        "windows": [_window_record(1, 10, 40, "alpha one.", 1.0), _window_record(2, 210, 240, "beta.", 0.0)],
    }  # fmt: skip
    record["evidence"] = rebuild_evidence(record)
    assert record["evidence"].windows[0].passage.end == 100

    def precision(quote_start: int, quote_end: int) -> tuple[dict[str, float], list[str]]:
        gold = {"q1": ("en", [Evidence("doc.txt", "…", quote_start, quote_end)])}
        return golden_citation_precision([record], lambda r: r["evidence"], gold)

    assert precision(60, 90) == ({"en": 1.0}, [])  # in the cited passage, outside the quoted window
    assert precision(220, 250) == ({"en": 0.0}, ["q1"])  # only in the passage left uncited
    # A record whose passages were not kept (older features) cites passages of no length: not precise.
    del record["passages"]
    record["evidence"] = rebuild_evidence(record)
    assert precision(60, 90) == ({"en": 0.0}, ["q1"])


def test_the_gate_sweep_finds_a_lexical_reach_when_far_windows_words_mislead() -> None:
    """Unanswerable questions whose words are held only by a window far from them by meaning, beside
    answerable ones whose close window holds them: no line over the best lexical score and the best cosine
    of any two windows tells them apart, one that reads the words of the close windows only does."""
    from eval.benchmarks.calibrate_hybrid import LANGUAGES, LEXICAL_REACHES, sweep_gates
    from rag.evidence import Evidence, ScoredWindow, Window
    from rag.records import Passage

    passage = Passage(1, ["c"], "d", "s", "t", "x", 0, 1, 1.0)

    def evidence(*windows: tuple[float, float]) -> Evidence:
        scored = tuple(
            ScoredWindow(passage, 0, Window(i, i + 1, "x", frozenset()), coverage, True, cosine, frozenset())
            for i, (coverage, cosine) in enumerate(windows)
        )
        return Evidence("Qui dirige Zorg ?", "fr", "", scored, False, True)

    records = []
    for lang in LANGUAGES:
        records.append({"set": lang, "answerable": True, "kind": "piaf", "evidence": evidence((0.5, 0.88))})
        for kind in ("held-out", "near"):
            far = evidence((0.0, 0.88), (0.5, 0.80))
            records.append({"set": lang, "answerable": False, "kind": kind, "evidence": far})
    everywhere = {lang: 1.0 for lang in LANGUAGES}
    gate, rates, balanced = sweep_gates(records, "m", everywhere)
    assert gate.lexical_reach is None and balanced < 1.0
    gate, rates, balanced = sweep_gates(records, "m", everywhere, reaches=LEXICAL_REACHES)
    assert gate.lexical_reach is not None and gate.lexical_reach < 0.08
    assert balanced == 1.0 and all(rate == (0.0, 1.0) for rate in rates.values())


def test_the_features_keep_each_retrievers_passage_scores() -> None:
    """A record's passages keep their fused score and each retriever's (`evidence_record`, features version
    13); older records without them rebuild passages with none."""
    from eval.benchmarks.calibrate_hybrid import rebuild_evidence

    record = {
        "language": "fr", "focus": "alpha ?", "answer_type": "", "unknown_name": False, "question_tokens": None,
        "term_groups": [["alpha", ["alpha"], 1.0, ["alpha"], 1.0, False]],
        "passages": [[1, 0, 100, 3.5, {"dense": 0.84, "lexical": 2.0}]],
        "windows": [_window_record(1, 10, 40, "alpha one.", 1.0)],
    }  # fmt: skip
    passage = rebuild_evidence(record).windows[0].passage
    assert (passage.score, passage.scores) == (3.5, {"dense": 0.84, "lexical": 2.0})
    record["passages"] = [[1, 0, 100, 3.5]]
    assert rebuild_evidence(record).windows[0].passage.scores == {}
