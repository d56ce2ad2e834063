"""Fixtures of the index tests: a session-wide tiny embedder and a counter of embedded passages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.config import IndexConfig
from index.embedding import Embedder, SentenceTransformerEmbedder


class CountingEmbedder(Embedder):
    """Delegates to a real embedder and counts the passages it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.query_prompt = inner.query_prompt
        self.passage_prompt = inner.passage_prompt
        self.max_tokens = inner.max_tokens
        self.embedded: list[str] = []
        self.gives_token_vectors = inner.gives_token_vectors

    def embed_passages(self, texts, *, show_progress=False, on_progress=None) -> np.ndarray:  # noqa: ANN001
        self.embedded.extend(texts)
        return self.inner.embed_passages(texts, show_progress=show_progress, on_progress=on_progress)

    def embed_passages_with_tokens(self, texts, *, show_progress=False, on_progress=None):  # noqa: ANN001, ANN201
        self.embedded.extend(texts)
        return self.inner.embed_passages_with_tokens(
            texts, show_progress=show_progress, on_progress=on_progress
        )

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def encode_query(self, text: str):  # noqa: ANN201
        return self.inner.encode_query(text)

    def count_tokens_batch(self, texts):  # noqa: ANN001
        return self.inner.count_tokens_batch(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def token_spans(self, text: str):  # noqa: ANN201
        return self.inner.token_spans(text)


@pytest.fixture(scope="session")
def tiny_config_model(tiny_st_model_dir: Path) -> str:
    return str(tiny_st_model_dir)


@pytest.fixture(scope="session")
def tiny_embedder(tiny_st_model_dir: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(IndexConfig(embedding_model=str(tiny_st_model_dir)))


@pytest.fixture
def counting_embedder(tiny_embedder: SentenceTransformerEmbedder) -> CountingEmbedder:
    return CountingEmbedder(tiny_embedder)


PARIS = "Paris est la capitale de la France. La tour Eiffel y fut construite en 1889 pour l’Exposition universelle."
LYON = "Lyon est connue pour sa gastronomie. Les bouchons lyonnais servent des quenelles."
BERLIN = "Berlin is the capital of Germany. The wall fell in 1989."


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "paris.txt").write_text(PARIS, encoding="utf-8")
    (folder / "sub" / "lyon.md").write_text("# Lyon\n\n" + LYON, encoding="utf-8")
    (folder / "berlin.txt").write_text(BERLIN, encoding="utf-8")
    (folder / ".hidden.txt").write_text("secret", encoding="utf-8")
    (folder / ".git").mkdir()
    (folder / ".git" / "config.txt").write_text("nope", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG")
    return folder
