"""Question-level signals for the hybrid abstention gate, beyond the retrieved windows (an experiment of the
fifteenth session, issue 10): how far the question's best chunk and window stand above the WHOLE index's
(a per-question z-score of the best cosine), whether the dense and the lexical rankings agree on the best
chunk, and the gap between the 1st and 2nd chunk on each signal. Each is swept as a third term of the
shipped gate's line over `calibrate_hybrid`'s records (PIAF dev with honest unanswerables, never test).

    .venv/bin/python -m eval.benchmarks.gate_signals --model /root/.cache/rag-fr/e5-small --cache C

The signals are collected once (the question embedded, every ranking over the kept rows of the calibration's
index, `HeldOut`) and cached beside the features (`gate-signals-<model>-<key>-<depth>.json.gz`).
"""

from __future__ import annotations

import gzip
import json
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks.calibrate_hybrid import (
    LANGUAGES,
    HeldOut,
    abstention_rates,
    calibration_records,
    feature_key,
    hybrid_settings,
    model_benchmark_parser,
    open_hybrid,
    questions_to_ask,
    setting_overrides,
)

RANK_DEPTH = 100  # candidates of each ranking read for the agreement signals
NEAR_LINE = 0.02  # questions this close to the shipped gate's line: what a third term would have to decide


def collect(args, records: list[dict]) -> dict[str, dict]:
    from eval.benchmarks.answer_figures import SEEDS, write_piaf_corpus
    from eval.benchmarks.calibrate_abstention import held_out
    from eval.benchmarks.calibrate_hybrid import prepared

    contexts = write_piaf_corpus(args.piaf_dir, args.cache / "piaf-corpus")
    excluded = {c["id"] for c in contexts if c["split"] == "dev" and held_out(c["title"])}
    tag = Path(args.model).name or "model"
    overrides = setting_overrides(args)
    piaf = open_hybrid(args.cache / "piaf-corpus", args.cache / f"piaf-{tag}", args.model, overrides)
    seeds = open_hybrid(SEEDS, args.cache / f"seeds-{tag}", args.model, overrides)
    held = HeldOut(piaf.store, excluded)
    held.install(piaf)
    out: dict[str, dict] = {}
    started = time.perf_counter()
    for assistant, kept in ((piaf, np.asarray(held.kept)), (seeds, np.arange(len(seeds.store.chunks)))):
        store = assistant.store
        vectors = store.stored_vectors()[kept].astype(np.float32)
        table = store.stored_windows()
        kept_docs = sorted({store.document_row(store.chunks[i].doc_id) for i in kept})
        win_rows = np.concatenate([np.arange(table.bounds[d], table.bounds[d + 1]) for d in kept_docs])
        windows = table.vectors[win_rows].astype(np.float32)
        golden = assistant is seeds
        for r in records:
            if (r["set"] == "golden") != golden:
                continue
            state = prepared(assistant, r["question"], r.get("history")) if r.get("history") else None
            query = r["question"] if state is None else state["condensed"].standalone
            q = store.query_vector(query).astype(np.float32)
            chunk_cos = np.sort(vectors @ q)[::-1]
            win_cos = np.sort(windows @ q)[::-1]
            rankings = assistant.retriever.rankings(query, r["language"], RANK_DEPTH)
            lexical = rankings.get("lexical", [])
            dense = rankings.get("dense", [])
            sentence = rankings.get("sentence", [])
            lex_rank = {row: i for i, (row, _) in enumerate(lexical)}
            dense_rank = {row: i for i, (row, _) in enumerate(dense)}
            sent_rank = {row: i for i, (row, _) in enumerate(sentence)}
            lex_scores = np.array([s for _, s in lexical]) if lexical else np.zeros(1)
            out[key(r)] = {
                "chunk": _stats(chunk_cos),
                "window": _stats(win_cos),
                "lexical": _stats(lex_scores),
                "dense_top_in_lexical": lex_rank.get(dense[0][0], RANK_DEPTH) if dense else RANK_DEPTH,
                "lexical_top_in_dense": dense_rank.get(lexical[0][0], RANK_DEPTH) if lexical else RANK_DEPTH,
                "sentence_top_in_lexical": lex_rank.get(sentence[0][0], RANK_DEPTH)
                if sentence
                else RANK_DEPTH,
                "lexical_top_in_sentence": sent_rank.get(lexical[0][0], RANK_DEPTH)
                if lexical
                else RANK_DEPTH,
                "overlap5": len({row for row, _ in lexical[:5]} & {row for row, _ in dense[:5]}),
                "overlap10": len({row for row, _ in lexical[:10]} & {row for row, _ in dense[:10]}),
            }
        print(
            f"  signals of {'golden' if golden else 'PIAF'} ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return out


def auc(values: np.ndarray, labels: np.ndarray) -> float:
    """The chance that an answerable question's value exceeds an unanswerable one's (ties count half)."""
    positive, negative = values[labels], values[~labels]
    if not len(positive) or not len(negative):
        return float("nan")
    order = np.argsort(np.concatenate([positive, negative]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    pooled = np.concatenate([positive, negative])
    for value in np.unique(pooled):  # ties: their mean rank
        tied = pooled == value
        ranks[tied] = ranks[tied].mean()
    wins = ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2
    return float(wins / (len(positive) * len(negative)))


def signals_path(args) -> Path:
    """The signals' cache file: keyed like `calibrate_hybrid`'s features (model, questions, the code and the
    settings they are collected with), so a changed index or retrieval collects them again."""
    from eval.benchmarks.answer_figures import write_piaf_corpus
    from eval.benchmarks.calibrate_abstention import held_out

    contexts = write_piaf_corpus(args.piaf_dir, args.cache / "piaf-corpus")
    excluded = {c["id"] for c in contexts if c["split"] == "dev" and held_out(c["title"])}
    items = questions_to_ask(args.piaf_dir, excluded, args.per_class)
    tag = Path(args.model).name or "model"
    settings = hybrid_settings(args.cache / f"piaf-{tag}", args.model, setting_overrides(args))
    return args.cache / f"gate-signals-{tag}-{feature_key(tag, items, settings)}-{RANK_DEPTH}.json.gz"


def cached_signals(args, records: list[dict]) -> dict[str, dict]:
    path = signals_path(args)
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            signals = json.load(lines)
        if all(key(r) in signals for r in records):
            return signals
    except (OSError, EOFError, ValueError):
        pass
    signals = collect(args, records)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with gzip.open(partial, "wt", encoding="utf-8") as out:
        json.dump(signals, out)
    partial.replace(path)
    return signals


def _stats(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return {"best": 0.0, "second": 0.0, "mean": 0.0, "std": 1.0, "p99": 0.0, "p90": 0.0, "tenth": 0.0}
    pick = lambda i: float(values[min(i, values.size - 1)])  # noqa: E731
    return {
        "best": pick(0),
        "second": pick(1),
        "tenth": pick(9),
        "mean": float(values.mean()),
        "std": float(values.std()) or 1.0,
        "p99": float(np.quantile(values, 0.99)),
        "p90": float(np.quantile(values, 0.90)),
    }


def key(record: dict) -> str:
    return f"{record['set']}\t{record.get('id', '')}\t{record['question']}"


def derived(s: dict) -> dict[str, float]:
    """The candidate third terms of one question (higher: more answerable)."""
    c, w, lx = s["chunk"], s["window"], s["lexical"]
    return {
        "chunk z": (c["best"] - c["mean"]) / c["std"],
        "window z": (w["best"] - w["mean"]) / w["std"],
        "chunk best-mean": c["best"] - c["mean"],
        "window best-mean": w["best"] - w["mean"],
        "chunk best-p99": c["best"] - c["p99"],
        "window best-p99": w["best"] - w["p99"],
        "chunk best-p90": c["best"] - c["p90"],
        "window best-p90": w["best"] - w["p90"],
        "chunk gap12": c["best"] - c["second"],
        "window gap12": w["best"] - w["second"],
        "chunk best-10th": c["best"] - c["tenth"],
        "lexical gap12 rel": (lx["best"] - lx["second"]) / max(lx["best"], 1e-9),
        "lexical z": (lx["best"] - lx["mean"]) / lx["std"],
        "agree dense→lex": -np.log1p(s["dense_top_in_lexical"]),
        "agree lex→dense": -np.log1p(s["lexical_top_in_dense"]),
        "agree both": -np.log1p(s["dense_top_in_lexical"]) - np.log1p(s["lexical_top_in_dense"]),
        "agree sent→lex": -np.log1p(s["sentence_top_in_lexical"]),
        "overlap5": float(s["overlap5"]),
        "overlap10": float(s["overlap10"]),
    }


def sweep(
    records: list[dict], base: np.ndarray, extra: np.ndarray, lexical_false: dict, weights: Sequence[float]
):
    """The best line of base + w * (extra - median(extra)) per weight: mean balanced accuracy (held-out and
    near misses weighing equally, as `sweep_gates`), rates at the best intercept whose false abstentions stay
    within the lexical gate's in every language, and the golden sets at that intercept."""
    dev = np.array([r["set"] in LANGUAGES for r in records])
    labels = np.array([r["answerable"] for r in records])
    sets = np.array([r["set"] for r in records])
    kinds = np.array([r["kind"] for r in records])
    centre = float(np.median(extra[dev]))
    results = []
    for weight in weights:
        values = base + weight * (extra - centre)
        best = None
        for intercept in np.unique(np.round(values[dev & labels], 4)):
            abstain = values < intercept
            rates = {}
            for lang in LANGUAGES:
                m = dev & (sets == lang)
                false = float(abstain[m & labels].mean())
                caught = float(np.mean([abstain[m & (kinds == k)].mean() for k in ("held-out", "near")]))
                rates[lang] = (false, caught)
            if any(rates[lang][0] > lexical_false[lang] for lang in LANGUAGES):
                continue
            balanced = statistics.mean((1 - f + c) / 2 for f, c in rates.values())
            g = ~dev
            golden_right = int(np.sum((values[g] >= intercept) == labels[g]))
            margins = values[g] - intercept
            worst = float(np.min(np.where(labels[g], margins, -margins)))
            if best is None or balanced > best[1] + 1e-12:
                best = (float(intercept), balanced, rates, golden_right, worst)
        results.append((weight, best))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=400)
    parser.add_argument("--span-floor", type=float, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.abstention import evidence_check, gate_for

    records = calibration_records(args)
    print()
    signals = cached_signals(args, records)
    gate = gate_for(args.model)
    lexical_false = {
        lang: abstention_rates(
            [r for r in records if r["set"] == lang], lambda r: evidence_check(r["evidence"]).abstain
        )[0]
        for lang in LANGUAGES
    }
    base = []
    for r in records:
        check = evidence_check(r["evidence"], gate=gate)
        base.append(gate.margin(check.score, check.cosine) if check.cosine is not None else -1.0)
    base = np.array(base)
    table = [derived(signals[key(r)]) for r in records]
    names = list(table[0])
    print(f"Shipped gate {gate}")
    labels = np.array([r["answerable"] for r in records])
    sets = np.array([r["set"] for r in records])
    kinds = np.array([r["kind"] for r in records])
    for name in names:
        extra = np.array([t[name] for t in table])
        means = {
            label: float(np.mean(extra[mask]))
            for label, mask in (
                ("answerable", (sets != "golden") & labels),
                ("held-out", kinds == "held-out"),
                ("near", kinds == "near"),
                ("golden ok", (sets == "golden") & labels),
                ("golden un", (sets == "golden") & ~labels),
            )
        }
        spread = float(np.std(extra[sets != "golden"])) or 1.0
        dev = sets != "golden"
        close = dev & (np.abs(base) < NEAR_LINE)
        print(
            f"{name}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
            + f" (sd {spread:.4f}); AUC dev {auc(extra[dev], labels[dev]):.3f}, within {NEAR_LINE} of the "
            f"line {auc(extra[close], labels[close]):.3f} ({close.sum()} q)"
        )
        weights = [0.0] + [f * 0.05 / spread for f in (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)]
        answerable = extra[(sets != "golden") & labels]
        # As a term of the line (w * signal), then one-sided: only a question whose signal falls below the
        # q-quantile of the answerable questions' loses (w * min(0, signal - that quantile)); a near miss
        # stands out as much as an answerable question (its topic is indexed), a held-out one less.
        forms = {"linear": extra}
        for q in (0.05, 0.1, 0.2, 0.35):
            cut = float(np.quantile(answerable, q))
            forms[f"below q{q:.2f} ({cut:.4f})"] = np.minimum(0.0, extra - cut)
        for form, values in forms.items():
            swept = weights if form == "linear" else weights[1:]
            for weight, best in sweep(records, base, values, lexical_false, swept):
                if best is None:
                    print(f"  {form} w {weight:.4f}: none")
                    continue
                intercept, balanced, rates, right, worst = best
                rate = "  ".join(f"{lang} {f:.3f}/{c:.3f}" for lang, (f, c) in rates.items())
                print(
                    f"  {form} w {weight:.4f}: bal {balanced:.4f} at {intercept:+.4f}  {rate}  "
                    f"golden {right}/59 worst {worst:+.4f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
