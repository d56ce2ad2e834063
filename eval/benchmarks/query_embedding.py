"""Where one question's embedding time goes, and what the product's query path saves: paths side by side.

    .venv/bin/python -m eval.benchmarks.query_embedding --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--questions 60]

One model, loaded once, embeds the same distinct PIAF dev questions (query prompt applied) by each path
in turn, question by question, so that every path sees the same machine load:
- `encode, T thr, new thread`: sentence-transformers' `encode()` as the product called it before: T =
  torch's default threads (one per core), in a new thread per question (the chain's stages each ran in a
  new thread); then `encode()` in the calling thread, with T threads and with one;
- `product, N threads`: `SentenceTransformerEmbedder.embed_query` (the model's own modules without
  `encode()`'s per-call work), with N = 1 (the default `index.embedding_query_threads`) and with torch's
  default;
- `tokenizer only`: what tokenising costs, for scale.

Prints per path the median and p95 wall time, the median CPU time of the process (threads that spin while
they wait count here), the median of the per-question ratio to the old path, and the smallest cosine to
the old path's vector (1.000000: the same vectors). Ratios measured in one run hold on a busy machine;
absolute figures need an idle one.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from eval.benchmarks.answer_figures import read_jsonl
from eval.benchmarks.calibrate_hybrid import model_benchmark_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--questions", type=int, default=60)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from index.config import IndexConfig
    from index.embedding import SentenceTransformerEmbedder, torch_threads

    default_threads = torch.get_num_threads()
    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(args.model)))
    dev = [q["question"] for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    questions = list(dict.fromkeys(dev))[:: max(1, len(dev) // args.questions)][: args.questions]

    def encode(threads: int) -> Callable[[str], np.ndarray]:
        def embed(text: str) -> np.ndarray:
            with torch_threads(threads):
                return embedder._encode([text], embedder.query_prompt, False)[0]

        return embed

    def product(threads: int) -> Callable[[str], np.ndarray]:
        def embed(text: str) -> np.ndarray:
            embedder.query_threads = threads
            return embedder.embed_query(text)

        return embed

    def tokenizer_only(text: str) -> None:
        embedder.model.preprocess([text], prompt=embedder.query_prompt or None)

    def in_new_thread(embed: Callable[[str], np.ndarray]) -> Callable[[str], np.ndarray]:
        def run(text: str) -> np.ndarray:
            with ThreadPoolExecutor(max_workers=1) as pool:
                return pool.submit(embed, text).result()

        return run

    old_label = f"encode, {default_threads} thr, new thread"
    paths: dict[str, Callable[[str], np.ndarray | None]] = {
        old_label: in_new_thread(encode(default_threads)),
        f"encode, {default_threads} threads": encode(default_threads),
        "encode, 1 thread": encode(1),
        f"product, {default_threads} threads": product(default_threads),
        "product, 1 thread": product(1),
        "tokenizer only": tokenizer_only,
    }
    for path in paths.values():  # warm-up: first-call allocations, thread pools
        path("Quelle est la capitale de l'Écosse ?")
    wall: dict[str, list[float]] = {label: [] for label in paths}
    cpu: dict[str, list[float]] = {label: [] for label in paths}
    vectors: dict[str, list[np.ndarray]] = {label: [] for label in paths}
    for question in questions:
        for label, path in paths.items():
            cpu_started, started = time.process_time(), time.perf_counter()
            vector = path(question)
            wall[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - cpu_started)
            if vector is not None:
                vectors[label].append(np.asarray(vector, dtype=np.float32))
    with torch_threads(1):
        tokens = statistics.median(len(embedder.model.preprocess([q])["input_ids"][0]) for q in questions)
    print(
        f"one question's embedding, {len(questions)} PIAF dev questions (median {tokens:.0f} tokens), "
        f"model {args.model}, torch default threads {default_threads}, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    reference = np.stack(vectors[old_label])
    for label in paths:
        ratio = statistics.median(np.array(wall[label]) / np.array(wall[old_label]))
        line = (
            f"  {label:<28} median {statistics.median(wall[label]) * 1000:7.1f} ms  p95 "
            f"{np.percentile(wall[label], 95) * 1000:7.1f} ms  cpu {statistics.median(cpu[label]) * 1000:6.1f} ms"
            f"  x{ratio:.2f} of the old path"
        )
        if vectors[label]:
            line += f"  min cosine to old {float(np.min(np.sum(np.stack(vectors[label]) * reference, axis=1))):.6f}"
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
