"""`python -m eval.benchmarks.fusion_trace`: each fusion signal's rank of a golden question's evidence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval.benchmarks import fusion_trace


def test_trace_prints_the_evidence_ranks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RAG_INDEX__EMBEDDING_MODEL", "")  # lexical mode: one ranking, no model
    args = ["seed-001", "--cache", str(tmp_path), "--top", "3", "--set", "candidates=20"]
    assert fusion_trace.main(args) == 0
    out = capsys.readouterr().out
    assert "mode lexical" in out and "'candidates': 20," in out
    assert "seed-001 (fr)" in out and "evidence « 80 milliards de dollars." in out
    # Lexical mode fuses nothing: the evidence chunk's fused rank and score are its BM25 ones.
    ranks = re.search(r"chunk (\d+): lexical (\d+) \(([\d.]+)\)  fused (\d+) \(([\d.]+)\)", out)
    assert ranks and ranks.group(2, 3) == ranks.group(4, 5)
    assert "3. chunk" in out and "4. chunk" not in out
    with pytest.raises(SystemExit):
        fusion_trace.main(["no-such-id", "--cache", str(tmp_path)])
    assert "unknown id(s) no-such-id" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="extra_forbidden"):
        fusion_trace.main(["seed-001", "--cache", str(tmp_path), "--set", "candidate=20"])
