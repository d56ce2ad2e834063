"""`import rag` stays light: no torch, FAISS, sentence-transformers or gradio until a feature needs them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "faiss", "sentence_transformers", "transformers", "gradio")


def _modules_after(code: str) -> set[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_import_rag_is_light() -> None:
    loaded = _modules_after("import rag\nrag.Answer, rag.load_settings, rag.Settings, rag.RagError")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_public_api_modules_are_light_until_used() -> None:
    loaded = _modules_after(
        "from rag import open_assistant, build_assistant, Assistant, Passage\n"
        "import rag.chain, rag.retrieval, rag.citations, rag.abstention, rag.cli, rag.backends.extractive"
    )
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_unknown_name_is_an_attribute_error() -> None:
    import pytest

    import rag

    with pytest.raises(AttributeError):
        rag.does_not_exist  # noqa: B018
    assert "open_assistant" in dir(rag)
