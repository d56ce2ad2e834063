"""`python -m eval.benchmarks.answer_trace`: why a golden answer cites what it cites."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval.benchmarks import answer_trace


def test_trace_prints_the_cited_passages_and_the_scored_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", "")  # lexical mode: no model, no cosines
    assert answer_trace.main(["seed-001", "--cache", str(tmp_path), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "mode lexical" in out and "seed-001 (fr)" in out
    holding = re.search(r"passage \[(\d)\] \d+-\d+ holds « 80 milliards de dollars", out)
    assert holding, out
    # The answer quotes the evidence window (marked *> : evidence, quoted) and cites its passage.
    assert f"cites [{holding.group(1)}], citation precision 1.00" in out
    assert re.search(rf"\*>\s+1\. \[{holding.group(1)}\] \+[\d.]+ \| native", out)
    assert "cosine" not in out.split("citation precision")[1]  # no model: no cosine, no MaxSim
    listed = re.findall(r"^  [* ][> ]\s+(\d+)\. ", out, flags=re.M)
    assert listed[:2] == ["1", "2"] and all(int(n) > 2 for n in listed[2:])  # the 2 best, then evidence only
    with pytest.raises(SystemExit):
        answer_trace.main(["no-such-id", "--cache", str(tmp_path)])
    assert "unknown id(s) no-such-id" in capsys.readouterr().err
