"""Sentence windows found at index time (index.windows) and stored with the index."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index.build import build_index
from index.config import IndexConfig
from index.store import IndexStore
from index.windows import WindowTable, document_windows

TEXT = "80 milliards de dollars. C’est la valorisation vertigineuse qu’OpenAI affiche aujourd’hui. Sam Altman pilote l’entreprise.\n\nIl a vendu Loopt."


def test_windows_take_the_sentence_a_pronoun_or_a_fragment_leans_on() -> None:
    windows = document_windows(TEXT)
    texts = [TEXT[w.start : w.end] for w in windows]
    assert texts[0] == "80 milliards de dollars."
    assert (
        texts[1]
        == "80 milliards de dollars. C’est la valorisation vertigineuse qu’OpenAI affiche aujourd’hui."
    )  # fragment + pronoun
    assert (
        TEXT[windows[1].sentence : windows[1].end]
        == "C’est la valorisation vertigineuse qu’OpenAI affiche aujourd’hui."
    )
    assert texts[2] == "Sam Altman pilote l’entreprise."
    assert texts[3] == "Il a vendu Loopt."  # never across a paragraph break


def test_table_round_trip(tmp_path: Path) -> None:
    table = WindowTable(
        np.array([0, 0, 2]), np.array([0, 5, 1]), np.array([0, 7, 1]), np.array([4, 9, 3]), np.eye(3)
    )
    table.save(tmp_path)
    loaded = WindowTable.load(tmp_path)
    assert loaded is not None and [s.end for _, s in loaded.spans_of(0)] == [4, 9]
    assert loaded.spans_of(1) == [] and [r for r, _ in loaded.spans_of(2)] == [2]
    assert loaded.vectors.dtype == np.float16 and WindowTable.load(tmp_path / "none") is None


def test_lexical_index_stores_windows_without_vectors(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(TEXT, encoding="utf-8")
    config = IndexConfig(index_dir=tmp_path / "index", embedding_model="", show_progress=False)
    report = build_index([docs], config, embedder=None)
    assert report.embedded_windows == 0
    store = IndexStore.open(config.index_dir, config=config, load_model=False)
    spans, vectors = store.windows("a.txt")
    assert vectors is None and [TEXT[s.sentence : s.end] for s in spans][-1] == "Il a vendu Loopt."
    again, _ = store.windows("a.txt")
    assert again is spans  # built once per loaded index, not at every answer's passage
    assert [span for _, span in store.window_table.spans_of(0)] == spans
