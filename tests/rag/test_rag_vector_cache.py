"""The answer-side memo embeds each text once and returns the same vectors as the model."""

from __future__ import annotations

import numpy as np

from rag.vector_cache import CachedEmbedder


class CountingEmbedder:
    name = "counting"
    dimension = 3

    def __init__(self) -> None:
        self.passages_embedded: list[str] = []
        self.queries_embedded: list[str] = []

    def _vector(self, text: str) -> np.ndarray:
        vector = np.array([len(text), text.count("a"), 1.0], dtype=np.float32)
        return vector / np.linalg.norm(vector)

    def embed_passages(self, texts, **_options):
        self.passages_embedded += list(texts)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text):
        self.queries_embedded.append(text)
        return self._vector(text)


def test_repeated_texts_are_embedded_once_with_identical_results() -> None:
    model = CountingEmbedder()
    cached = CachedEmbedder(model)
    first = cached.embed_passages(["alpha", "beta", "alpha"])
    second = cached.embed_passages(["beta", "gamma"])
    assert model.passages_embedded == ["alpha", "beta", "gamma"]
    np.testing.assert_allclose(first, model.embed_passages(["alpha", "beta", "alpha"]))
    np.testing.assert_allclose(second[0], first[1])
    cached.embed_query("q")
    cached.embed_query("q")
    assert model.queries_embedded == ["q"]
    assert cached.name == "counting" and cached.dimension == 3
    assert cached.embed_passages([]).shape == (0, 3)


def test_memo_is_bounded_least_recently_used_first_out() -> None:
    model = CountingEmbedder()
    cached = CachedEmbedder(model, max_entries=2)
    cached.embed_passages(["a", "b"])
    cached.embed_passages(["a"])  # "a" is now the most recent
    cached.embed_passages(["c"])  # evicts "b"
    cached.embed_passages(["a", "b"])
    assert model.passages_embedded == ["a", "b", "c", "b"]
