"""What ARCHITECTURE.md says about the direction of imports, checked on the source (no import is run).

- `index` never imports `rag`, `ui` or `eval`;
- `rag` never imports `ui` or `eval` (except `rag/cli.py`, the `rag` command, which dispatches to them);
- `ui` and `eval` reach `rag` only through its public API: `rag` itself (names in `rag.__all__`) and
  `rag.backends` (the generator interface an LLM judge uses). `eval/benchmarks/` scripts measure single
  stages and may import them: they are exempt.
- one module defines the citation-marker pattern (`rag.markers`), one the sentence splitter
  (`index.sentences`), one the word lists (`index.words`: stop, question, meta and function words).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import rag

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_RAG_MODULES = {"rag", "rag.backends"}


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, imported names, line) of every import statement of a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def _files(package: str, exempt: str | None = None) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if exempt is None or exempt not in f.relative_to(ROOT).parts]


def _top(module: str) -> str:
    return module.split(".")[0]


def test_index_imports_nothing_above_it() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files("index")
        for module, _, line in _imports(path)
        if _top(module) in {"rag", "ui", "eval"}
    ]
    assert not bad, bad


def test_rag_imports_neither_ui_nor_eval() -> None:
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in _files("rag")
        if path != ROOT / "rag" / "cli.py"
        for module, _, line in _imports(path)
        if _top(module) in {"ui", "eval"}
    ]
    assert not bad, bad


def test_ui_and_eval_use_only_rags_public_api() -> None:
    bad = []
    for path in [*_files("ui"), *_files("eval", exempt="benchmarks")]:
        for module, names, line in _imports(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if _top(module) != "rag":
                continue
            if module not in PUBLIC_RAG_MODULES:
                bad.append(f"{where} imports the internal module {module}")
            elif module == "rag":
                bad += [f"{where} imports rag.{n}, not in rag.__all__" for n in names if n not in rag.__all__]
    assert not bad, bad


def test_one_module_defines_the_marker_pattern() -> None:
    # How a marker pattern is spelled in source: `\[\d`, `\[(\d` or `\[\s*\d`.
    shape = re.compile(r"\\\[\(?(?:\\s\*)?\\d")
    assert shape.search(r"re.compile(r'\[(\d+)\]')") and shape.search(r"'\[\s*\d+'")
    definers = [
        str(path.relative_to(ROOT))
        for package in ("rag", "ui", "eval", "index")
        for path in _files(package)
        if shape.search(path.read_text(encoding="utf-8"))
    ]
    assert definers == [], f"marker patterns outside rag.markers: {definers}"


def test_one_sentence_splitter() -> None:
    definers = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in ("rag", "ui", "eval", "index")
        for path in _files(package)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and "split_sentences" in node.name
    ]
    assert definers == ["index/sentences.py:" + definers[0].split(":")[1]], definers


def test_one_source_of_word_lists() -> None:
    """Stop words, question words, meta and function words are defined in `index.words` only (benchmark
    scripts that build data files aside); every other module imports them."""
    name = re.compile(r"STOP_?WORDS|QUESTION_WORDS|META_WORDS|FUNCTION_WORDS", re.IGNORECASE)
    definers = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for package in ("rag", "ui", "eval", "index")
        for path in _files(package, exempt="benchmarks")
        for node in ast.parse(path.read_text(encoding="utf-8")).body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name) and name.search(target.id)
    ]
    assert definers and all(d.startswith("index/words.py:") for d in definers), definers
