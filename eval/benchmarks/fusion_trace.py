"""Why a golden question's evidence is (not) retrieved: each fusion signal's rank of the evidence chunks.

    RAG_INDEX__EMBEDDING_MODEL=DIR .venv/bin/python -m eval.benchmarks.fusion_trace extra-008 [ID ...]
        [--set sentence_weight=1.0 --set coverage_weight=0] [--top 8]

For each golden question (ids of `eval/golden/*.jsonl`), over the product's index of `seeds/` (the one
`rag eval` caches in runs/.cache): the rank and score of every chunk holding an evidence quote in each
ranking the hybrid retriever fuses (lexical BM25, dense, sentence max-sim, term coverage) and in the fused
ranking, then the best fused chunks with their per-signal scores. `--set NAME=VALUE` changes a retrieval
setting (`RetrievalSettings`) to compare, e.g. the weights before a change with today's defaults. In lexical
mode only the lexical ranking exists. Then late interaction (`HybridRetriever.late_interaction`: "late", the
MaxSim of the rescored candidates) and the final rank, the order the passages are shown in. Retrieval only:
no answer is made.

What it showed (ninth session), "Which company leads the investments in OpenAI?" (extra-008, hybrid): the
chunk holding « avec Microsoft en chef de file » is 2nd by BM25 and 1st by coverage, but 6th of 10 by dense
and 7th by sentence max-sim: the model does not read "leads" as « en chef de file ». Fused 5th with sentence
1.0 and no coverage (`--set sentence_weight=1.0 --set coverage_weight=0`), 6th with today's 2.0 and 1.5:
the whole collection is the candidate pool here, and min-max normalisation stretches a sentence-cosine
spread of 0.03 to 0..1, which weight 2.0 doubles. The coverage does not make up for it: a cross-lingual
question's untranslated words count as terms no chunk holds, so its best share is 0.089.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "eval" / "golden"


def _setting(text: str) -> tuple[str, str]:
    name, _, value = text.partition("=")
    if not name.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE, e.g. sentence_weight=1.0")
    return name.strip(), value.strip()


def add_golden_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """The arguments of a trace over golden questions: their ids, the documents, rag eval's index cache."""
    parser.add_argument("ids", nargs="+", help=f"golden question ids, e.g. {example}")
    parser.add_argument("--docs", type=Path, default=REPO / "seeds")
    parser.add_argument("--cache", type=Path, default=Path("runs/.cache"), help="as rag eval's index cache")


def golden_questions(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """(the golden dataset, its items by id, the product's assistant over its documents, indexed as
    `rag eval` indexes them); an unknown id is a usage error naming it."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from eval.datasets import load_golden
    from eval.runner import build_corpus
    from rag import load_settings

    dataset = load_golden(sorted(GOLDEN.glob("*.jsonl")), args.docs)
    items = {item.id: item for item in dataset.items}
    unknown = [i for i in args.ids if i not in items]
    if unknown:
        parser.error(f"unknown id(s) {', '.join(unknown)}; the ids are those of eval/golden/*.jsonl")
    assistant = build_corpus(dataset, load_settings(), args.cache, progress=False).assistant
    return dataset, items, assistant


def _rank(ranking: Sequence[tuple[int, float]], row: int) -> str:
    ordered = sorted(ranking, key=lambda item: -item[1])
    for rank, (candidate, score) in enumerate(ordered, start=1):
        if candidate == row:
            return f"{rank} ({score:.3f})"
    return "-"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_golden_arguments(parser, "extra-008")
    parser.add_argument("--set", dest="settings", type=_setting, action="append", default=[])
    parser.add_argument("--top", type=int, default=8, help="fused chunks listed per question")
    args = parser.parse_args(argv)
    from rag.chain import question_language

    _, items, assistant = golden_questions(parser, args)
    retriever, store = assistant.retriever, assistant.store
    if args.settings:  # validated as the settings file would be: a wrong name or value is refused
        try:
            retriever.settings = type(retriever.settings).model_validate(
                {**retriever.settings.model_dump(), **dict(args.settings)}
            )
        except ValueError as exc:
            raise SystemExit(f"--set: {exc}") from None
    print(f"mode {retriever.mode}, {len(store.chunks)} chunks, settings {retriever.settings.model_dump()}")
    for identifier in args.ids:
        item = items[identifier]
        language = question_language(item.question)
        rankings = retriever.rankings(item.question, language, retriever.settings.candidates)
        fused = retriever.fuse(rankings)
        final, maxsims = retriever.late_interaction(item.question, fused)
        if maxsims:
            rankings = {**rankings, "late": list(maxsims.items())}
        print(f"\n{identifier} ({language}): {item.question}")
        for evidence in item.evidence:
            rows = [
                row
                for row, chunk in enumerate(store.chunks)
                if Path(chunk.doc_id).as_posix().endswith(evidence.doc)
                and chunk.start <= evidence.start
                and evidence.end <= chunk.end
            ]
            print(f"  evidence « {evidence.quote[:70]} »")
            for row in rows:
                ranks = "  ".join(f"{name} {_rank(ranking, row)}" for name, ranking in rankings.items())
                after = f"  after late interaction {_rank(final, row)}" if maxsims else ""
                print(f"    chunk {row}: {ranks}  fused {_rank(fused, row)}{after}")
            if not rows:
                print("    (no single chunk holds it)")
        per_signal = {name: dict(ranking) for name, ranking in rankings.items()}
        for rank, (row, score) in enumerate(final[: args.top], start=1):
            scores = " ".join(f"{n} {v[row]:.3f}" for n, v in per_signal.items() if row in v)
            text = store.chunks[row].text[:60].replace("\n", " ")
            print(f"  {rank}. chunk {row} final {score:.3f} | {scores} | {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
