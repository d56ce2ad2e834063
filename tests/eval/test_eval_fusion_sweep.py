"""The fusion sweep's `--chunk-header` variant (eval/benchmarks/fusion_sweep.py): which chunks are embedded
again with their title and headings, and from which text."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from eval.benchmarks.fusion_sweep import with_chunk_headers
from index.lexical import chunk_header


class _Recorder:
    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed_passages(self, texts):  # noqa: ANN001, ANN201
        self.texts += list(texts)
        return np.full((len(texts), 2), 0.5, dtype=np.float32)


def _chunk(text: str, title: str, headings: tuple[str, ...]) -> SimpleNamespace:
    return SimpleNamespace(text=text, title=title, heading_path=headings)


def test_chunk_header_is_title_and_headings_once() -> None:
    assert chunk_header("Bruno Cremer", ("Bruno Cremer", "Débuts")) == "Bruno Cremer Débuts"
    assert chunk_header("", ()) == ""


def test_only_chunks_without_their_header_are_embedded_again_unless_every() -> None:
    chunks = [
        _chunk("# Sport\n\nLes dépenses des ménages.", "Sport", ("Sport",)),  # opens with its header
        _chunk("Il rejoint l'équipe en 2005.", "Patrick Kane", ("Patrick Kane",)),
        _chunk("Sans titre.", "", ()),  # nothing to add
    ]
    embedder = _Recorder()
    store = SimpleNamespace(chunks=chunks, embedder=embedder)
    vectors = np.zeros((3, 2), dtype=np.float32)
    out = with_chunk_headers(store, vectors, every=False)
    assert embedder.texts == ["Patrick Kane\n\nIl rejoint l'équipe en 2005."]
    assert out[1].tolist() == [0.5, 0.5] and not out[[0, 2]].any()
    assert not vectors.any()  # the index's own vectors are left as they are

    embedder.texts.clear()
    with_chunk_headers(store, vectors, every=True)
    assert embedder.texts == [
        "Sport\n\n# Sport\n\nLes dépenses des ménages.",
        "Patrick Kane\n\nIl rejoint l'équipe en 2005.",
    ]


def test_the_span_floor_block_prints_each_floor_and_the_questions_it_moves(capsys) -> None:  # noqa: ANN001
    from eval.benchmarks.fusion_sweep import SPAN_FLOORS, sweep_span_floor
    from rag.settings import RetrievalSettings

    # Row 0 (gold "a") is BM25's and coverage's winner; row 1 leads the cosines by 0.025, noise under a floor.
    question = (
        "a",
        [(0, 6.0), (1, 2.0)],  # lexical
        [(1, 0.84), (0, 0.815)],  # dense
        {1: 0.85, 0: 0.83},  # sentence
        {0: 0.3, 1: 0.05},  # coverage
        (1, None),  # no token vectors: no late interaction
    )
    sweep_span_floor(SimpleNamespace(), RetrievalSettings(), {"fr": [question]}, ["a", "b"], None)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(SPAN_FLOORS)
    assert lines[1].split() == ["floor", "0.0", "fr", "1.000", "/", "0.000", "(+0", "-0", "/", "+0", "-0)"]
    assert lines[-1].split()[-6:] == ["1.000", "(+0", "-0", "/", "+1", "-0)"]  # floor 0.1: hit@1 gained
