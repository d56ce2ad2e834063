"""The late-interaction benchmark's building blocks (eval/benchmarks/late_interaction.py): the question's
token vectors come from the same forward pass as its query vector, and MaxSim reads a window's tokens only."""

from __future__ import annotations

import numpy as np
import pytest

from eval.benchmarks.late_interaction import TokenTable, best_per_token, matched, maxsim


def test_token_vectors_pool_to_the_query_vector(tiny_st_model_dir) -> None:
    from eval.benchmarks.late_interaction import encode_tokens
    from index.config import IndexConfig
    from index.embedding import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(tiny_st_model_dir)))
    texts = ["Le chat dort sur le canapé.", "Where is the library? A longer one, so that the batch pads."]
    encoded = encode_tokens(embedder, texts, "query: ")
    expected = embedder._embed_batch(texts, "query: ")
    for item, vector in zip(encoded, expected, strict=True):
        assert float(item["pooled"] @ vector) == pytest.approx(1.0, abs=1e-5)
        # The prompt and the special tokens are not the question's: every kept token lies inside the text.
        assert (item["offsets"][:, 0] >= 0).all()
        assert np.allclose(np.linalg.norm(item["vectors"], axis=1), 1.0, atol=1e-5)
    first = encoded[0]
    words = [texts[0][a:b] for a, b in first["offsets"]]
    assert "." in words and not first["word"][words.index(".")]  # punctuation is not a content token
    assert "chat" in "".join(words)


def _table(vectors: np.ndarray, starts: list[int], ends: list[int]) -> TokenTable:
    count = len(vectors)
    return TokenTable(
        vectors.astype(np.float16),
        np.zeros(count, dtype=np.int32),
        np.array(starts),
        np.array(ends),
        np.arange(count),
        {"doc": np.arange(count)},
        [np.arange(count)],
        {},
        1.0,
    )


def test_maxsim_reads_only_the_window_tokens() -> None:
    from eval.benchmarks.late_interaction import QuestionTokens

    east, north = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    table = _table(np.stack([east, north, east]), [0, 5, 10], [4, 9, 14])
    question = QuestionTokens(np.stack([east, north]), np.array([1.0, 3.0]), east)
    first = best_per_token(question, table, table.span("doc", 0, 4))  # the first token alone
    both = best_per_token(question, table, table.span("doc", 0, 9))
    assert first.tolist() == [1.0, 0.0] and both.tolist() == [1.0, 1.0]
    assert maxsim(first, None) == 0.5 and maxsim(first, question.idf) == 0.25
    assert matched(both, question.idf, 0.9) == 1.0 and matched(first, question.idf, 0.9) == 0.25
    assert len(table.span("other", 0, 100)) == 0
    assert best_per_token(question, table, table.span("doc", 20, 30)).tolist() == [0.0, 0.0]


def test_batched_products_match_the_plain_maxsim() -> None:
    from eval.benchmarks.late_interaction import QuestionTokens, chunk_bests, window_bests

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(9, 4))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    table = _table(vectors, list(range(0, 90, 10)), list(range(5, 95, 10)))
    table.vectors = table.vectors.astype(np.float32)
    table.row = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2], dtype=np.int32)
    table.row_tokens = [np.arange(0, 3), np.arange(3, 7), np.arange(7, 9)]
    question = QuestionTokens(vectors[[1, 4]] + 0.1, np.ones(2), vectors[0])
    windows = [{"doc_id": "doc", "start": 10, "end": 45}, {"doc_id": "doc", "start": 60, "end": 95}]
    for found, window in zip(window_bests(question, table, windows), windows, strict=True):
        expected = best_per_token(question, table, table.span("doc", window["start"], window["end"]))
        assert np.allclose(found, expected)
    rows = [2, 0, 1]
    expected = np.stack([best_per_token(question, table, table.row_tokens[r]) for r in rows])
    assert np.allclose(chunk_bests(question, table, rows), expected)
