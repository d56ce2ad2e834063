"""The question's tokens in the hybrid gate: does a content token with no good match flag an unanswerable
question? Dev only (PIAF test is never read).

    .venv/bin/python -m eval.benchmarks.token_gate --model /root/.cache/rag-fr/e5-small [--cache DIR]

A near miss ("Combien pesait Edward Dickinson Baker ?" when his height is given) finds passages about its
topic, close by meaning and by words; what it lacks is the asked detail, so one content word of the question
("pesait") should find no good match among the passages' tokens. The hybrid gate reads the best window
cosine and the lexical coverage only; the mean MaxSim of the best window was tried as a third term (no gain:
`eval.benchmarks.late_interaction` (b)). This script tries the low end of the per-token matches instead,
over the content tokens of the question as asked (`rag.evidence.question_token_weights`, "content"): for each
token its best cosine with any retrieved window's tokens (the passages), or with one window's, then the
minimum, an IDF-weighted low quantile, or the IDF share of tokens below a cosine. Each is swept as a third
term of the shipped gate's line (`late_interaction.sweep_gate`: the shipped cross-lingual offset and type
penalty, every slope and intercept, gates abstaining wrongly no more often than the lexical gate in any
language; mean balanced accuracy, held-out articles and near misses weighing equally), and the golden
questions the best gate gets wrong are listed (a check, never tuned on).

Data: `calibrate_hybrid`'s records (its feature cache; the index must keep token vectors).

First run (eleventh session, e5-small stand-in, `--cache` a copy of ~/.cache/rag-fr/bench-reader): no gain.
Without a token term the sweep's best mean balanced accuracy is 0.813; with one, 0.814-0.822 at the smallest
weights (0.02-0.05, where the term barely moves the line: within the ~0.015 standard error), falling with
every larger weight (one window's IDF q25: 0.822 at 0.05, 0.810 at 0.2, 0.772 at 1; the share of IDF mass
below a cosine: 0.809 at best). The near misses' tokens match as well as the answerable questions' (the
passages' minimum: answerable 0.802, near misses 0.780, held-out articles 0.762): a paraphrase of the asked
detail is found close by in a passage about the topic.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

from eval.benchmarks.calibrate_hybrid import LANGUAGES, calibration_records, model_benchmark_parser

#: Weights of the token term in the gate's line, tried.
TERM_WEIGHTS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0)


def weighted_quantile(values: np.ndarray, weights: np.ndarray, share: float) -> float:
    """The lowest value whose weight, with every lower value's, reaches `share` of the total."""
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, share * cumulative[-1])])


def token_matrix(evidence, tokens: str = "content") -> tuple[np.ndarray, np.ndarray] | None:
    """(windows x selected tokens best cosines, the tokens' IDF) over the statement windows; None without
    token cosines."""
    from rag.evidence import question_token_weights

    question = evidence.question_tokens
    rows = [w.token_cosines for w in evidence.statements if w.token_cosines is not None]
    if question is None or not rows or not question.offsets:
        return None
    weights = question_token_weights(
        question.offsets, question.idf, evidence.question, question.query, evidence.language, tokens=tokens
    )
    keep = [i for i, weight in enumerate(weights) if weight > 0]
    matrix = np.asarray(rows, dtype=np.float32)[:, keep]
    return matrix, np.asarray(question.idf, dtype=np.float32)[keep]


def terms_of(evidence) -> dict[str, float]:
    """Every candidate term of one question (higher: more likely answerable)."""
    found = token_matrix(evidence)
    if found is None:
        return {}
    matrix, idf = found
    passages = matrix.max(0)  # each token's best match in any window
    terms = {
        "passages: min": float(passages.min()),
        "passages: IDF q10": weighted_quantile(passages, idf, 0.1),
        "passages: IDF q25": weighted_quantile(passages, idf, 0.25),
        "passages: IDF mean": float(idf @ passages / idf.sum()),
        "one window: best min": float(matrix.min(1).max()),
        "one window: best IDF q25": max(weighted_quantile(row, idf, 0.25) for row in matrix),
    }
    for threshold in (0.8, 0.85, 0.9):
        terms[f"passages: -IDF share below {threshold}"] = -float(idf @ (passages < threshold) / idf.sum())
    return terms


def golden_wrong(records: list[dict], extra: np.ndarray, weight: float, rates: dict) -> list[str]:
    """Golden questions the gate (shipped reading + weight x term, the sweep's slope and intercept) gets wrong."""
    wrong = []
    for r, value in zip(records, extra, strict=True):
        if r["set"] != "golden":
            continue
        score = rates["slope"] * r["lexical"] + r["gate_cosine"] + weight * value
        if (score >= rates["intercept"]) != r["answerable"]:
            wrong.append(r["question"])
    return wrong


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=400, help="As calibrate_hybrid's.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from eval.benchmarks.late_interaction import show_rates, sweep_gate
    from rag.abstention import evidence_check, gate_for

    started = time.perf_counter()
    records = calibration_records(args)
    print()
    shipped = gate_for(args.model)
    if shipped is None:
        raise SystemExit(f"No calibrated gate for {args.model}: nothing to extend.")
    for r in records:
        r["lexical"] = evidence_check(r["evidence"]).score
        check = evidence_check(r["evidence"], gate=shipped)
        r["gate_cosine"] = check.cosine if check.cosine is not None else 0.0
        r["terms"] = terms_of(r["evidence"])
    missing = sum(not r["terms"] for r in records)
    if missing == len(records):
        raise SystemExit("No token cosines in the features: the index keeps no token vectors.")
    lexical_false = {}
    for lang in LANGUAGES:
        subset = [r for r in records if r["set"] == lang and r["answerable"]]
        lexical_false[lang] = statistics.mean(evidence_check(r["evidence"]).abstain for r in subset)
    print(f"{len(records)} questions ({missing} without token cosines: the term reads 0)")
    base = sweep_gate(records, np.zeros(len(records)), (0.0,), lexical_false)
    print(f"  shipped reading, no token term: {base[0]:.3f}: {show_rates(base[2])}")
    names = sorted({name for r in records for name in r["terms"]}, key=list(records[0]["terms"]).index)
    for name in names:
        extra = np.array([r["terms"].get(name, 0.0) for r in records])
        means = {
            kind: _mean([value for r, value in zip(records, extra, strict=True) if r["kind"] == kind])
            for kind in ("piaf", "held-out", "near")
        }
        accuracy, weight, rates = sweep_gate(records, extra, TERM_WEIGHTS, lexical_false)
        print(
            f"  + {weight} x {name}: {accuracy:.3f}: {show_rates(rates)}; mean term: answerable dev "
            f"{means['piaf']}, held-out {means['held-out']}, near misses {means['near']}; "
            f"golden wrong {golden_wrong(records, extra, weight, rates)}",
            flush=True,
        )
        each = [sweep_gate(records, extra, (w,), lexical_false)[0] for w in TERM_WEIGHTS]
        print("    by weight: " + ", ".join(f"{w} {a:.3f}" for w, a in zip(TERM_WEIGHTS, each, strict=True)))
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


def _mean(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f}" if values else "-"


if __name__ == "__main__":
    raise SystemExit(main())
