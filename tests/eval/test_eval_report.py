"""A tiny run (golden set, no PIAF) with a scripted assistant: report files, determinism, compare."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from eval_fakes import fake_corpus_factory

from eval.compare import compare_text, report_differences
from eval.datasets import load_golden
from eval.report import write_report
from eval.runner import BM25, LANGCHAIN, OURS, EvalConfig, deterministic_view, run_eval
from rag.settings import load_settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def golden():
    return load_golden(sorted((REPO / "eval" / "golden").glob("seed_qa*.jsonl")), REPO / "seeds")


def _run(golden, tmp_path: Path, label: str) -> dict:
    config = EvalConfig(label=label, progress=False, cache_dir=tmp_path / "cache")
    return run_eval([golden], load_settings(environ={}), config, corpus_factory=fake_corpus_factory)


def test_report_has_json_markdown_and_plots(golden, tmp_path: Path) -> None:
    results = _run(golden, tmp_path, "tiny")
    written = write_report(results, tmp_path / "run")
    for name in ("results.json", "summary.md", "recall_at_k.png", "latency.png", "golden_outcomes.png"):
        path = tmp_path / "run" / name
        assert path.is_file() and path.stat().st_size > 200, name
    assert (tmp_path / "run" / "recall_at_k.png").read_bytes()[:4] == b"\x89PNG"
    data = json.loads(written["results"].read_text(encoding="utf-8"))
    assert len(data["questions"]) == len(golden.items)
    assert set(data["summary"]["golden"]["retrieval"]) == {OURS, BM25, LANGCHAIN}
    assert data["versions"]["python"] and "git" in data and data["settings"]["llm"]["backend"] == "extractive"
    summary = written["summary"].read_text(encoding="utf-8")
    assert "ours / BM25 whitespace" in summary and "naive LangChain" in summary
    assert "| seed-001 |" in summary and "extra-033" in summary
    assert "correct abstentions" in summary and "median ms" in summary


def test_scores_match_a_hand_check_of_one_question(golden, tmp_path: Path) -> None:
    results = _run(golden, tmp_path, "one")
    record = next(r for r in results["questions"] if r["id"] == "seed-013")
    # The fake ranks lines by shared words; the Nadella line holds the whole quote, so its rank is
    # the rank of that line, and the fake cites exactly its top line.
    ours = record["systems"][OURS]
    line_start = golden.documents["openai-altman.fr.txt"].index("L’empreinte laissée")
    rank = [top[1] for top in ours["top"]].index(line_start) + 1
    assert ours["ranks"] == [rank] and ours["rr"] == pytest.approx(1 / rank)
    assert record["scores"]["citation_precision"] == (1.0 if rank == 1 else 0.0)
    unanswerable = [r for r in results["questions"] if not r["answerable"]]
    assert all(r["scores"]["abstention_correct"] == r["scores"]["abstained"] for r in unanswerable)


def test_two_runs_give_the_same_numbers(golden, tmp_path: Path) -> None:
    first, second = _run(golden, tmp_path, "a"), _run(golden, tmp_path, "b")
    assert deterministic_view(first) == deterministic_view(second)
    assert first["questions"][0]["timings"]  # timings exist but are left out of the comparison
    assert report_differences(first, second) == []


def test_identity_check_names_every_change_but_timings(golden, tmp_path: Path) -> None:
    before = _run(golden, tmp_path, "before")
    after = copy.deepcopy(before)
    after["label"], after["wall_seconds"] = "after", before["wall_seconds"] + 5.0
    after["questions"][0]["timings"]["ask_wall"] = 99.0
    after["datasets"]["golden"]["latency"]["wall_seconds"] = 99.0
    after["notes"] = [_longer(note) for note in before["notes"]]
    assert report_differences(before, after) == []
    after["questions"][3]["answer"] += " encore"
    later = next(i for i, r in enumerate(after["questions"]) if i > 3 and r["answerable"])
    ranks = after["questions"][later]["systems"][OURS]["ranks"]
    ranks.append(9)
    after["summary"]["golden"]["answers"]["f1"] = 0.0
    found = report_differences(before, after)
    assert len(found) == 3
    assert found[0].startswith("results.summary.golden.answers.f1: ")
    assert found[1].startswith("results.questions[3].answer: ") and "encore" in found[1]
    assert (
        found[2]
        == f"results.questions[{later}].systems.ours.ranks: {len(ranks) - 1} items in A, {len(ranks)} in B"
    )


def _longer(note: str) -> str:
    """The same note with every duration changed: `12.3s` -> `112.3s`."""
    return re.sub(r"(\d+(?:\.\d+)?)s\b", lambda m: f"1{m.group(1)}s", note)


def test_compare_prints_deltas_and_question_changes(golden, tmp_path: Path) -> None:
    before = _run(golden, tmp_path, "before")
    after = copy.deepcopy(before)
    after["label"] = "after"
    answerable = next(r for r in after["questions"] if r["answerable"] and r["systems"][OURS]["hit@5"] == 1.0)
    answerable["systems"][OURS]["hit@5"] = 0.0
    unanswerable = next(r for r in after["questions"] if not r["answerable"])
    unanswerable["scores"]["abstention_correct"] = not unanswerable["scores"]["abstention_correct"]
    after["summary"]["golden"]["retrieval"][OURS]["recall@5"] = 0.25
    before["summary"]["golden"]["retrieval"][OURS]["recall@5"] = 0.5
    text = compare_text(before, after)
    assert "recall@5             0.500 -> 0.250 (-0.250)" in text
    assert f"golden/{answerable['id']}" in text and "evidence lost from top 5" in text
    assert f"golden/{unanswerable['id']}" in text
    direction = "now right" if unanswerable["scores"]["abstention_correct"] else "now wrong"
    assert f"abstention {direction}" in text
