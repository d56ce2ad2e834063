"""Fuzz tests (hypothesis): hostile bytes in every supported file type, and damage anywhere in an index.

The promise checked: a clear error or a result, never a traceback, never a changed previous index.
- loaders: any bytes under any supported extension give a `Document` whose sections lie inside its text,
  or a `LoadError` (the reason shown next to the file name) — never another exception;
- a build over a folder holding such a file keeps every other document and reports the bad one;
- index opening: a generation damaged at random (bytes overwritten, cut, inserted, a file deleted, a JSON
  number changed) opens into a store that searches without error, or raises an `index.errors` error
  naming the fix; opening writes nothing, and `rag index` on it either works or refuses leaving it as is.

Bounded in time: a fixed number of examples per test (derandomized, so CI runs the same cases each time),
no example database written into the repository, and a timeout per test.
"""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from index.build import build_index
from index.config import IndexConfig
from index.errors import IndexError_
from index.loaders import SUPPORTED_EXTENSIONS, LoadError, load_document
from index.store import IndexStore, current_generation

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PARIS = "Paris est la capitale de la France. La tour Eiffel y fut construite en 1889."
LYON = "Lyon est connue pour sa gastronomie. Les bouchons lyonnais servent des quenelles."


def _pdf_bytes() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.multi_cell(0, 10, "Paris est la capitale de la France.")
    return bytes(pdf.output())


def _docx_bytes() -> bytes:
    import docx

    document = docx.Document()
    document.add_heading("Rapport", level=1)
    document.add_paragraph("Paris est la capitale de la France.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


SAMPLES = {
    ".txt": PARIS.encode("utf-8"),
    ".md": f"# Titre\n\n## Partie\n\n{PARIS}\n\n```\ncode\n```\n".encode(),
    ".markdown": f"Titre\n=====\n\n{LYON}\n".encode(),
    ".html": f"<html><head><title>T</title></head><body><h1>Titre</h1><p>{PARIS}</p></body></html>".encode(),
    ".htm": f"<h2>Lyon</h2><table><tr><td>{LYON}</td></tr></table>".encode(),
    ".pdf": _pdf_bytes(),
    ".docx": _docx_bytes(),
}
assert set(SAMPLES) == set(SUPPORTED_EXTENSIONS)


@st.composite
def mutated(draw: st.DrawFn, sample: bytes) -> bytes:
    """A valid file damaged a little (most parsers' interesting paths), or arbitrary bytes."""
    kind = draw(st.sampled_from(["overwrite", "truncate", "insert", "random"]))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    position = draw(st.integers(0, max(0, len(sample) - 1)))
    if kind == "truncate":
        return sample[:position]
    chunk = draw(st.binary(min_size=1, max_size=64))
    if kind == "insert":
        return sample[:position] + chunk + sample[position:]
    return sample[:position] + chunk + sample[position + len(chunk) :]


@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[str, bytes]:
    extension = draw(st.sampled_from(sorted(SAMPLES)))
    return extension, draw(mutated(SAMPLES[extension]))


@pytest.mark.timeout(240)
@FUZZ
@given(hostile_file())
def test_loaders_give_a_document_or_a_load_error(case: tuple[str, bytes]) -> None:
    extension, data = case
    try:
        document = load_document(Path(f"fuzz{extension}"), data=data)
    except LoadError as exc:
        assert str(exc)
        return
    assert isinstance(document.text, str) and document.text.strip()
    for section in document.sections:
        assert 0 <= section.start <= section.end <= len(document.text)


def _config(index_dir: Path) -> IndexConfig:
    return IndexConfig(index_dir=index_dir, embedding_model="", show_progress=False)


def _files(index_dir: Path) -> dict[str, str]:
    """Every file of the index but the writer's LOCK, by content hash: what must not change."""
    return {
        str(p.relative_to(index_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(index_dir.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != "LOCK"
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("docs")
    (folder / "paris.txt").write_text(PARIS, encoding="utf-8")
    (folder / "lyon.md").write_text(f"# Lyon\n\n{LYON}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def built_indexes(tmp_path_factory, corpus: Path, tiny_embedder) -> dict[str, Path]:
    lexical = tmp_path_factory.mktemp("lexical") / "index"
    build_index([corpus], _config(lexical), embedder=None, progress=False)
    hybrid = tmp_path_factory.mktemp("hybrid") / "index"
    build_index([corpus], _config(hybrid), embedder=tiny_embedder, progress=False)
    return {"lexical": lexical, "hybrid": hybrid}


@pytest.mark.timeout(240)
@settings(FUZZ, max_examples=15)
@given(hostile_file())
def test_a_build_with_a_hostile_file_keeps_the_others(tmp_path_factory, corpus: Path, case) -> None:
    extension, data = case
    work = tmp_path_factory.mktemp("hostile")
    docs = work / "docs"
    shutil.copytree(corpus, docs)
    config = _config(work / "index")
    build_index([docs], config, embedder=None, progress=False)
    (docs / f"hostile{extension}").write_bytes(data)
    report = build_index([docs], config, embedder=None, progress=False)
    ids = {d.doc_id for d in IndexStore.open(config.index_dir).documents()}
    assert {"paris.txt", "lyon.md"} <= ids
    assert f"hostile{extension}" in ids or any("hostile" in path for path, _ in report.skipped)


GENERATION_FILES = [
    "manifest.json",
    "documents.jsonl",
    "chunks.jsonl",
    "bm25.json",
    "bm25.npz",
    "vectors.faiss",
]


@st.composite
def index_damage(draw: st.DrawFn) -> tuple[str, str, str, int, bytes]:
    kind = draw(st.sampled_from(["lexical", "hybrid"]))
    name = draw(st.sampled_from([*GENERATION_FILES, "CURRENT"]))
    how = draw(st.sampled_from(["overwrite", "truncate", "insert", "delete", "json-number"]))
    return kind, name, how, draw(st.integers(0, 10_000)), draw(st.binary(min_size=1, max_size=32))


def _damage(index_dir: Path, name: str, how: str, position: int, chunk: bytes) -> None:
    generation = current_generation(index_dir)
    assert generation is not None
    path = index_dir / name if name == "CURRENT" else generation / name
    if not path.exists():
        return
    if how == "delete":
        path.unlink()
        return
    data = path.read_bytes()
    position = position % (len(data) + 1)
    if how == "json-number":  # a plausible edit: one number of a JSON file changed
        text = data.decode("utf-8", errors="replace")
        digits = [i for i, ch in enumerate(text) if ch.isdigit()]
        if digits:
            i = digits[position % len(digits)]
            replacement = str(int.from_bytes(chunk[:4], "little") - 2**31)
            path.write_text(text[:i] + replacement + text[i + 1 :], encoding="utf-8")
        return
    if how == "truncate":
        path.write_bytes(data[:position])
    elif how == "insert":
        path.write_bytes(data[:position] + chunk + data[position:])
    else:
        path.write_bytes(data[:position] + chunk + data[position + len(chunk) :])


@pytest.mark.timeout(300)
@settings(FUZZ, max_examples=60)
@given(index_damage())
def test_a_damaged_index_opens_or_says_so_and_is_never_changed(
    tmp_path_factory, built_indexes: dict[str, Path], corpus: Path, damage
) -> None:
    kind, name, how, position, chunk = damage
    index_dir = tmp_path_factory.mktemp("damaged") / "index"
    shutil.copytree(built_indexes[kind], index_dir)
    _damage(index_dir, name, how, position, chunk)
    before = _files(index_dir)
    try:
        store = IndexStore.open(index_dir, load_model=False)
    except IndexError_ as exc:
        assert "rag index" in str(exc), str(exc)
    else:
        store.search_lexical("capitale de la France", 5)
        store.documents()
        for chunk_row in store.chunks:
            assert chunk_row.text == store.document_text(chunk_row.doc_id)[chunk_row.start : chunk_row.end]
    assert _files(index_dir) == before  # opening writes nothing
    try:
        build_index([corpus], _config(index_dir), embedder=None, progress=False)
    except IndexError_ as exc:
        assert "rag index" in str(exc), str(exc)
        assert _files(index_dir) == before  # a refused update leaves the index as it was
