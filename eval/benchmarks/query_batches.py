"""Questions that wait together for the embedding model: the CPU per question by the size of the model calls.

    .venv/bin/python -m eval.benchmarks.query_batches --model /root/.cache/rag-fr/e5-small [--bursts 8]
        [--burst 32] [--sizes 32,16,8,4,1] [--piaf-dir ../shared/bench/piaf]

A chat server embeds the questions that arrive together in shared model calls (`index.query_batcher`: up to
`index.embedding_batch_size` questions a call). A call pads every question to its longest, and the forward
pass costs by the token, padding included, while each call also has a fixed cost. This takes bursts of
`--burst` questions (the concurrency benchmark's questions with their session tags, in the order sessions
send them, and PIAF dev questions) and embeds each burst with `encode_queries` (vectors and token vectors,
as the batcher does) split into calls of each `--sizes` by the product's
`SentenceTransformerEmbedder._encode_waiting_queries` (shortest first; it ships `QUERY_CALL_SIZE`). The sizes
take turns burst by burst, so that they share the machine's moments; printed per size: the median CPU per
question over the bursts, and the largest difference of a vector to the same question embedded alone.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import numpy as np

from eval.benchmarks.answer_figures import read_jsonl
from eval.benchmarks.calibrate_hybrid import model_benchmark_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--bursts", type=int, default=8, help="Bursts per question set and size.")
    parser.add_argument("--burst", type=int, default=32, help="Questions waiting together.")
    parser.add_argument("--sizes", default="32,16,8,4,1")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from eval.benchmarks.concurrency import QUESTIONS, _tagged
    from index.config import IndexConfig
    from index.embedding import QUERY_CALL_SIZE, SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(args.model)))
    sizes = [int(s) for s in args.sizes.split(",")]
    count = args.bursts * args.burst
    chat = [_tagged(q, session) for session in range(count) for q in QUESTIONS[session % len(QUESTIONS)]]
    dev = [q["question"] for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    sets = {
        "the concurrency benchmark's questions, tagged as it tags them": chat[:count],
        "PIAF dev questions": list(dict.fromkeys(dev))[:count],
    }
    print(
        f"e5 model {args.model}, ONNX Runtime: {embedder.backend == 'onnx'}; shipped call size {QUERY_CALL_SIZE}"
    )
    embedder.encode_queries(["query warm-up"])
    for name, texts in sets.items():
        tokens = embedder.count_tokens_batch(texts)
        alone = {t: e.vector for t, e in zip(texts, embedder._encode_waiting_queries(texts, 1), strict=True)}
        cpu: dict[int, list[float]] = {size: [] for size in sizes}
        differences: dict[int, float] = {size: 0.0 for size in sizes}
        for start in range(0, len(texts), args.burst):
            burst = texts[start : start + args.burst]
            for size in sizes:
                began = time.process_time()
                encodings = embedder._encode_waiting_queries(burst, size)
                cpu[size].append(1000 * (time.process_time() - began) / len(burst))
                for text, encoding in zip(burst, encodings, strict=True):
                    differences[size] = max(
                        differences[size], float(np.abs(encoding.vector - alone[text]).max())
                    )
        print(
            f"\n{name}: {len(texts)} questions in bursts of {args.burst}, tokens median "
            f"{statistics.median(tokens):.0f} (min {min(tokens)}, max {max(tokens)}), prompt excluded"
        )
        for size in sizes:
            print(
                f"  calls of {size:2d}: {statistics.median(cpu[size]):6.2f} ms CPU per question (median of "
                f"{len(cpu[size])} bursts); largest vector difference to the question alone {differences[size]:.1e}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
