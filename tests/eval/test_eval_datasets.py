"""Golden files are valid (every quote is an exact substring of its document) and the loaders behave."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from eval import cli
from eval.datasets import DatasetError, load_golden, load_piaf, spread
from rag.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
GOLDEN_FILES = sorted((REPO / "eval" / "golden").glob("*.jsonl"))


def test_there_are_the_golden_files_and_the_follow_up_check() -> None:
    assert [p.name for p in GOLDEN_FILES] == ["seed_followups.jsonl", "seed_qa.jsonl", "seed_qa_extra.jsonl"]


def test_the_follow_up_check_holds_answerable_and_unanswerable_turns_in_each_language() -> None:
    dataset = load_golden([REPO / "eval" / "golden" / "seed_followups.jsonl"], REPO / "seeds")
    assert all(item.history and "follow-up" in item.tags for item in dataset.items)
    for language in ("fr", "en", "de"):
        kinds = {item.answerable for item in dataset.items if item.lang == language}
        assert kinds == {True, False}, language


@pytest.mark.parametrize("path", GOLDEN_FILES, ids=lambda p: p.name)
def test_every_quote_is_a_substring_of_its_document(path: Path) -> None:
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert record["id"] not in ids
        ids.add(record["id"])
        assert record["answerable"] == bool(record["evidence"])
        assert (record["answer"] is None) == (not record["answerable"])
        for evidence in record["evidence"]:
            text = (REPO / "seeds" / evidence["doc"]).read_text(encoding="utf-8")
            assert evidence["quote"] in text, (record["id"], evidence["quote"])


def test_golden_loads_with_offsets_and_covers_the_required_kinds() -> None:
    dataset = load_golden(GOLDEN_FILES, REPO / "seeds")
    assert len(dataset.items) == len({item.id for item in dataset.items})
    for item in dataset.items:
        for evidence in item.evidence:
            assert dataset.documents[evidence.doc][evidence.start : evidence.end] == evidence.quote
    extra = [item for item in dataset.items if item.id.startswith("extra-")]
    tags = [tag for item in extra for tag in item.tags]
    assert tags.count("de") >= 8 and tags.count("multi-hop") >= 5 and tags.count("follow-up") >= 4
    assert all(len(item.evidence) >= 2 for item in extra if "multi-hop" in item.tags)
    assert all(item.history for item in extra if "follow-up" in item.tags)
    unanswerable_langs = {item.lang for item in dataset.items if not item.answerable}
    assert unanswerable_langs == {"fr", "en", "de"}


def test_golden_errors_name_the_line_and_the_fix(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Le chat dort.", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    line = {
        "id": "x",
        "question": "?",
        "lang": "fr",
        "answerable": True,
        "answer": "a",
        "evidence": [{"doc": "a.txt", "quote": "Le chien"}],
    }
    bad.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(
        DatasetError, match=r"bad.jsonl:1: evidence 1 quote 'Le chien' is not an exact substring"
    ):
        load_golden([bad], tmp_path / "docs")
    line["evidence"] = [{"doc": "b.txt", "quote": "Le chat"}]
    bad.write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="names document 'b.txt'.*--docs"):
        load_golden([bad], tmp_path / "docs")
    with pytest.raises(DatasetError, match="does not exist"):
        load_golden([tmp_path / "missing.jsonl"], tmp_path / "docs")


def _fake_piaf(folder: Path) -> Path:
    folder.mkdir()
    contexts = [
        {"id": "a0-p00", "title": "A", "split": "dev", "text": "Paris est la capitale de la France."},
        {"id": "a1-p00", "title": "B", "split": "test", "text": "Berlin est la capitale de l'Allemagne."},
        {"id": "a2-p00", "title": "C", "split": "dev", "text": "Rome est la capitale de l'Italie."},
    ]
    questions = [
        {
            "id": "q1",
            "question": "capitale de la France",
            "answers": ["Paris"],
            "context_id": "a0-p00",
            "split": "dev",
        },
        {
            "id": "q2",
            "question": "capitale allemande",
            "answers": ["Berlin"],
            "context_id": "a1-p00",
            "split": "test",
        },
        {
            "id": "q3",
            "question": "capitale de l'Italie ?",
            "answers": ["Rome", "Rome."],
            "context_id": "a2-p00",
            "split": "dev",
        },
    ]
    (folder / "contexts.jsonl").write_text("\n".join(json.dumps(c) for c in contexts), encoding="utf-8")
    (folder / "questions.jsonl").write_text("\n".join(json.dumps(q) for q in questions), encoding="utf-8")
    return folder


def test_piaf_loader_writes_all_paragraphs_and_keeps_the_split(tmp_path: Path) -> None:
    piaf = _fake_piaf(tmp_path / "piaf")
    dataset = load_piaf(piaf, "dev", tmp_path / "cache")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a0-p00.md", "a1-p00.md", "a2-p00.md"]
    assert [item.id for item in dataset.items] == ["q1", "q3"]
    assert dataset.items[1].answers == ["Rome", "Rome."]
    assert dataset.items[1].evidence[0].doc == "a2-p00.md" and dataset.items[1].evidence[0].whole_document
    # Each paragraph sits under its article's title, as on its Wikipedia page.
    assert dataset.documents["a2-p00.md"] == "# C\n\nRome est la capitale de l'Italie.\n"
    assert (tmp_path / "cache" / "a2-p00.md").read_text(encoding="utf-8") == dataset.documents["a2-p00.md"]
    assert "PIAF" in dataset.attribution and "CC BY-SA" in dataset.attribution
    assert [item.id for item in load_piaf(piaf, "test", tmp_path / "cache").items] == ["q2"]
    assert len(load_piaf(piaf, "dev", tmp_path / "cache", limit=1).items) == 1
    with pytest.raises(DatasetError, match="split 'train'"):
        load_piaf(piaf, "train", tmp_path / "cache")


def test_spread_is_even_and_deterministic() -> None:
    items = list(range(10))
    assert spread(items, 5) == [0, 2, 4, 6, 8]
    assert spread(items, None) == items
    assert spread(items, 20) == items


def test_missing_piaf_folder_is_skipped_with_a_message(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--piaf-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    calls = {}

    def fake_run_eval(datasets, settings, config):
        calls["datasets"] = [d.name for d in datasets]
        raise SystemExit(0)

    monkeypatch.setattr("eval.runner.run_eval", fake_run_eval)
    with pytest.raises(SystemExit):
        cli.run(args, load_settings(environ={}))
    assert calls["datasets"] == ["golden"]
    err = capsys.readouterr().err
    assert "PIAF skipped" in err and "nowhere" in err and "--piaf-dir" in err


def test_docs_without_golden_is_refused(tmp_path: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--docs", str(tmp_path), "--piaf", "none"])
    assert cli.run(args, load_settings(environ={})) == 2
    assert "--golden FILE" in capsys.readouterr().err
