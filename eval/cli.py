"""`rag eval`: run the evaluation suite and write a report folder, or compare two runs.

rag/cli.py adds these arguments to its `eval` subcommand (`add_arguments`) and calls `run(args, settings)`.
Also runnable alone: `python -m eval.cli [options]`.

Default: the golden files of the settings (eval/golden/seed_qa.jsonl plus seed_qa_extra.jsonl beside it)
over seeds/, and the PIAF dev split over all 1,518 PIAF paragraphs, with the configured backend
(extractive by default) and both baselines, then the prompt-injection set (eval/adversarial.py). `--judge [BACKEND]` adds LLM-judged faithfulness and
correctness (eval/judge.py); it needs an LLM backend and is off by default.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from eval.datasets import DatasetError, load_golden, load_piaf, piaf_available, piaf_missing_message

EXTRA_GOLDEN = "seed_qa_extra.jsonl"
DEFAULT_DOCS = Path("seeds")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--golden",
        action="append",
        metavar="FILE",
        help="golden JSONL file (repeatable). Default: settings eval.golden and seed_qa_extra.jsonl beside it.",
    )
    parser.add_argument(
        "--docs", metavar="DIR", help="folder of the documents the golden quotes refer to (default seeds/)"
    )
    parser.add_argument(
        "--piaf",
        choices=["dev", "test", "none"],
        default="dev",
        help="PIAF split to run (default dev; tune on dev only)",
    )
    parser.add_argument("--piaf-dir", metavar="DIR", help="PIAF folder (default: settings eval.piaf_dir)")
    parser.add_argument("--piaf-limit", type=int, metavar="N", help="at most N PIAF questions, spread evenly")
    parser.add_argument("--backend", help="answer backend (default: settings llm.backend)")
    parser.add_argument(
        "--top-k", type=int, metavar="K", help="passages shown to the generator (default: settings)"
    )
    parser.add_argument("--out", metavar="DIR", help="report folder (default runs/<timestamp>-<label>)")
    parser.add_argument("--label", default=None, help="name of the run, used in the folder name")
    parser.add_argument("--no-baselines", action="store_true", help="skip the BM25 and LangChain baselines")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--no-adversarial",
        action="store_true",
        help="skip the prompt-injection set (eval/adversarial: injected and ordinary documents, fr/en/de)",
    )
    parser.add_argument(
        "--judge",
        nargs="?",
        const="",
        default=None,
        metavar="BACKEND",
        help="also score answers with an LLM judge (faithfulness, correctness; see eval/judge.py): "
        "ollama, openai or hf (default without a value: settings llm.backend). Off by default.",
    )
    parser.add_argument(
        "--from-feedback",
        nargs="?",
        const="",
        default=None,
        metavar="OUT",
        help="write the chat's thumbs-down answers as golden-set candidates to review (JSONL; default "
        "runs/feedback-candidates.jsonl) and stop",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="print metric deltas and per-question changes A -> B",
    )
    parser.add_argument(
        "--identical",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        help="exit 0 when two runs' reports are identical timings aside (answers, scores, ranks, settings); "
        "else list the differences and exit 1",
    )


def _golden_files(args: argparse.Namespace, settings: Any) -> list[Path]:
    if args.golden:
        return [Path(p) for p in args.golden]
    default = Path(settings.eval.golden)
    files = [default]
    extra = default.parent / EXTRA_GOLDEN
    if extra.is_file() and extra != default:
        files.append(extra)
    return files


def _label(args: argparse.Namespace, settings: Any) -> str:
    if args.label:
        return args.label
    backend = args.backend or settings.llm.backend
    return f"{backend}-piaf{args.piaf}" if args.piaf != "none" else backend


def run(args: argparse.Namespace, settings: Any) -> int:
    """Run the suite described by `args`; print where the report is; return the exit code."""
    from eval.compare import CompareError, compare_runs, identical_text

    if getattr(args, "identical", None):
        try:
            same, verdict = identical_text(*args.identical)
        except CompareError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(verdict)
        return 0 if same else 1

    if args.compare:
        try:
            print(compare_runs(*args.compare))
        except CompareError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return 0

    if getattr(args, "from_feedback", None) is not None:
        from eval.feedback import FeedbackError, write_candidates

        out = Path(args.from_feedback or Path(settings.eval.runs_dir) / "feedback-candidates.jsonl")
        try:
            count = write_candidates(Path(settings.ui.database), out)
        except FeedbackError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not count:
            print(
                f"No thumbs-down answer in {settings.ui.database} yet (the chat's 👎 records them): nothing "
                f"to review, {out} is empty."
            )
            return 0
        print(f"{count} thumbs-down answer{'s' if count != 1 else ''} written to {out} for review.")
        return 0

    from eval.judge import JudgeError, make_judge
    from eval.report import run_folder, write_report
    from eval.runner import EvalConfig, run_eval

    judge = None
    if getattr(args, "judge", None) is not None:
        try:  # checked before indexing anything: a judge that cannot work is a usage error
            judge = make_judge(settings, args.judge or None)
        except JudgeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    runs_dir = Path(settings.eval.runs_dir)
    cache_dir = runs_dir / ".cache"
    # Checked before anything runs: a report that cannot be written must not be found out at the end.
    reason = _cannot_write(cache_dir)
    if reason:
        print(
            f"error: Cannot write in the runs folder {runs_dir} ({reason}); the evaluation keeps its indexes "
            "and reports there. Set eval.runs_dir (RAG_EVAL__RUNS_DIR) to a folder you can write to.",
            file=sys.stderr,
        )
        return 2
    reason = _cannot_write(Path(args.out)) if args.out else None
    if reason:
        print(
            f"error: Cannot write the report folder {args.out} ({reason}). Give a folder you can write to "
            "with --out DIR.",
            file=sys.stderr,
        )
        return 2
    datasets = []
    try:
        if args.docs and not args.golden:
            raise DatasetError(
                f"--docs {args.docs} needs --golden FILE: questions whose evidence quotes come from those documents."
            )
        datasets.append(
            load_golden(_golden_files(args, settings), Path(args.docs) if args.docs else DEFAULT_DOCS)
        )
        if args.piaf != "none":
            piaf_dir = Path(args.piaf_dir) if args.piaf_dir else Path(settings.eval.piaf_dir)
            if piaf_available(piaf_dir):
                datasets.append(load_piaf(piaf_dir, args.piaf, cache_dir / "piaf-docs", args.piaf_limit))
            else:
                print(piaf_missing_message(piaf_dir), file=sys.stderr)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    config = EvalConfig(
        label=_label(args, settings),
        top_k=args.top_k,
        backend=args.backend,
        baselines=not args.no_baselines,
        progress=not args.no_progress,
        cache_dir=cache_dir,
        judge=judge.name if judge else None,
    )
    folder = Path(args.out) if args.out else run_folder(runs_dir, config.label)
    results = run_eval(datasets, settings, config)  # builds the judge again from config.judge (cheap)
    if not getattr(args, "no_adversarial", False):
        from eval.adversarial import run_adversarial

        results["adversarial"] = run_adversarial(settings, cache_dir, backend=args.backend)
    written = write_report(results, folder)
    print(headline(results))
    print(f"Report: {written['summary']}")
    return 0


def _cannot_write(folder: Path) -> str | None:
    """Why `folder` cannot be created or written to, or None when it can (it is created)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not os.access(folder, os.W_OK | os.X_OK):
        return "not writable"
    return None


def headline(results: dict[str, Any]) -> str:
    """A few lines for the terminal: recall@5 and MRR of ours and the baselines, abstention, wall time."""
    lines = []
    for name, summary in results["summary"].items():
        parts = []
        for system, stats in summary["retrieval"].items():
            parts.append(f"{system} R@5 {stats.get('recall@5') or 0:.3f} MRR {stats.get('mrr') or 0:.3f}")
        answers, abstention = summary["answers"], summary["abstention"]
        extra = f"F1 {answers['f1']:.3f}" if answers.get("f1") is not None else ""
        if abstention.get("correct_abstention") is not None:
            extra += f", correct abstentions {abstention['correct_abstention']:.2f}"
        if abstention.get("false_abstention") is not None:
            extra += f", false abstentions {abstention['false_abstention']:.2f}"
        judged = summary.get("judge")
        if judged:
            extra += f", judge faithfulness {_num(judged['faithfulness'])} correctness {_num(judged['correctness'])}"
        lines.append(
            f"{name} ({summary['questions']} q): " + " | ".join(parts) + (f" | {extra}" if extra else "")
        )
    if results.get("adversarial"):
        from eval.adversarial import adversarial_headline

        lines.append(adversarial_headline(results["adversarial"]))
    if (results.get("judge") or {}).get("stopped"):
        lines.append(f"LLM judge stopped early: {results['judge']['stopped']}")
    cpu = results.get("cpu_seconds")
    lines.append(
        f"Wall time: {results['wall_seconds']:.1f} s" + (f" (CPU {cpu:.1f} s)" if cpu is not None else "")
    )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> int:
    from rag import load_settings

    parser = argparse.ArgumentParser(prog="python -m eval.cli", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML settings file")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, load_settings(args.config))


if __name__ == "__main__":
    raise SystemExit(main())
