"""Where one question's embedding time goes, and what the product's paths save: paths side by side.

    .venv/bin/python -m eval.benchmarks.query_embedding --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--questions 60] [--passages 64]

One model, loaded once, embeds the same distinct PIAF dev questions (query prompt applied) by each path
in turn, question by question, so that every path sees the same machine load:
- `encode, T thr, new thread`: sentence-transformers' `encode()` as the product called it at first: T =
  torch's default threads (one per core), in a new thread per question (the chain's stages each ran in a
  new thread); then `encode()` in the calling thread, with one thread;
- `torch, N threads`: `SentenceTransformerEmbedder.embed_query` with `embedding_backend="torch"` (the
  model's own modules without `encode()`'s per-call work), N = 1 (the default
  `index.embedding_query_threads`) and torch's default;
- `onnx, N threads`: the same with `embedding_backend="onnx"` (the transformer run by ONNX Runtime, see
  index/onnx_encoder.py), N = 1 and 2;
- `onnx int8, 1 thread`: questions through the int8 copy of the export (`index.embedding_query_int8`);
- `tokenizer only`: what tokenising costs, for scale.

Prints per path the median and p95 wall time, the median CPU time of the process (threads that spin while
they wait count here), the median of the per-question ratio to the old path, and the smallest cosine to
the old path's vector (1.000000: the same vectors). Then `--passages` PIAF paragraphs (passage prompt)
embedded by `encode()` (what index builds called before), the torch path and the ONNX path, in turn for
three rounds: wall and CPU time per round and the smallest cosine to `encode()`'s vectors (an index built
with one path stays valid with the other only if that is ~1). Ratios measured in one run hold on a busy
machine; absolute figures need an idle one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from eval.benchmarks.answer_figures import read_jsonl
from eval.benchmarks.calibrate_hybrid import model_benchmark_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument(
        "--passages", type=int, default=64, help="PIAF paragraphs for the passage paths (0: none)."
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from index.config import IndexConfig
    from index.embedding import SentenceTransformerEmbedder, torch_threads
    from index.onnx_encoder import OnnxTransformer

    default_threads = torch.get_num_threads()
    config = IndexConfig(embedding_model=str(args.model))
    embedder = SentenceTransformerEmbedder(config.model_copy(update={"embedding_backend": "torch"}))
    onnx_embedder = SentenceTransformerEmbedder(
        config.model_copy(update={"embedding_backend": "onnx"}), model=embedder.model
    )
    onnx_int8 = SentenceTransformerEmbedder(  # index.embedding_query_int8: the int8 copy of the export
        config.model_copy(update={"embedding_backend": "onnx", "embedding_query_int8": True}),
        model=embedder.model,
        onnx=onnx_embedder.onnx,
    )
    onnx_two = SentenceTransformerEmbedder(
        config.model_copy(update={"embedding_backend": "torch"}),
        model=embedder.model,
        onnx=OnnxTransformer(onnx_embedder.onnx.path, threads=2),
    )
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
        "encode, 1 thread": encode(1),
        f"torch, {default_threads} threads": product(default_threads),
        "torch, 1 thread": product(1),
        "onnx, 1 thread": onnx_embedder.embed_query,
        "onnx, 2 threads": onnx_two.embed_query,
        "onnx int8, 1 thread": onnx_int8.embed_query,
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
    if args.passages:
        compare_passages(args, embedder, onnx_embedder)
    return 0


def compare_passages(args: argparse.Namespace, embedder: Any, onnx_embedder: Any) -> None:
    """The document path: the same paragraphs by `encode()`, the torch path and the ONNX path, in turn."""
    contexts = [c["text"] for c in read_jsonl(args.piaf_dir / "contexts.jsonl") if c["split"] == "dev"]
    texts = contexts[:: max(1, len(contexts) // args.passages)][: args.passages]
    paths = {
        "encode()": lambda: embedder._encode(texts, embedder.passage_prompt, False),
        "torch": lambda: embedder.embed_passages(texts),
        "onnx": lambda: onnx_embedder.embed_passages(texts),
    }
    wall: dict[str, list[float]] = {label: [] for label in paths}
    cpu: dict[str, list[float]] = {label: [] for label in paths}
    vectors: dict[str, np.ndarray] = {}
    for _round in range(3):
        for label, path in paths.items():
            cpu_started, started = time.process_time(), time.perf_counter()
            vectors[label] = path()
            wall[label].append(time.perf_counter() - started)
            cpu[label].append(time.process_time() - cpu_started)
    print(
        f"{len(texts)} PIAF dev paragraphs (passage prompt), batch {embedder.batch_size}, 3 rounds, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    for label in paths:
        cosine = float(np.min(np.sum(vectors[label] * vectors["encode()"], axis=1)))
        print(
            f"  {label:<10} wall {' '.join(f'{w:6.1f}' for w in wall[label])} s  cpu "
            f"{' '.join(f'{c:6.1f}' for c in cpu[label])} s  min cosine to encode() {cosine:.6f}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
