"""The PostgreSQL writer's postings, taken from the BM25 arrays with numpy (no server needed)."""

from __future__ import annotations

import numpy as np

from index.lexical import BM25_B, BM25_K1, BM25Index
from index.pg_store import _array_literals, _NewPostings


def test_new_postings_are_the_row_term_counts_of_the_rows_written() -> None:
    counts = [{"chat": 2, "noir": 1}, {}, {"chien": 3, "chat": 1}, {"noir": 12, "blanc": 1, "chat": 1}]
    bm25 = BM25Index(BM25_K1, BM25_B).build_from_counts(counts)
    rows = np.array([3, 1, 2])  # the rows a write inserts, in its order
    postings = _NewPostings(bm25, rows)
    for i, row in enumerate(rows.tolist()):
        part = slice(postings.pointer[i], postings.pointer[i + 1])
        found = {
            postings.names[t]: c
            for t, c in zip(postings.terms[part].tolist(), postings.counts[part].tolist(), strict=True)
        }
        assert found == counts[row]
        assert postings.lengths[i] == sum(counts[row].values())
        assert set(postings.rows[part].tolist()) <= {i}


def test_array_literals_cut_each_slice() -> None:
    values = np.array([0, 9, 10, 99, 100, 12345, 7, 1_000_000_000_000])
    assert _array_literals(values, np.array([0, 3, 3, 5, 8])) == [
        "{0,9,10}",
        "{}",
        "{99,100}",
        "{12345,7,1000000000000}",
    ]
    assert _array_literals(np.array([], dtype=np.int64), np.array([0, 0, 0])) == ["{}", "{}"]
