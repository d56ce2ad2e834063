"""Write an evaluation run to a folder: results.json, summary.md and PNG plots.

The folder is `runs/<UTC timestamp>-<label>/`. `summary.md` is meant to be read at a glance: one table
per dataset with ours against the baselines (and ours/baseline ratios), answer and abstention scores,
latency per stage, and a per-question outcome table for the golden set. Plots use matplotlib's Agg
backend (no display needed).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eval.runner import BM25, CURVE_KS, LANGCHAIN, OURS

SYSTEM_LABELS = {
    OURS: "ours",
    BM25: "BM25 whitespace (same chunks)",
    LANGCHAIN: "naive LangChain (1000/200, FAISS, top-4)",
}


def run_folder(runs_dir: Path, label: str, now: datetime | None = None) -> Path:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-") or "eval"
    folder = Path(runs_dir) / f"{stamp}-{safe}"
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = Path(runs_dir) / f"{stamp}-{safe}-{suffix}"
    return folder


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(ours: float | None, other: float | None) -> str:
    if ours is None or other is None:
        return "–"
    if other == 0:
        return "∞" if ours > 0 else "–"
    return f"{ours / other:.2f}×"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def retrieval_table(summary: dict[str, Any]) -> list[str]:
    systems = summary["retrieval"]
    keys = ["hit@1", "hit@4", "hit@5", "recall@5", "recall@10", "mrr", "ndcg@10"]
    rows = []
    for name, stats in systems.items():
        rows.append(
            [SYSTEM_LABELS.get(name, name)]
            + [_fmt(stats.get(k)) for k in keys]
            + [_fmt(stats.get("context_passages"), 1), _fmt(stats.get("context_chars"), 0)]
        )
    lines = _table(["system", *keys, "passages shown", "chars shown"], rows)
    ours = systems.get(OURS, {})
    ratio_rows = []
    for name, stats in systems.items():
        if name == OURS:
            continue
        ratio_rows.append(
            [f"ours / {SYSTEM_LABELS.get(name, name)}"] + [_ratio(ours.get(k), stats.get(k)) for k in keys]
        )
    if ratio_rows:
        lines += ["", *_table(["ratio", *keys], ratio_rows)]
    return lines


def answer_table(summary: dict[str, Any]) -> list[str]:
    answers, abstention = summary["answers"], summary["abstention"]
    rows = [
        ["token F1 (answerable)", _fmt(answers.get("f1"))],
        ["exact match", _fmt(answers.get("em"))],
        ["gold span contained in answer", _fmt(answers.get("contained"))],
        ["evidence in passages shown to the generator", _fmt(answers.get("context_recall"))],
        ["citation precision", _fmt(answers.get("citation_precision"))],
        ["citation recall", _fmt(answers.get("citation_recall"))],
        ["answers (not abstained) with ≥1 citation", _fmt(answers.get("answered_with_citation"))],
        [
            f"correct abstentions ({abstention['unanswerable']} unanswerable)",
            _fmt(abstention.get("correct_abstention")),
        ],
        [
            f"false abstentions ({abstention['answerable']} answerable)",
            _fmt(abstention.get("false_abstention")),
        ],
        ["abstentions that still cite (must be 0)", _fmt(abstention.get("cites_when_abstaining"))],
    ]
    return _table(["ours: answers", "value"], rows)


def judge_table(judged: dict[str, Any], info: dict[str, Any] | None) -> list[str]:
    """LLM-judged scores (`rag eval --judge`); only written for judged runs."""
    rows = [
        [
            f"faithfulness to the passages ({judged['judged_faithfulness']} judged)",
            _fmt(judged["faithfulness"]),
        ],
        [f"correctness vs reference ({judged['judged_correctness']} judged)", _fmt(judged["correctness"])],
        ["unparsable judge replies (not in the means)", str(judged["unparsable"])],
    ]
    lines = _table([f"LLM judge ({(info or {}).get('backend', '?')}): answered questions", "value"], rows)
    if info and info.get("stopped"):
        lines += ["", f"**Judging stopped early** (backend error): {info['stopped']}"]
    return lines


def latency_table(latency: dict[str, Any]) -> list[str]:
    rows = [
        [stage, _fmt(v["median_ms"], 1), _fmt(v["p95_ms"], 1), str(v["count"])]
        for stage, v in latency["stages"].items()
    ]
    lines = _table(["stage", "median ms", "p95 ms", "n"], rows)
    lines.append("")
    lines.append(
        f"Throughput: {_fmt(latency['questions_per_second'], 2)} questions/s "
        f"({_fmt(latency['wall_seconds'], 1)} s for the questions, baselines included)."
    )
    return lines


def tag_table(tags: dict[str, Any]) -> list[str]:
    rows = []
    for tag, summary in tags.items():
        ours = summary["retrieval"].get(OURS, {})
        rows.append(
            [
                tag,
                str(summary["questions"]),
                _fmt(ours.get("recall@5")),
                _fmt(summary["answers"].get("f1")),
                _fmt(summary["answers"].get("citation_precision")),
                _fmt(summary["abstention"].get("correct_abstention")),
                _fmt(summary["abstention"].get("false_abstention")),
            ]
        )
    return _table(["tag", "n", "recall@5", "F1", "cit. precision", "correct abst.", "false abst."], rows)


def outcome_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per golden question: what happened, in a few symbols."""
    rows = []
    for r in records:
        scores = r["scores"]
        ours = r["systems"].get(OURS, {})
        rows.append(
            {
                "id": r["id"],
                "tags": ",".join(t for t in r["tags"] if t not in {"fr", "en", "de"}),
                "lang": r["lang"],
                "recall@5": ours.get("recall@5") if r["answerable"] else None,
                "f1": scores.get("f1"),
                "cit_p": scores.get("citation_precision"),
                "cit_r": scores.get("citation_recall"),
                "abstention_ok": scores["abstention_correct"],
                "abstained": scores["abstained"],
            }
        )
    return rows


def outcome_table(records: list[dict[str, Any]]) -> list[str]:
    rows = []
    for row in outcome_rows(records):
        rows.append(
            [
                row["id"],
                row["lang"],
                row["tags"] or "",
                _fmt(row["recall@5"], 2),
                _fmt(row["f1"], 2),
                _fmt(row["cit_p"], 2),
                _fmt(row["cit_r"], 2),
                "abstained" if row["abstained"] else "answered",
                "✓" if row["abstention_ok"] else "✗",
            ]
        )
    return _table(["id", "lang", "tags", "recall@5", "F1", "cit. P", "cit. R", "outcome", "right call"], rows)


def summary_markdown(results: dict[str, Any], plots: dict[str, str]) -> str:
    lines = [f"# Evaluation run `{results['label']}`", ""]
    git = results.get("git", {})
    lines.append(
        f"Created {results['created']} · commit {git.get('commit') or 'none'}{' (dirty)' if git.get('dirty') else ''}"
        f" · wall time {results['wall_seconds']:.1f} s · backend {results['settings'].get('llm', {}).get('backend')}"
    )
    lines.append("")
    for name, info in results["datasets"].items():
        summary = results["summary"][name]
        status = info.get("status", {})
        lines += [
            f"## {name}: {info['questions']} questions over {info['documents']} documents",
            "",
            f"Retrieval mode {status.get('retrieval_mode')} · embedding model {status.get('embedding_model')} · "
            f"{status.get('chunks')} chunks · index {info['index_seconds']:.1f} s"
            + (f" (CPU {info['index_cpu_seconds']:.1f} s)." if "index_cpu_seconds" in info else "."),
        ]
        if info.get("attribution"):
            lines += ["", f"Data: {info['attribution']}"]
        lines += [
            "",
            "Retrieval (answerable questions; evidence covered by the top-k passages, by character offsets):",
            "",
        ]
        lines += retrieval_table(summary)
        lines += ["", *answer_table(summary), ""]
        if summary.get("judge"):
            lines += [*judge_table(summary["judge"], results.get("judge")), ""]
        lines += ["Latency:", "", *latency_table(info["latency"]), ""]
        if name in results.get("tags", {}):
            lines += ["By tag:", "", *tag_table(results["tags"][name]), ""]
            records = [r for r in results["questions"] if r["dataset"] == name]
            lines += ["Per question:", "", *outcome_table(records), ""]
    if results.get("adversarial"):
        from eval.adversarial import adversarial_table

        lines += [
            "## Adversarial documents (prompt injection)",
            "",
            "Injected documents (fr/en/de) dictate a false answer to a question whose true answer is in another "
            "document; ordinary documents merely quote instructions (manuals, a support script, articles). "
            "dev was used to write the detector's patterns (index/instructions.py); test is held out. "
            "Injected answer: the answer repeats the injected claim or cites the injected document. The last "
            "column answers the same questions with the extractive backend over the same passages, flags ignored.",
            "",
            *adversarial_table(results["adversarial"]),
            "",
        ]
    if plots:
        lines += ["## Plots", ""] + [f"- {title}: `{path}`" for title, path in plots.items()] + [""]
    if results.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in results["notes"]] + [""]
    lines += [
        "## How to read this",
        "",
        "- hit@k: at least one evidence quote inside the top-k passages; recall@k: share of the quotes; "
        "mrr: 1/rank of the first; ndcg@10 over quotes. PIAF: the gold paragraph among the top-k.",
        "- Ours shows `passages shown` passages to the generator (top-k after merging neighbours); the "
        "LangChain baseline shows 4 chunks of ≤1000 characters. Compare `chars shown` too.",
        "- Baselines get the raw question (no follow-up rewriting); ours retrieves with the standalone question.",
        "- Ratios are ours / baseline (>1: ours better).",
        *(
            [
                "- LLM judge (0..1, answered questions only): faithfulness = every claim supported by the "
                "passages shown; correctness = agrees with the reference answer. See eval/judge.py."
            ]
            if results.get("judge")
            else []
        ),
        "- Latency: `langchain-naive.search` is the FAISS search only (its query vectors are embedded in one batch "
        "before the loop, to keep the run short); per-query embedding cost is measured by "
        "`python -m eval.benchmarks.latency`. `answer.*` stages come from `Answer.timings`.",
        "",
    ]
    return "\n".join(lines)


# --- plots -------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recall_curves(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    names = list(results["summary"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        for system, stats in results["summary"][name]["retrieval"].items():
            values = [stats.get(f"recall@{k}") for k in CURVE_KS]
            if any(v is None for v in values):
                continue
            ax.plot(CURVE_KS, values, marker="o", markersize=3, label=SYSTEM_LABELS.get(system, system))
        ax.set_title(f"{name}: recall@k")
        ax.set_xlabel("k (passages)")
        ax.set_ylim(0, 1.02)
        ax.set_xticks(CURVE_KS)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("evidence recall")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_golden_outcomes(records: list[dict[str, Any]], path: Path) -> None:
    plt = _pyplot()
    rows = outcome_rows(records)
    columns = ["recall@5", "f1", "cit_p", "cit_r", "abstention_ok"]
    import numpy as np

    grid = np.full((len(rows), len(columns)), np.nan)
    for i, row in enumerate(rows):
        for j, column in enumerate(columns):
            value = row[column]
            if value is not None:
                grid[i, j] = float(value)
    height = max(3.0, 0.22 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(6.0, height))
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#dddddd")
    ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(columns)), ["recall@5", "F1", "cit. P", "cit. R", "right call"], fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{r['id']} {r['tags']}"[:28] for r in rows], fontsize=6)
    ax.set_title("golden set: per-question outcome (grey: not applicable)", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_latency(results: dict[str, Any], path: Path) -> None:
    plt = _pyplot()
    names = list(results["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        records = [r for r in results["questions"] if r["dataset"] == name]
        stages = sorted({s for r in records for s in r["timings"]})
        data = [[r["timings"][s] * 1000 for r in records if s in r["timings"]] for s in stages]
        ax.boxplot(data, orientation="horizontal", showfliers=False)
        ax.set_yticks(range(1, len(stages) + 1), stages, fontsize=7)
        ax.set_xscale("log")
        ax.set_xlabel("ms (log)")
        ax.set_title(f"{name}: latency per stage", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(results: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write results.json, the plots and summary.md into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = {"results": folder / "results.json"}
    plots: dict[str, str] = {}
    if results["summary"]:
        plot_recall_curves(results, folder / "recall_at_k.png")
        plots["recall@k, ours vs baselines"] = "recall_at_k.png"
        plot_latency(results, folder / "latency.png")
        plots["latency per stage"] = "latency.png"
    golden = [r for r in results["questions"] if r["dataset"] == "golden"]
    if golden:
        plot_golden_outcomes(golden, folder / "golden_outcomes.png")
        plots["golden per-question outcomes"] = "golden_outcomes.png"
    for name in plots.values():
        written[name] = folder / name
    written["results"].write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    written["summary"] = folder / "summary.md"
    written["summary"].write_text(summary_markdown(results, plots), encoding="utf-8")
    return written
