"""Ctrl-C during hybrid indexing: the next run reuses what was embedded (index.checkpoint), and nothing
indexed before is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index import checkpoint as checkpoint_module
from index.build import build_index
from index.checkpoint import CHECKPOINT_DIR
from index.config import IndexConfig
from index.store import IndexStore
from tests.index.conftest import CountingEmbedder

NEW = {
    "marseille.txt": "Marseille est un grand port de la Méditerranée. Le Vieux-Port date de l'Antiquité.",
    "nantes.txt": "Nantes est traversée par la Loire. Le château des ducs de Bretagne s'y trouve.",
    "lille.txt": "Lille est la capitale des Flandres françaises. Sa braderie attire des millions de visiteurs.",
}


class InterruptedEmbedder(CountingEmbedder):
    """Stops (as Ctrl-C would) at its `stop_at`-th call of embedding passages."""

    def __init__(self, inner, stop_at: int) -> None:  # noqa: ANN001
        super().__init__(inner)
        self.calls = 0
        self.stop_at = stop_at

    def _count(self) -> None:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt

    def embed_passages(self, texts, **kwargs) -> np.ndarray:  # noqa: ANN001, ANN003
        self._count()
        return super().embed_passages(texts, **kwargs)

    def embed_passages_with_tokens(self, texts, **kwargs):  # noqa: ANN001, ANN003, ANN201
        self._count()
        return super().embed_passages_with_tokens(texts, **kwargs)


def _state(config: IndexConfig) -> tuple:
    store = IndexStore.open(config.index_dir, config=config, load_model=False)
    vectors = store.vector_index.reconstruct_n(0, store.vector_index.ntotal)
    return [c.chunk_id for c in store.chunks], vectors


def test_the_run_after_ctrl_c_reuses_what_was_embedded(
    tmp_path: Path, corpus: Path, tiny_embedder, monkeypatch
) -> None:  # noqa: ANN001
    monkeypatch.setattr(checkpoint_module, "SLICE", 1)  # one text per saved slice
    config = IndexConfig(
        index_dir=tmp_path / "index", embedding_model=tiny_embedder.name, show_progress=False
    )
    build_index([corpus], config, embedder=CountingEmbedder(tiny_embedder))
    before = _state(config)
    for name, text in NEW.items():
        (corpus / name).write_text(text, encoding="utf-8")

    interrupted = InterruptedEmbedder(tiny_embedder, stop_at=3)  # two chunks embedded, then Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        build_index([corpus], config, embedder=interrupted)
    embedded_before = list(interrupted.embedded[:2])
    chunk_ids, vectors = _state(config)
    assert chunk_ids == before[0] and np.array_equal(vectors, before[1])  # the index is as it was
    assert len(list((config.index_dir / CHECKPOINT_DIR).glob("*.npz"))) == 2

    resumed = CountingEmbedder(tiny_embedder)
    report = build_index([corpus], config, embedder=resumed)
    assert report.new_files == 3 and report.written
    assert not set(embedded_before) & set(resumed.embedded)  # not embedded again
    # (3 texts: a sentence window the same as one of the two chunks is found too)
    assert any(message.startswith("Resumed: ") for message in report.messages), report.messages
    assert not (config.index_dir / CHECKPOINT_DIR).exists()

    # The same index as one uninterrupted run builds.
    fresh = IndexConfig(index_dir=tmp_path / "fresh", embedding_model=tiny_embedder.name, show_progress=False)
    build_index([corpus], fresh, embedder=CountingEmbedder(tiny_embedder))
    got, expected = _by_chunk(config), _by_chunk(fresh)
    assert got.keys() == expected.keys()
    for chunk_id, (vector, token_ids) in expected.items():
        assert np.allclose(got[chunk_id][0], vector, atol=1e-5)
        assert np.array_equal(got[chunk_id][1], token_ids)  # the token vectors are there too


def _by_chunk(config: IndexConfig) -> dict:
    """chunk id -> (vector, token ids): an update appends its new chunks, a fresh build sorts them by file."""
    store = IndexStore.open(config.index_dir, config=config, load_model=False)
    vectors = store.vector_index.reconstruct_n(0, store.vector_index.ntotal)
    tokens = store.stored_tokens()
    assert tokens is not None
    return {
        chunk.chunk_id: (vectors[row], tokens.ids[tokens.bounds[row] : tokens.bounds[row + 1]])
        for row, chunk in enumerate(store.chunks)
    }


def test_a_damaged_checkpoint_file_is_only_a_miss(tmp_path: Path, corpus: Path, tiny_embedder) -> None:  # noqa: ANN001
    config = IndexConfig(
        index_dir=tmp_path / "index", embedding_model=tiny_embedder.name, show_progress=False
    )
    folder = config.index_dir / CHECKPOINT_DIR
    folder.mkdir(parents=True)
    (folder / "broken.npz").write_bytes(b"not a numpy file")
    counting = CountingEmbedder(tiny_embedder)
    report = build_index([corpus], config, embedder=counting)
    assert report.written and report.embedded_chunks == report.chunks > 0
    assert not folder.exists()
