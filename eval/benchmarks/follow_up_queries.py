"""Golden follow-up questions: what each way of turning them into a search query retrieves.

A benchmark script (prints figures, asserts nothing). With an LLM backend a follow-up is searched with the
rule-based rewrite of `rag.condense` when it finds words to add (`llm.rewrite_follow_ups = "when_unsure"`),
and the model rewrites only the others; "always" has the model rewrite every one (a whole model call before
the answer's first token). No model runs offline here, so the model's rewrite is stood in for by the
follow-up followed by the previous question (what a good rewrite names: the conversation's subject).
For each golden follow-up (the items with a history, in eval/golden) and each query: the rank at which the
top passages cover its evidence quote (`eval.metrics.evidence_ranks`, as `rag eval` counts it), and whether
`rag.condense.is_follow_up` sees it as a follow-up with its history, and by its rules alone (without the
corpus check "no content word the corpus knows", which catches any German question over French documents
and none over German ones).

    python -m eval.benchmarks.follow_up_queries [--model DIR] [--golden FILE ...]   (--model "": lexical)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from eval import metrics
from eval.datasets import load_golden
from eval.runner import DocMapper

REPO = Path(__file__).resolve().parents[2]
DEFAULT_E5 = "/root/.cache/rag-fr/e5-small"
K = 10


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_E5, help='embedding model folder; "" for lexical mode')
    parser.add_argument(
        "--golden",
        type=Path,
        action="append",
        help="golden JSONL file (repeatable; default: seed_qa.jsonl and seed_qa_extra.jsonl of eval/golden; "
        "eval/golden/seed_followups.jsonl is the follow-up acceptance set)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from rag import build_assistant, load_settings
    from rag.chain import question_language
    from rag.condense import condense_heuristically, is_follow_up

    golden = REPO / "eval" / "golden"
    paths = args.golden or [golden / "seed_qa.jsonl", golden / "seed_qa_extra.jsonl"]
    dataset = load_golden(paths, REPO / "seeds")
    follow_ups = [item for item in dataset.items if item.history]
    with tempfile.TemporaryDirectory(prefix="rag-follow-ups-") as tmp:
        settings = load_settings(
            environ={},
            overrides={
                "index.index_dir": tmp,
                "index.embedding_model": args.model,
                "index.show_progress": False,
            },
        )
        assistant = build_assistant([REPO / "seeds"], settings)
        mapper = DocMapper(dataset)
        print(
            f"{len(follow_ups)} golden follow-ups, {assistant.status()['retrieval_mode']} mode; rank of the"
        )
        print(f"evidence in the top {K} passages (- : not there; unanswerable items have none)")
        totals: dict[str, list[int | None]] = {"as asked": [], "rules": [], "stand-in rewrite": []}
        seen = {"with the corpus": 0, "by the rules alone": 0}
        for item in follow_ups:
            history = [dict(turn) for turn in item.history]
            language = question_language(item.question)
            previous = [t["content"] for t in history if t["role"] == "user"][-1]
            rules = condense_heuristically(item.question, history, language, assistant.scorer)
            queries = {
                "as asked": item.question,
                "rules": rules.standalone,
                "stand-in rewrite": f"{item.question} ({previous})",
            }
            shown = []
            for name, query in queries.items():
                passages = assistant.retrieve(query, k=K, merge=False)
                ranks = metrics.evidence_ranks([mapper.span(p) for p in passages], item.evidence)
                rank = min((r for r in ranks if r is not None), default=None) if item.answerable else None
                if item.answerable:
                    totals[name].append(rank)
                shown.append(f"{name} {rank or '-'}")
            resolved = "rules" if rules.standalone != item.question else "the model"
            detected = is_follow_up(item.question, language, assistant.scorer, history)
            by_rules = is_follow_up(item.question, language, None, history)
            seen["with the corpus"] += detected
            seen["by the rules alone"] += by_rules
            print(
                f"  {item.id} ({language}, follow-up {'seen' if detected else 'NOT seen'}"
                f"{'' if by_rules else ' (not by the rules alone)'}, "
                f"searched by {resolved}): " + ", ".join(shown)
            )
            print(f"      rules' query: {rules.standalone}")
        print(
            "  follow-ups seen: "
            + ", ".join(f"{count}/{len(follow_ups)} {name}" for name, count in seen.items())
        )
        for name, ranks in totals.items():
            count = max(1, len(ranks))
            hits = {k: sum(r is not None and r <= k for r in ranks) / count for k in (1, 5)}
            print(
                f"  {name:17s} hit@1 {hits[1]:.2f}  hit@5 {hits[5]:.2f}  "
                f"MRR {sum(1 / r for r in ranks if r) / count:.2f}  ({len(ranks)} answerable)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
