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
