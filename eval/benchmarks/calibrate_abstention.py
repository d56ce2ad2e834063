"""Calibrate the abstention threshold (rag.abstention.ABSTAIN_THRESHOLD) and print the figures behind it.

    .venv/bin/python -m eval.benchmarks.calibrate_abstention [--piaf-dir DIR] [--per-class 800]

Data (dev only; PIAF test is never read):
- PIAF dev with honest unanswerable questions: the dev *articles* are split in two by a hash of their
  title; the paragraphs of one half are left out of the index (all other paragraphs, dev and test, are in
  it), so the questions written on them have no answer in the index. The questions of the other half are
  answerable. Holding out whole articles, not single paragraphs, keeps neighbouring paragraphs that repeat
  the answer out of the index too.
- The seed golden set (23 answerable, 3 unanswerable questions over seeds/).

For each question the chain runs up to the abstention check (condense, retrieve top-5, evidence score);
no answer is generated. The script sweeps the threshold and the type-mismatch factor, prints false-abstention
rate (answerable questions abstained), true-abstention rate (unanswerable abstained) and balanced accuracy
on PIAF dev, and the seed outcome, then picks the setting with the best PIAF dev balanced accuracy among
those that get the whole seed set right.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from eval.benchmarks.answer_figures import DEFAULT_PIAF, GOLDEN, SEEDS, build, lexical_settings, read_jsonl
from eval.datasets import piaf_document

THRESHOLDS = [round(0.2 + 0.02 * i, 2) for i in range(36)]  # 0.20 .. 0.90
TYPE_FACTORS = (0.6, 0.75, 1.0)
UNSEEN_FACTORS = (1.0,)
NAME_FACTORS = (1.0, 0.7, 0.5)


def held_out(title: str) -> bool:
    return int(hashlib.sha1(("holdout:" + title).encode()).hexdigest(), 16) % 2 == 0


def coverage_inputs(assistant, questions: Sequence[str]) -> list[tuple]:
    """Per question, the retrieved passages and what the check needs (computed once, reused per factor)."""
    from rag.chain import _start

    chain = assistant.chain("extractive")
    states = []
    for question in questions:
        state = chain.prepare.invoke(_start({"question": question, "history": [], "top_k": 5}))
        states.append(state)
    return states


def scores(assistant, states: list[dict], factor: float, unseen: float, name: float = 1.0) -> list[float]:
    import rag.abstention as abstention

    saved, saved_name = abstention.TYPE_MISMATCH_FACTOR, abstention.UNKNOWN_NAME_FACTOR
    abstention.TYPE_MISMATCH_FACTOR = factor
    abstention.UNKNOWN_NAME_FACTOR = name
    assistant.scorer.stats.unseen_factor = unseen
    chain = assistant.chain("extractive")
    try:
        # The evidence step again: the unseen factor changes the term groups' weights.
        return [abstention.evidence_check(chain._evidence(s)).score for s in states]
    finally:
        abstention.TYPE_MISMATCH_FACTOR, abstention.UNKNOWN_NAME_FACTOR = saved, saved_name
        assistant.scorer.stats.unseen_factor = type(assistant.scorer.stats).unseen_factor


def rates(answerable: list[float], unanswerable: list[float], threshold: float) -> tuple[float, float, float]:
    false_abstain = sum(s < threshold for s in answerable) / max(1, len(answerable))
    true_abstain = sum(s < threshold for s in unanswerable) / max(1, len(unanswerable))
    return false_abstain, true_abstain, (1 - false_abstain + true_abstain) / 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--piaf-dir", type=Path, default=DEFAULT_PIAF)
    parser.add_argument("--per-class", type=int, default=800, help="PIAF dev questions per class (sampled).")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.assistant import open_assistant

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rag-calibrate-") as tmp:
        work = Path(tmp)
        # Seed golden set.
        seed_settings = lexical_settings(work / "seed-index")
        build([SEEDS], seed_settings)
        seed_assistant = open_assistant(seed_settings)
        golden = read_jsonl(GOLDEN)
        seed_states = coverage_inputs(seed_assistant, [g["question"] for g in golden])
        seed_labels = [g["answerable"] for g in golden]

        # PIAF dev with held-out articles.
        contexts = read_jsonl(args.piaf_dir / "contexts.jsonl")
        excluded = {c["id"] for c in contexts if c["split"] == "dev" and held_out(c["title"])}
        corpus = work / "piaf-corpus"
        corpus.mkdir()
        for context in contexts:
            if context["id"] not in excluded:
                name, text = piaf_document(context)
                (corpus / name).write_text(text, encoding="utf-8")
        piaf_settings = lexical_settings(work / "piaf-index")
        build([corpus], piaf_settings)
        piaf_assistant = open_assistant(piaf_settings)
        dev = [q for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
        rng = random.Random(13)
        answerable = [q for q in dev if q["context_id"] not in excluded]
        unanswerable = [q for q in dev if q["context_id"] in excluded]
        answerable = rng.sample(answerable, min(args.per_class, len(answerable)))
        unanswerable = rng.sample(unanswerable, min(args.per_class, len(unanswerable)))
        a_states = coverage_inputs(piaf_assistant, [q["question"] for q in answerable])
        u_states = coverage_inputs(piaf_assistant, [q["question"] for q in unanswerable])
        gold_retrieved = [
            any(Path(p.doc_id).stem == q["context_id"] for p in s["passages"])
            for q, s in zip(answerable, a_states, strict=True)
        ]

        print(
            f"PIAF dev: {len(contexts) - len(excluded)} paragraphs indexed, {len(excluded)} held out "
            f"({len(answerable)} answerable / {len(unanswerable)} unanswerable questions sampled; gold paragraph "
            f"in top-5 for {sum(gold_retrieved)}/{len(answerable)} answerable)."
        )
        print("Seed golden set: 23 answerable, 3 unanswerable.\n")
        candidates = []
        for unseen, name in itertools.product(UNSEEN_FACTORS, NAME_FACTORS):
            for factor in TYPE_FACTORS:
                a_scores = scores(piaf_assistant, a_states, factor, unseen, name)
                u_scores = scores(piaf_assistant, u_states, factor, unseen, name)
                s_scores = scores(seed_assistant, seed_states, factor, unseen, name)
                low = min(s for s, label in zip(s_scores, seed_labels, strict=True) if label)
                high = max(s for s, label in zip(s_scores, seed_labels, strict=True) if not label)
                print(
                    f"unseen-term factor {unseen}, unknown-name factor {name}, type-mismatch factor {factor} "
                    f"(seed: lowest answerable "
                    f"{low:.3f}, highest unanswerable {high:.3f}):"
                )
                print(
                    f"  {'thr':>5} {'PIAF false-abst':>15} {'PIAF true-abst':>14} {'bal.acc':>8} {'seed ok':>8}"
                )
                for threshold in THRESHOLDS:
                    fa, ta, balanced = rates(a_scores, u_scores, threshold)
                    seed_ok = sum(
                        (s < threshold) != label for s, label in zip(s_scores, seed_labels, strict=True)
                    )
                    if 0.3 <= threshold <= 0.6:
                        print(f"  {threshold:>5.2f} {fa:>15.3f} {ta:>14.3f} {balanced:>8.3f} {seed_ok:>5}/26")
                    if seed_ok == len(golden):
                        margin = min(low - threshold, threshold - high)
                        candidates.append(
                            (balanced, margin, unseen, name, factor, threshold, fa, ta, a_scores, s_scores)
                        )
        # Among the settings that get the whole seed set right, those within 0.01 of the best PIAF dev balanced
        # accuracy are equivalent on PIAF; of them take the one farthest from both seed classes (robust).
        top = max(c[0] for c in candidates)
        best = max((c for c in candidates if c[0] >= top - 0.01), key=lambda c: c[1])
        balanced, _, unseen, name, factor, threshold, fa, ta, a_scores, s_scores = best
        seed_ok = len(golden)
        retrieved_fa = sum(
            s < threshold for s, hit in zip(a_scores, gold_retrieved, strict=True) if hit
        ) / max(1, sum(gold_retrieved))
        print(
            f"\nChosen: ABSTAIN_THRESHOLD={threshold}, TYPE_MISMATCH_FACTOR={factor}, "
            f"UNKNOWN_NAME_FACTOR={name}, unseen_factor={unseen}: "
            f"PIAF dev balanced accuracy {balanced:.3f} (answerable abstained {fa:.3f}; when the gold paragraph "
            f"is in the top-5: {retrieved_fa:.3f}; unanswerable abstained {ta:.3f}); seed {seed_ok}/26 right."
        )
        margin_a = min(s for s, label in zip(s_scores, seed_labels, strict=True) if label)
        margin_u = max(s for s, label in zip(s_scores, seed_labels, strict=True) if not label)
        print(f"Seed scores: lowest answerable {margin_a:.3f}, highest unanswerable {margin_u:.3f}.")
        print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
