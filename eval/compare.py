"""Compare two evaluation runs: metric deltas, then question by question what got better or worse.

`rag eval --compare RUN_A RUN_B` (each a run folder or its results.json). B is the new run: a positive delta
means B is higher. A question "got better" when its outcome improved: its evidence is now found in the top 5,
its abstention is now the right call, or its token F1 rose by more than 0.1.

`rag eval --identical RUN_A RUN_B` is the check behind "behaviour unchanged": it exits 0 when the two reports
are identical timings aside (every answer, score, rank, setting and note), else lists the differences.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from eval.runner import OURS

F1_STEP = 0.1
_RETRIEVAL = ("hit@1", "hit@5", "recall@5", "recall@10", "mrr", "ndcg@10")
_ANSWERS = ("f1", "em", "contained", "citation_precision", "citation_recall")
_ABSTENTION = ("correct_abstention", "false_abstention")


class CompareError(ValueError):
    pass


def load_results(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    if not file.is_file():
        raise CompareError(f"No results.json at {path}. Give a run folder under runs/ or its results.json.")
    return json.loads(file.read_text(encoding="utf-8"))


def _delta(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return f"{'–' if a is None else f'{a:.3f}'} -> {'–' if b is None else f'{b:.3f}'}"
    sign = "+" if b - a >= 0 else ""
    return f"{a:.3f} -> {b:.3f} ({sign}{b - a:.3f})"


def metric_deltas(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    lines = []
    for name in [n for n in b["summary"] if n in a["summary"]]:
        sa, sb = a["summary"][name], b["summary"][name]
        lines.append(f"== {name} ({sa['questions']} -> {sb['questions']} questions)")
        for system in sb["retrieval"]:
            if system not in sa["retrieval"]:
                continue
            for key in _RETRIEVAL:
                lines.append(
                    f"  {system:<18} {key:<20} {_delta(sa['retrieval'][system].get(key), sb['retrieval'][system].get(key))}"
                )
        for key in _ANSWERS:
            lines.append(
                f"  {'answers':<18} {key:<20} {_delta(sa['answers'].get(key), sb['answers'].get(key))}"
            )
        for key in _ABSTENTION:
            lines.append(
                f"  {'abstention':<18} {key:<20} {_delta(sa['abstention'].get(key), sb['abstention'].get(key))}"
            )
    return lines


def _outcome(record: dict[str, Any]) -> dict[str, Any]:
    scores = record["scores"]
    ours = record["systems"].get(OURS, {})
    return {
        "found@5": (ours.get("hit@5") or 0.0) >= 1.0 if record["answerable"] else None,
        "right_call": scores["abstention_correct"],
        "f1": scores.get("f1"),
    }


def question_changes(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(better, worse): one line per question whose outcome changed between A and B."""
    before = {(r["dataset"], r["id"]): r for r in a["questions"]}
    better, worse = [], []
    for record in b["questions"]:
        old = before.get((record["dataset"], record["id"]))
        if old is None:
            continue
        oa, ob = _outcome(old), _outcome(record)
        up, down = [], []
        if oa["found@5"] is not None and oa["found@5"] != ob["found@5"]:
            (up if ob["found@5"] else down).append(
                "evidence in top 5" if ob["found@5"] else "evidence lost from top 5"
            )
        if oa["right_call"] != ob["right_call"]:
            (up if ob["right_call"] else down).append(
                "abstention now right" if ob["right_call"] else "abstention now wrong"
            )
        if oa["f1"] is not None and ob["f1"] is not None and abs(ob["f1"] - oa["f1"]) > F1_STEP:
            (up if ob["f1"] > oa["f1"] else down).append(f"F1 {oa['f1']:.2f} -> {ob['f1']:.2f}")
        label = f"{record['dataset']}/{record['id']}: {record['question'][:70]}"
        if up:
            better.append(f"  + {label} [{'; '.join(up)}]")
        if down:
            worse.append(f"  - {label} [{'; '.join(down)}]")
    return better, worse


def compare_text(a: dict[str, Any], b: dict[str, Any], max_questions: int = 50) -> str:
    lines = [f"A: {a.get('label')} ({a.get('created')})", f"B: {b.get('label')} ({b.get('created')})", ""]
    lines += metric_deltas(a, b)
    better, worse = question_changes(a, b)
    lines += ["", f"Better in B: {len(better)} question(s)"] + better[:max_questions]
    if len(better) > max_questions:
        lines.append(f"  ... and {len(better) - max_questions} more")
    lines += [f"Worse in B: {len(worse)} question(s)"] + worse[:max_questions]
    if len(worse) > max_questions:
        lines.append(f"  ... and {len(worse) - max_questions} more")
    return "\n".join(lines)


def compare_runs(run_a: str | Path, run_b: str | Path) -> str:
    return compare_text(load_results(run_a), load_results(run_b))


# --- "identical timings aside" -----------------------------------------------------------------------

# Keys whose values are times, dates, names or paths of the run itself: they differ between two runs of
# the same code on the same inputs, so the identity check leaves them out wherever they appear.
_RUN_SPECIFIC = frozenset(
    {
        "timings",
        "latency",
        "created",
        "label",
        "out",
        "index_dir",  # where the run cached its index (settings, compared, decide what is in it)
        "git",
        "wall_seconds",
        "index_seconds",
        "baseline_build_seconds",
        "question_seconds",
        "cpu_seconds",
        "index_cpu_seconds",
        "baseline_build_cpu_seconds",
        "question_cpu_seconds",
    }
)
# Notes may quote a duration ("built ... in 12.3s"): the duration is blanked, the rest compared.
_DURATION = re.compile(r"\d+(?:\.\d+)?\s?(?:ms|s)\b")


def _differences(a: Any, b: Any, where: str, found: list[str], limit: int) -> None:
    if len(found) >= limit:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [k for k in a if k not in _RUN_SPECIFIC] + [k for k in b if k not in a]:
            if key in _RUN_SPECIFIC:
                continue
            if key not in b:
                found.append(f"{where}.{key}: only in A")
            elif key not in a:
                found.append(f"{where}.{key}: only in B")
            else:
                _differences(a[key], b[key], f"{where}.{key}", found, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            found.append(f"{where}: {len(a)} items in A, {len(b)} in B")
        for i, (item_a, item_b) in enumerate(zip(a, b, strict=False)):
            _differences(item_a, item_b, f"{where}[{i}]", found, limit)
        return
    if isinstance(a, str) and isinstance(b, str):
        a, b = _DURATION.sub("<time>", a), _DURATION.sub("<time>", b)
        if a != b:  # long answers: show where they part
            first = next(
                (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
            )
            start = max(0, first - 40)
            found.append(f"{where}: …{a[start : first + 60]!r} -> …{b[start : first + 60]!r}")
        return
    if a != b:
        found.append(f"{where}: {str(a)[:120]!r} -> {str(b)[:120]!r}")


def report_differences(a: dict[str, Any], b: dict[str, Any], limit: int = 200) -> list[str]:
    """Every difference between two runs' results other than timings, dates, labels and paths (at most
    `limit`): summaries, per-question answers, scores and ranks, settings, versions, notes. Empty means
    the reports are identical timings aside."""
    found: list[str] = []
    _differences(a, b, "results", found, limit)
    return found


def identical_text(run_a: str | Path, run_b: str | Path) -> tuple[bool, str]:
    """(identical?, a printable verdict) for `rag eval --identical RUN_A RUN_B`."""
    a, b = load_results(run_a), load_results(run_b)
    found = report_differences(a, b)
    questions = len(b.get("questions", []))
    if not found:
        return (
            True,
            f"Identical timings aside: {questions} questions, same summaries, answers, scores and ranks.",
        )
    lines = [f"{len(found)}{'+' if len(found) >= 200 else ''} difference(s) besides timings:"]
    return False, "\n".join(lines + [f"  {line}" for line in found])
