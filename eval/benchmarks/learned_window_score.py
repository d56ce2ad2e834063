"""A learned window score for the extractive answer, judged against the shipped hand-tuned one (PIAF dev only).

    .venv/bin/python -m eval.benchmarks.learned_window_score --model /root/.cache/rag-fr/e5-small
        [--cache DIR] [--folds 5] [--l2 1.0]

The extractive answer quotes the window with the best `rag.evidence.ScoredWindow.answer_score`, a hand-tuned
sum (question words held, asked answer type, passage rank, cosine and MaxSim gaps to the best window; see
rag.evidence). Its constants sit on a plateau (docs/figures-history.md, "The extractive answer"). This asks
whether a score LEARNED from the same evidence does better: for every answerable PIAF dev question of
`eval.benchmarks.calibrate_hybrid` (400 French, 150 English and 150 German translated questions; its feature
cache, `--cache`), every window the answer may quote is a candidate with the features the answer computes
(below), labelled by whether it holds a gold span (`eval.metrics.answer_contained`).

Two linear scorers, each without intercept and rescaled so that a question word held in its own spelling
weighs 1 (the shipped score's unit, so the answer's ratios `ADD_RATIO_MAXSIM`, `CROSSLINGUAL_TIE_RATIO` keep
their meaning):
- pointwise: logistic regression on (window, label);
- listwise: a softmax over each question's windows (conditional logit), fitted to the gold windows, which is
  what the answer does with the score (it picks the best of one question's windows).

Judged by cross-validation BY ARTICLE (PIAF article id; a French question and its translations fall in the same
fold): fit on the other folds' questions, then the held-out fold's answers are composed by the product's own
`ExtractiveGenerator` (continuation, second quote, ties, all as shipped) with the learned score in place of
`answer_score`. Printed per language: gold span in the answer (shipped -> learned), questions gained / lost,
the paired difference's standard error, words per answer; then the weights fitted on every question.
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks.answer_figures import read_jsonl
from eval.benchmarks.calibrate_hybrid import (
    DATA,
    LANGUAGES,
    calibration_records,
    golden_citation_precision,
    golden_evidence,
    model_benchmark_parser,
)

#: The candidate features of a window (`features`). The shipped score is, in these terms: native 1,
#: cognate -(1 - COGNATE_CREDIT), translated TRANSLATION_CREDIT, typed TYPE_BONUS, rank -RANK_PRIOR,
#: cosine_gap_xl -COSINE_WEIGHT_CROSSLINGUAL, cosine_gap_same -COSINE_WEIGHT, maxsim_gap -MAXSIM_WEIGHT.
FEATURES = (
    "native",  # the question's words held in their own spelling (IDF-weighted share, `match_native`)
    "cognate",  # the part of it held through a word the glossary translates
    "translated",  # held only through a glossary translation
    "typed",  # holds the asked kind of answer (as `rag.abstention.with_asked_type` decides it)
    "rank",  # the passage's retrieval rank (0 = best)
    "cosine_gap_same",  # window cosine below the best window's, question and document in one language
    "cosine_gap_xl",  # the same across languages
    "maxsim_gap_same",  # MaxSim below the best window's, one language
    "maxsim_gap_xl",  # the same across languages
    "first",  # the passage's first window
    "position",  # the window's place in its passage (0 first .. 1 last)
    "log_words",  # log of the window's word count
    "score_ratio",  # the passage's fused retrieval score over the first passage's
    # How far below the best retrieved passage the window's passage is (`rag.backends.extractive.
    # retrieval_gaps`): the fused score (1 - score_ratio), and each retriever's own score (`Passage.scores`;
    # the fused score min-max normalises each retriever over its candidates, which magnifies small differences
    # on a small corpus): the dense cosine, the best sentence's cosine, the late-interaction MaxSim (absolute),
    # BM25 (as a share of the best).
    "retrieval_gap",
    "dense_gap",
    "sentence_gap",
    "late_gap",
    "lexical_gap",
)


def article_of(piaf_dir: Path) -> dict[tuple[str, str], str]:
    """(language, question) -> PIAF article id, for the French dev questions and their translations."""
    table = {}
    for q in read_jsonl(piaf_dir / "questions.jsonl"):
        if q["split"] == "dev":
            table[("fr", q["question"])] = q["context_id"].split("-")[0]
    for item in read_jsonl(DATA / "piaf_dev_xling.jsonl"):
        for lang in ("en", "de"):
            table[(lang, item[f"question_{lang}"])] = item["context_id"].split("-")[0]
    return table


def candidates(evidence) -> tuple:
    """(the evidence as `ExtractiveGenerator.select` reads it, the windows it may quote)."""
    from rag.abstention import with_asked_type
    from rag.evidence import with_discriminating_tokens

    evidence = with_asked_type(with_discriminating_tokens(evidence))
    return evidence, [
        w
        for w in evidence.statements
        if not w.passage.instruction_like and (w.coverage > 0 or w.cosine is not None)
    ]


def features(window, evidence) -> list[float]:
    """The values of `FEATURES` for one window of `evidence`."""
    from rag.backends.extractive import best_retrieval_scores, retrieval_gaps

    gaps = retrieval_gaps(window, best_retrieval_scores(evidence.windows))
    own = [w for w in evidence.windows if w.passage.number == window.passage.number]
    index = next((i for i, w in enumerate(own) if w.window.start == window.window.start), 0)
    top = max((w.passage.score for w in evidence.windows), default=0.0)
    xl = 1.0 if window.crosslingual else 0.0
    return [
        window.match_native,
        window.match_cognate,
        window.match_translated,
        1.0 if window.typed else 0.0,
        float(window.rank),
        (1 - xl) * window.cosine_gap,
        xl * window.cosine_gap,
        (1 - xl) * window.maxsim_gap,
        xl * window.maxsim_gap,
        1.0 if index == 0 else 0.0,
        index / max(1, len(own) - 1),
        math.log(1 + len(window.window.text.split())),
        window.passage.score / top if top > 0 else 0.0,
        *(gaps[name] for name in FEATURES[FEATURES.index("retrieval_gap") :]),
    ]


def fit_pointwise(rows: list[tuple[list[list[float]], list[int]]], l2: float):
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    x = np.array([f for feats, _ in rows for f in feats])
    y = np.array([label for _, labels in rows for label in labels])
    scale = x.std(axis=0) + 1e-9
    model = LogisticRegression(C=1.0 / l2, fit_intercept=True, max_iter=2000)
    model.fit(x / scale, y)
    return model.coef_[0] / scale


def fit_listwise(rows: list[tuple[list[list[float]], list[int]]], l2: float):
    """Conditional logit: maximise the log of the softmax mass on each question's gold windows."""
    import numpy as np
    from scipy.optimize import minimize

    groups = [(np.array(feats), np.array(labels, dtype=float)) for feats, labels in rows if any(labels)]
    stacked = np.vstack([x for x, _ in groups])
    scale = stacked.std(axis=0) + 1e-9
    groups = [(x / scale, y) for x, y in groups]

    def loss(w):
        total, grad = 0.5 * l2 * w @ w, l2 * w
        for x, y in groups:
            s = x @ w
            m = s.max()
            p = np.exp(s - m)
            z = p.sum()
            gold = p * y
            total -= math.log(gold.sum()) - math.log(z)
            grad = grad - (gold @ x) / gold.sum() + (p @ x) / z
        return total, grad

    result = minimize(loss, np.zeros(stacked.shape[1]), jac=True, method="L-BFGS-B")
    return result.x / scale


def in_shipped_units(weights) -> list[float]:
    """`weights` rescaled so that a question word held in its own spelling ("native") weighs 1."""
    unit = weights[0] if weights[0] > 1e-9 else 1.0
    return [float(w) / unit for w in weights]


def compare(rows, shipped, learned, shipped_best, learned_best) -> str:
    """Gold span shipped -> learned on `rows` (answers by record id), with gains, losses, the paired
    difference's standard error, words and quotes per answer, and the best window alone."""
    from eval.metrics import answer_contained
    from rag.markers import find_markers

    before = [answer_contained(shipped[id(r)], r["answers"]) for r in rows]
    after = [answer_contained(learned[id(r)], r["answers"]) for r in rows]
    diffs = [a - b for a, b in zip(after, before, strict=True)]
    se = statistics.pstdev(diffs) / math.sqrt(len(diffs))

    def mean(values) -> float:
        return statistics.mean(values)

    return (
        f"gold span {mean(before):.3f} -> {mean(after):.3f} (gained {diffs.count(1.0)}, lost "
        f"{diffs.count(-1.0)}, SE of the difference {se:.3f}), words "
        f"{mean(len(shipped[id(r)].split()) for r in rows):.1f} -> "
        f"{mean(len(learned[id(r)].split()) for r in rows):.1f}, quotes "
        f"{mean(sum(1 for _ in find_markers(shipped[id(r)])) for r in rows):.2f} -> "
        f"{mean(sum(1 for _ in find_markers(learned[id(r)])) for r in rows):.2f}; best window alone "
        f"{mean(shipped_best[id(r)] for r in rows):.3f} -> {mean(learned_best[id(r)] for r in rows):.3f}"
    )


def first_quote_weights(weights: Sequence[float], crosslingual: bool = True) -> dict[str, float]:
    """Fitted weights (`FEATURES` order) as `rag.backends.extractive.FIRST_QUOTE_WEIGHTS_CROSSLINGUAL` (the
    cross-language gaps' weights; the other features weigh nothing there), or as
    `FIRST_QUOTE_WEIGHTS_SAME_LANGUAGE` (`crosslingual` False: the same-language gaps' weights)."""
    named = dict(zip(FEATURES, weights, strict=True))
    suffix = "xl" if crosslingual else "same"
    return {
        "native": named["native"],
        "cognate": named["cognate"],
        "translated": named["translated"],
        "typed": named["typed"],
        "rank": named["rank"],
        "cosine_gap": named[f"cosine_gap_{suffix}"],
        "maxsim_gap": named[f"maxsim_gap_{suffix}"],
        **{name: named[name] for name in FEATURES[FEATURES.index("retrieval_gap") :]},
    }


def use_first_quote_weights(weights: Sequence[float] | None, languages: str | None) -> None:
    """Sets the product's first-quote weights to the fitted `weights` for `languages` (crosslingual, same,
    both: `--first-quote`), or turns both off (None)."""
    import rag.backends.extractive as extractive

    on = weights is not None
    extractive.FIRST_QUOTE_WEIGHTS_CROSSLINGUAL = (
        first_quote_weights(weights) if on and languages in ("crosslingual", "both") else {}
    )
    extractive.FIRST_QUOTE_WEIGHTS_SAME_LANGUAGE = (
        first_quote_weights(weights, crosslingual=False) if on and languages in ("same", "both") else {}
    )


def expand(weights: Sequence[float], mask: Sequence[bool]) -> list[float]:
    """Weights of the kept features back in `FEATURES` order, 0 for the left-out ones."""
    values = iter(weights)
    return [next(values) if keep else 0.0 for keep in mask]


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--per-class", type=int, default=400, help="French PIAF dev questions per class.")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--l2", type=float, default=1.0, help="L2 penalty (standardised features).")
    parser.add_argument(
        "--features",
        default=",".join(FEATURES),
        help="Comma-separated names of FEATURES to fit on (the others weigh 0); default: all.",
    )
    parser.add_argument(
        "--add-ratios", default="", help="Comma-separated ADD_RATIO_MAXSIM values (default: the shipped one)."
    )
    parser.add_argument(
        "--tie-ratio",
        type=float,
        default=None,
        help="CROSSLINGUAL_TIE_RATIO for the learned score (default: shipped).",
    )
    parser.add_argument(
        "--first-quote",
        nargs="?",
        const="crosslingual",
        choices=("crosslingual", "same", "both"),
        help="The learned weights choose only the first quote, of a question asked in another language than "
        "the document (crosslingual, the default: rag.backends.extractive.FIRST_QUOTE_WEIGHTS_CROSSLINGUAL), "
        "in its own language (same: FIRST_QUOTE_WEIGHTS_SAME_LANGUAGE) or both; answer_score the rest.",
    )
    parser.add_argument("--fitters", choices=("both", "pointwise", "listwise"), default="both")
    parser.add_argument("--span-floor", type=float, default=None)
    parser.add_argument("--query-float32", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import zlib

    from eval.metrics import answer_contained
    from rag.abstention import gate_for
    from rag.backends.extractive import ExtractiveGenerator
    from rag.evidence import ScoredWindow

    chosen = [name.strip() for name in args.features.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(FEATURES))
    if unknown or "native" not in chosen:
        parser.error(f"--features: unknown {unknown} (or 'native', the unit, left out); known: {FEATURES}")
    mask = [name in chosen for name in FEATURES]
    records = calibration_records(args)
    print()
    articles = article_of(args.piaf_dir)
    answerable = [r for r in records if r["set"] in LANGUAGES and r["answerable"]]
    for r in answerable:
        r["article"] = articles[(r["set"], r["question"])]
        evidence, windows = candidates(r["evidence"])
        r["rows"] = (
            [[f for f, keep in zip(features(w, evidence), mask, strict=True) if keep] for w in windows],
            [int(answer_contained(w.window.text, r["answers"]) > 0) for w in windows],
        )
    fold = {r["article"]: zlib.crc32(r["article"].encode()) % args.folds for r in answerable}
    generator = ExtractiveGenerator()
    shipped_property = ScoredWindow.answer_score

    def compose(r) -> str:
        return generator.compose(r["focus"], r["language"], [], r["evidence"])

    def best_holds(r) -> float:
        # The best window alone (no second quote, no continuation): the choice, apart from the length.
        _, windows = candidates(r["evidence"])
        best = min(windows, key=lambda s: (-s.answer_score, s.passage.number, s.window.start), default=None)
        return 0.0 if best is None else answer_contained(best.window.text, r["answers"])

    import rag.backends.extractive as extractive

    # The baseline is the answer before the first-quote rule (`FIRST_QUOTE_WEIGHTS_CROSSLINGUAL`, which this
    # script chose): `answer_score` alone picks every quote.
    use_first_quote_weights(None, None)
    shipped = {id(r): compose(r) for r in answerable}
    gold, gate = golden_evidence(), gate_for(args.model)
    precision, imprecise = golden_citation_precision(records, lambda r: r["evidence"], gold, gate)
    figures = " ".join(f"{lang} {precision[lang]:.3f}" for lang in LANGUAGES if lang in precision)
    print(f"shipped: golden citation precision {figures} {imprecise or ''}")
    shipped_best = {id(r): best_holds(r) for r in answerable}
    current: dict = {}

    shipped_ratio = extractive.ADD_RATIO_MAXSIM
    shipped_tie = extractive.CROSSLINGUAL_TIE_RATIO
    tie = shipped_tie if args.tie_ratio is None else args.tie_ratio
    ratios = [float(v) for v in args.add_ratios.split(",")] if args.add_ratios else [shipped_ratio]
    for name, fit in (("pointwise (logistic)", fit_pointwise), ("listwise (softmax)", fit_listwise)):
        if args.fitters != "both" and not name.startswith(args.fitters):
            continue
        fold_weights = [
            expand(
                in_shipped_units(fit([r["rows"] for r in answerable if fold[r["article"]] != k], args.l2)),
                mask,
            )
            for k in range(args.folds)
        ]
        for ratio in ratios:
            learned: dict[int, str] = {}
            learned_best: dict[int, float] = {}
            for k, weights in enumerate(fold_weights):

                def score(window, weights=weights):
                    # Place in the passage and the first passage's score: read from the answer's evidence.
                    values = features(window, current["evidence"])
                    return sum(w * f for w, f in zip(weights, values, strict=True))

                try:
                    if args.first_quote:  # the learned weights pick the first quote, across languages only
                        use_first_quote_weights(weights, args.first_quote)
                    else:
                        ScoredWindow.answer_score = property(score)
                    extractive.ADD_RATIO_MAXSIM = ratio
                    extractive.CROSSLINGUAL_TIE_RATIO = tie
                    for r in answerable:
                        if fold[r["article"]] != k:
                            continue
                        current["evidence"] = r["evidence"]
                        learned[id(r)] = compose(r)
                        learned_best[id(r)] = best_holds(r)
                finally:
                    ScoredWindow.answer_score = shipped_property
                    use_first_quote_weights(None, None)
                    extractive.ADD_RATIO_MAXSIM = shipped_ratio
                    extractive.CROSSLINGUAL_TIE_RATIO = shipped_tie
            print(
                f"{f'first quote ({args.first_quote}): ' if args.first_quote else ''}{name} on {', '.join(chosen)}, {args.folds}-fold cross-validation by article, l2 {args.l2}, "
                f"ADD_RATIO_MAXSIM {ratio}, CROSSLINGUAL_TIE_RATIO {tie}:"
            )
            for lang in LANGUAGES:
                rows = [r for r in answerable if r["set"] == lang]
                print(
                    f"  {lang} ({len(rows)} q): "
                    + compare(rows, shipped, learned, shipped_best, learned_best)
                )
        weights = expand(in_shipped_units(fit([r["rows"] for r in answerable], args.l2)), mask)
        # A check, never tuned on: the golden sets' citation precision with these weights (fitted on every
        # PIAF dev question) at each ratio, as `calibrate_hybrid` scores it.

        def read(r):
            current["evidence"] = r["evidence"]
            return r["evidence"]

        def full_score(window, weights=weights):
            values = features(window, current["evidence"])
            return sum(w * f for w, f in zip(weights, values, strict=True))

        if args.first_quote:
            if args.first_quote != "same":
                print(f"  as FIRST_QUOTE_WEIGHTS_CROSSLINGUAL: {first_quote_weights(weights)}")
            if args.first_quote != "crosslingual":
                print(f"  as FIRST_QUOTE_WEIGHTS_SAME_LANGUAGE: {first_quote_weights(weights, False)}")
        for ratio in ratios:
            try:
                if args.first_quote:
                    use_first_quote_weights(weights, args.first_quote)
                else:
                    ScoredWindow.answer_score = property(full_score)
                extractive.ADD_RATIO_MAXSIM = ratio
                extractive.CROSSLINGUAL_TIE_RATIO = tie
                precision, imprecise = golden_citation_precision(records, read, gold, gate)
            finally:
                ScoredWindow.answer_score = shipped_property
                use_first_quote_weights(None, None)
                extractive.ADD_RATIO_MAXSIM = shipped_ratio
                extractive.CROSSLINGUAL_TIE_RATIO = shipped_tie
            figures = " ".join(f"{lang} {precision[lang]:.3f}" for lang in LANGUAGES if lang in precision)
            print(f"  golden citation precision at {ratio}: {figures} {imprecise or ''}")
        print(
            "  weights on every question: "
            + ", ".join(f"{n} {w:+.3f}" for n, w in zip(FEATURES, weights, strict=True))
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
