"""A damaged index is named as such, in one line with the fix (`rag index --rebuild`), by every door:
`IndexStore.open`, `rag ask` (exit 2, no traceback) and `rag index` (exit 2, never "Up to date"); and
`rag index --rebuild` repairs it."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.cli import run_index
from index.config import IndexConfig
from index.errors import IndexFormatError
from index.store import IndexStore, current_generation
from tests.conftest import EMPTY_CONFIG

PARIS = "Paris est la capitale de la France. La tour Eiffel y fut construite en 1889."
LYON = "Lyon est connue pour sa gastronomie. Les bouchons lyonnais servent des quenelles."


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "paris.txt").write_text(PARIS, encoding="utf-8")
    (folder / "lyon.txt").write_text(LYON, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def lexical_template(tmp_path_factory, corpus: Path) -> Path:
    index_dir = tmp_path_factory.mktemp("lexical") / "index"
    build_index([corpus], _config(index_dir), embedder=None, progress=False)
    return index_dir


@pytest.fixture(scope="module")
def hybrid_template(tmp_path_factory, corpus: Path, tiny_embedder) -> Path:
    index_dir = tmp_path_factory.mktemp("hybrid") / "index"
    build_index([corpus], _config(index_dir), embedder=tiny_embedder, progress=False)
    return index_dir


def _config(index_dir: Path) -> IndexConfig:
    return IndexConfig(index_dir=index_dir, embedding_model="", show_progress=False)


def _rewrite_npz(generation: Path, **changes: Callable[[np.ndarray], np.ndarray]) -> None:
    with np.load(generation / "bm25.npz") as arrays:
        data = {name: arrays[name] for name in arrays.files}
    for name, change in changes.items():
        data[name] = change(data[name])
    (generation / "bm25.npz").unlink()
    np.savez(generation / "bm25.npz", **data)


def _rewrite_jsonl(path: Path, change: Callable[[dict], dict]) -> None:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(json.dumps(change(dict(r))) + "\n" for r in rows), encoding="utf-8")


def _edit_manifest(generation: Path, change: Callable[[dict], None]) -> None:
    data = json.loads((generation / "manifest.json").read_text(encoding="utf-8"))
    change(data)
    (generation / "manifest.json").write_text(json.dumps(data), encoding="utf-8")


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(os.urandom(max(64, path.stat().st_size)))


def _symlink_to_elsewhere(path: Path) -> None:
    outside = path.parent.parent.parent / f"outside-{path.name}"
    shutil.copy(path, outside)
    path.unlink()
    path.symlink_to(outside)


def _shift_chunk_end(row: dict) -> dict:
    row["end"] += 10_000
    return row


def _swap_chunk_bounds(row: dict) -> dict:
    row["start"], row["end"] = row["end"], row["start"]
    return row


DAMAGES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "bm25.npz truncated": ("lexical", lambda g: _truncate(g / "bm25.npz")),
    "bm25.npz garbage (bad zip)": ("lexical", lambda g: _garbage(g / "bm25.npz")),
    "bm25.npz missing": ("lexical", lambda g: (g / "bm25.npz").unlink()),
    "bm25.json garbage": ("lexical", lambda g: _garbage(g / "bm25.json")),
    "bm25 rows out of range": ("lexical", lambda g: _rewrite_npz(g, post_rows=lambda a: a + 1000)),
    "bm25 negative rows": ("lexical", lambda g: _rewrite_npz(g, post_rows=lambda a: a - 1000)),
    "bm25 pointers past the postings": ("lexical", lambda g: _rewrite_npz(g, term_ptr=lambda a: a * 3)),
    "bm25 float rows": ("lexical", lambda g: _rewrite_npz(g, post_rows=lambda a: a + 0.5)),
    "bm25 lengths of another size": ("lexical", lambda g: _rewrite_npz(g, doc_lengths=lambda a: a[:-1])),
    "bm25 a missing array": ("lexical", lambda g: _rewrite_npz(g, post_counts=lambda a: a[:0])),
    "chunk offsets beyond the text": (
        "lexical",
        lambda g: _rewrite_jsonl(g / "chunks.jsonl", _shift_chunk_end),
    ),
    "chunk start after its end": (
        "lexical",
        lambda g: _rewrite_jsonl(g / "chunks.jsonl", _swap_chunk_bounds),
    ),
    "chunks.jsonl not JSON": ("lexical", lambda g: (g / "chunks.jsonl").write_text("{nope\n")),
    "documents.jsonl garbage": ("lexical", lambda g: _garbage(g / "documents.jsonl")),
    "manifest chunk ids unknown": (
        "lexical",
        lambda g: _edit_manifest(g, lambda m: m["files"]["paris.txt"].update(chunk_ids=["nope"])),
    ),
    "manifest chunk count wrong": (
        "lexical",
        lambda g: _edit_manifest(g, lambda m: m.update(chunk_count=99)),
    ),
    "manifest says hybrid, no vectors": (
        "lexical",
        lambda g: _edit_manifest(g, lambda m: m.update(mode="hybrid")),
    ),
    "CURRENT outside the folder": ("lexical", lambda g: (g.parent / "CURRENT").write_text("../elsewhere\n")),
    "CURRENT absolute": ("lexical", lambda g: (g.parent / "CURRENT").write_text("/etc\n")),
    "vectors.faiss garbage": ("hybrid", lambda g: _garbage(g / "vectors.faiss")),
    "vectors.faiss truncated": ("hybrid", lambda g: _truncate(g / "vectors.faiss")),
    "vectors.faiss missing": ("hybrid", lambda g: (g / "vectors.faiss").unlink()),
    "vectors.faiss a symlink": ("hybrid", lambda g: _symlink_to_elsewhere(g / "vectors.faiss")),
    "vectors of another dimension": (
        "hybrid",
        lambda g: _edit_manifest(
            g, lambda m: m["embedding"].update(dimension=m["embedding"]["dimension"] + 1)
        ),
    ),
}


@pytest.fixture(params=list(DAMAGES))
def damaged(request, tmp_path: Path, lexical_template: Path, hybrid_template: Path) -> Path:
    kind, damage = DAMAGES[request.param]
    index_dir = tmp_path / "work" / "index"
    shutil.copytree(lexical_template if kind == "lexical" else hybrid_template, index_dir, symlinks=True)
    generation = current_generation(index_dir)
    assert generation is not None
    damage(generation)
    return index_dir


def _one_line_with_the_fix(message: str) -> None:
    assert "rag index --rebuild" in message, message
    assert "Traceback" not in message


def test_opening_names_the_damage_and_the_fix(damaged: Path) -> None:
    with pytest.raises(IndexFormatError) as caught:
        IndexStore.open(damaged, load_model=False)
    _one_line_with_the_fix(str(caught.value))


def test_rag_ask_exits_2_with_one_line(damaged: Path, capsys, monkeypatch) -> None:
    from rag.cli import main

    for name in [n for n in os.environ if n.startswith("RAG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", "")
    monkeypatch.setenv("RAG_CONFIG", str(EMPTY_CONFIG))
    code = main(["ask", "Quelle est la capitale de la France ?", "--index-dir", str(damaged)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1
    _one_line_with_the_fix(err)


def test_rag_index_refuses_instead_of_up_to_date_and_rebuild_repairs(
    damaged: Path, corpus: Path, capsys
) -> None:
    config = _config(damaged)
    before = sorted((p.relative_to(damaged), p.stat().st_size) for p in damaged.rglob("*") if p.is_file())
    assert run_index([corpus], config) == 2
    captured = capsys.readouterr()
    assert "Up to date" not in captured.out
    _one_line_with_the_fix(captured.err)
    after = sorted((p.relative_to(damaged), p.stat().st_size) for p in damaged.rglob("*") if p.is_file())
    assert [name for name, _ in after if name.name != "LOCK"] == [
        name for name, _ in before if name.name != "LOCK"
    ]
    assert run_index([corpus], config, rebuild=True) == 0
    store = IndexStore.open(damaged, load_model=False)
    assert {d.doc_id for d in store.documents()} == {"paris.txt", "lyon.txt"}
    assert store.search_lexical("capitale de la France", 3)
