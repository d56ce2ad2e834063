"""The suite against the real product (lexical mode, extractive backend): report, determinism, compare."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from eval import cli
from eval.runner import deterministic_view
from rag.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.slow
def test_two_real_runs_write_reports_with_the_same_numbers(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(REPO)
    settings = load_settings(
        environ={},
        overrides={"index.embedding_model": "", "index.show_progress": False, "eval.runs_dir": str(tmp_path)},
    )
    golden = str(REPO / "eval" / "golden" / "seed_qa.jsonl")
    common = ["--golden", golden, "--docs", "seeds", "--piaf", "none", "--no-baselines", "--no-progress"]
    assert cli.run(_args(*common, "--out", str(tmp_path / "a")), settings) == 0
    assert cli.run(_args(*common, "--out", str(tmp_path / "b")), settings) == 0
    for name in ("results.json", "summary.md", "recall_at_k.png", "latency.png", "golden_outcomes.png"):
        assert (tmp_path / "a" / name).is_file(), name
    first = json.loads((tmp_path / "a" / "results.json").read_text(encoding="utf-8"))
    second = json.loads((tmp_path / "b" / "results.json").read_text(encoding="utf-8"))
    assert first["datasets"]["golden"]["status"]["retrieval_mode"] == "lexical"
    assert len(first["questions"]) == 26
    assert deterministic_view(first) == deterministic_view(second)
    # the product must never cite when it abstains
    assert first["summary"]["golden"]["abstention"]["cites_when_abstaining"] == 0
    capsys.readouterr()
    assert cli.run(_args("--compare", str(tmp_path / "a"), str(tmp_path / "b")), settings) == 0
    out = capsys.readouterr().out
    assert "Better in B: 0 question(s)" in out and "Worse in B: 0 question(s)" in out
    assert cli.run(_args("--identical", str(tmp_path / "a"), str(tmp_path / "b")), settings) == 0
    assert "Identical timings aside: 26 questions" in capsys.readouterr().out
    assert cli.run(_args("--compare", str(tmp_path / "a"), str(tmp_path / "nowhere")), settings) == 2
