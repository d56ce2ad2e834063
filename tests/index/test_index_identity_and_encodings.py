"""One document per file whatever path reaches it; UTF-16 text without a byte order mark is text."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from index.build import build_index
from index.config import IndexConfig
from index.loaders import LoadError, load_document
from index.store import IndexStore

FRENCH = "La valorisation d’OpenAI atteint 80 milliards de dollars. « Déjà » vu, œuvre naïve."


def _config(tmp_path: Path) -> IndexConfig:
    return IndexConfig(index_dir=tmp_path / "index", embedding_model="", show_progress=False)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_is_read_as_text(tmp_path: Path, codec: str) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes(FRENCH.encode(codec))
    doc = load_document(path)
    assert doc.text == FRENCH
    assert doc.metadata["encoding"] == codec


def test_binary_with_nul_bytes_is_still_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.txt"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(LoadError, match="binary"):
        load_document(path)


def _doc_ids(config: IndexConfig) -> list[str]:
    return sorted(d.doc_id for d in IndexStore.open(config.index_dir).documents())


def test_a_folder_then_a_file_inside_it_is_one_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "paris.txt").write_text("Paris est la capitale de la France.", encoding="utf-8")
    (docs / "lyon.txt").write_text("Lyon est connue pour sa gastronomie.", encoding="utf-8")
    config = _config(tmp_path)
    build_index([docs], config, embedder=None, progress=False)
    build_index([docs / "sub" / "paris.txt"], config, embedder=None, progress=False)
    assert _doc_ids(config) == ["lyon.txt", "sub/paris.txt"]
    store = IndexStore.open(config.index_dir)
    hits = store.search_lexical("capitale de la France", 5)
    assert len(hits) == len({store.chunks[row].text for row, _ in hits})  # no passage twice


def test_a_file_then_its_folder_is_one_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "paris.txt").write_text("Paris est la capitale de la France.", encoding="utf-8")
    config = _config(tmp_path)
    build_index([docs / "paris.txt"], config, embedder=None, progress=False)
    build_index([docs], config, embedder=None, progress=False)
    assert len(_doc_ids(config)) == 1


def test_a_symlink_to_an_indexed_file_is_the_same_document(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "paris.txt").write_text("Paris est la capitale de la France.", encoding="utf-8")
    os.symlink(docs / "paris.txt", docs / "alias.txt")
    config = _config(tmp_path)
    build_index([docs, docs / "alias.txt"], config, embedder=None, progress=False)
    assert len(_doc_ids(config)) == 1
