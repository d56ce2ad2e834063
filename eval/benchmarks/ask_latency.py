"""`ask` latency with the index loaded, on all 1,518 PIAF paragraphs, lexical and hybrid side by side.

    .venv/bin/python -m eval.benchmarks.ask_latency --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--cache DIR] [--questions 200] [--torch]

One hybrid index (built once with the model and cached in `--cache`, incremental) is opened twice in one
process: hybrid (the model loaded) and lexical (`index.embedding_model=""`: the same index, no model). The
same PIAF dev questions (distinct, so no memoised query vector is reused) are asked through the full public
path (`Assistant.ask`, extractive backend: retrieve, evidence, abstain, quote, verify), interleaved
question by question so that both modes see the same machine load. One warm-up question per mode first.
Prints the median and p95 per mode, and the median hybrid time of each stage. `--torch`: a third
assistant on the same index runs the embedding model with torch (`index.embedding_backend="torch"`,
the path before ONNX Runtime), interleaved with the others: the ratio of the two hybrid rows holds on a
busy machine. `--no-late`: a further hybrid assistant on the same index without late interaction (no MaxSim
rescoring of the candidates, no MaxSim of the evidence windows: the path before token vectors), interleaved
likewise: what late interaction costs per question. `--seeds`: the same on
seeds/ and the single-turn golden questions (a quick check; the issue's target is on PIAF).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks.answer_figures import GOLDEN, SEEDS, read_jsonl, write_piaf_corpus
from eval.benchmarks.calibrate_hybrid import hybrid_settings, model_benchmark_parser, open_hybrid


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument(
        "--torch", action="store_true", help="also hybrid with the torch backend, side by side"
    )
    parser.add_argument(
        "--no-late",
        action="store_true",
        help="also hybrid without late interaction (token vectors unused), side by side",
    )
    parser.add_argument(
        "--seeds", action="store_true", help="seeds/ and the golden questions instead of PIAF (a quick check)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag import open_assistant

    if args.seeds:
        corpus, index_dir = SEEDS, args.cache / f"seeds-{Path(args.model).name}"
    else:
        corpus = args.cache / "piaf-corpus"
        write_piaf_corpus(args.piaf_dir, corpus)
        index_dir = args.cache / f"piaf-{Path(args.model).name}"
    hybrid = open_hybrid(corpus, index_dir, args.model)
    lexical_settings = hybrid_settings(index_dir, "")
    lexical = open_assistant(lexical_settings)
    assert lexical.retriever.mode == "lexical" and hybrid.retriever.mode == "hybrid"
    assistants = {"lexical": lexical, "hybrid": hybrid}
    if args.torch:
        torch_settings = hybrid_settings(index_dir, args.model)
        torch_settings.index.embedding_backend = "torch"
        assistants["hybrid-torch"] = open_assistant(torch_settings)
    if args.no_late:
        plain_settings = hybrid_settings(index_dir, args.model)
        plain_settings.retrieval.late_interaction_weight = 0.0
        plain = open_assistant(plain_settings)
        plain.chain().window_token_matches = None  # the evidence windows' MaxSim too
        assistants["hybrid-no-late"] = plain
    if args.seeds:
        golden = [*read_jsonl(GOLDEN), *read_jsonl(GOLDEN.parent / "seed_qa_extra.jsonl")]
        dev = [g["question"] for g in golden if not g.get("history")]
    else:
        dev = [q["question"] for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    questions = list(dict.fromkeys(dev))[:: max(1, len(dev) // args.questions)][: args.questions]
    for assistant in assistants.values():
        assistant.ask("Quelle est la capitale de l'Écosse ?")  # warm-up: lazy wiring, first model call
    times: dict[str, list[float]] = {mode: [] for mode in assistants}
    stages: dict[str, dict[str, list[float]]] = {mode: {} for mode in assistants if mode != "lexical"}
    for question in questions:
        for mode, assistant in assistants.items():
            started = time.perf_counter()
            answer = assistant.ask(question)
            times[mode].append(time.perf_counter() - started)
            for stage, seconds in answer.timings.items() if mode in stages else ():
                stages[mode].setdefault(stage, []).append(seconds)
    print(
        f"`ask` latency, {len(questions)} {'seed golden' if args.seeds else 'PIAF dev'} questions, "
        f"{len(hybrid.store.chunks)} chunks, index loaded, embedding backend {hybrid.store.embedder.backend}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for mode, values in times.items():
        print(
            f"  {mode:<8} median {np.percentile(values, 50) * 1000:6.1f} ms   p95 "
            f"{np.percentile(values, 95) * 1000:6.1f} ms"
        )
    for mode, by_stage in stages.items():
        print(
            f"  {mode} stages (median ms): "
            + ", ".join(
                f"{stage} {statistics.median(values) * 1000:.1f}" for stage, values in by_stage.items()
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
