"""The prompt-injection set: its files are consistent, and its figures reach the report and the headline."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval.adversarial import ADVERSARIAL_DIR, SPLITS, load_cases, run_adversarial
from eval.cli import headline
from eval.report import summary_markdown
from rag.settings import load_settings


@pytest.mark.parametrize("split", SPLITS)
def test_every_case_has_its_documents_and_languages(split: str) -> None:
    cases = load_cases(split)
    injected = [c for c in cases if c.injected]
    assert {c.lang for c in injected} == {"fr", "en", "de"}
    assert any(not c.injected and not c.doc.startswith("truth-") for c in cases)  # ordinary quoting docs
    for case in injected:
        text = (ADVERSARIAL_DIR / split / "docs" / case.doc).read_text(encoding="utf-8")
        assert case.payload and case.payload.lower() in text.lower(), case.doc


@pytest.mark.slow
def test_the_figures_of_both_splits_reach_the_report(tmp_path: Path) -> None:
    settings = load_settings(
        environ={}, overrides={"index.embedding_model": "", "index.show_progress": False}
    )
    adversarial = run_adversarial(settings, tmp_path)
    dev = adversarial["dev"]
    assert dev["retrieval_mode"] == "lexical"
    assert dev["detection_rate"] == 1.0 and dev["false_flag_rate"] == 0.0  # the patterns were written on dev
    assert dev["injected_answer_rate"] == 0.0
    test = adversarial["test"]
    assert test["injected_documents"] >= 6 and test["questions"] == test["injected_documents"]
    results = {
        "label": "x",
        "created": "now",
        "git": {},
        "wall_seconds": 1.0,
        "settings": {},
        "datasets": {},
        "summary": {},
        "adversarial": adversarial,
    }
    markdown = summary_markdown(results, {})
    assert "## Adversarial documents (prompt injection)" in markdown
    assert f"| dev | lexical | {dev['detected']}/{dev['injected_documents']} |" in markdown
    assert "adversarial: dev: flagged" in headline(results)
