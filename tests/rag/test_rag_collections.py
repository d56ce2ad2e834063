"""`CombinedIndex` (a shared index plus private collections) passes on the parts' sentence windows, the
query vector and the token vectors: answers that mix a private collection keep the cosine evidence and the
late interaction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.config import IndexConfig
from index.embedding import SentenceTransformerEmbedder
from index.protocols import WindowReader
from index.stores import open_store
from rag.collections import CombinedIndex
from rag.retrieval import HybridRetriever
from rag.settings import load_settings


def _hybrid_index(folder: Path, name: str, text: str, embedder) -> object:  # noqa: ANN001
    corpus = folder / f"{name}-docs"
    corpus.mkdir()
    (corpus / f"{name}.txt").write_text(text, encoding="utf-8")
    config = IndexConfig(index_dir=folder / name, embedding_model=embedder.name, show_progress=False)
    build_index([corpus], config, embedder=embedder)
    return open_store(config, embedder=embedder)


def test_combined_index_passes_on_windows_and_query_vector(tmp_path: Path, tiny_st_model_dir: Path) -> None:
    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(tiny_st_model_dir)))
    shared = _hybrid_index(tmp_path, "shared", "Le zorblax est un fromage. Il est affiné en cave.", embedder)
    private = _hybrid_index(tmp_path, "private", "Le glorbium est un vin. Il vieillit en fût.", embedder)
    combined = CombinedIndex([shared, private])
    assert isinstance(combined, WindowReader) and combined.mode == "hybrid"

    spans, vectors = combined.windows("private.txt")
    own_spans, own_vectors = private.windows("private.txt")
    assert spans == own_spans and vectors is not None and np.array_equal(vectors, own_vectors)
    question = "Qu'est-ce que le glorbium ?"
    assert np.array_equal(combined.query_vector(question), shared.query_vector(question))

    retriever = HybridRetriever(combined, load_settings(environ={}).retrieval)
    rankings = retriever.rankings(question, "fr", 5)
    rows = {combined.chunks[row].doc_id for row, _ in rankings["sentence"]}
    assert rows == {"shared.txt", "private.txt"}  # a cosine for the private collection's chunks too
    # Term coverage too, each part's rows from that part (row r of part n is r * 2 + n).
    coverage = dict(rankings["coverage"])
    assert {combined.chunks[row].doc_id for row in coverage} == {"shared.txt", "private.txt"}
    private_row = next(row for row in coverage if combined.chunks[row].doc_id == "private.txt")
    own = private.term_coverage(question, [private_row // 2])
    assert coverage[private_row] == pytest.approx(own[private_row // 2]) and own[private_row // 2] > 0
    # Late interaction too: each part's MaxSim of its own rows, and of a private document's windows.
    rows = [row for row, _ in rankings["dense"]]
    maxsims = combined.token_maxsim(question, rows)
    assert maxsims is not None and len(maxsims) == len(rows)
    for row, value in zip(rows, maxsims, strict=True):
        part = (shared, private)[row % 2]
        assert value == pytest.approx(float(part.token_maxsim(question, [row // 2])[0]), abs=1e-5)
    spans = [(0, 20), (21, 43)]
    matches = combined.window_token_matches(question, "private.txt", spans)
    own_matches = private.window_token_matches(question, "private.txt", spans)
    assert matches is not None and own_matches is not None and matches.best.shape[1] == len(spans)
    assert np.allclose(matches.best, own_matches.best) and np.array_equal(
        matches.offsets, own_matches.offsets
    )


def test_a_question_is_embedded_once_for_every_part(tmp_path: Path, tiny_st_model_dir: Path) -> None:
    """The parts share one embedder (a private collection is opened with the shared index's): dense search
    over both and the evidence step's query vector cost one model call, not one per part."""
    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(tiny_st_model_dir)))
    shared = _hybrid_index(tmp_path, "shared", "Le zorblax est un fromage. Il est affiné en cave.", embedder)
    private = _hybrid_index(tmp_path, "private", "Le glorbium est un vin. Il vieillit en fût.", embedder)
    combined = CombinedIndex([shared, private])
    calls = embedder._query_batcher.calls
    question = "Qu'est-ce que le glorbium ?"
    found = combined.search_dense(question, 5)
    assert {combined.chunks[row].doc_id for row, _ in found} == {"shared.txt", "private.txt"}
    assert combined.query_vector(question) is not None and private.query_vector(question) is not None
    assert embedder._query_batcher.calls == calls + 1
    alone = embedder.embed_queries([question])[0]  # the model called directly: the same vector
    assert np.allclose(private.query_vector(question), alone) and np.allclose(
        shared.query_vector(question), alone
    )
