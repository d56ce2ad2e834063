"""The ONNX export as the product makes it (attention fused) against the plain export: CPU per question.

    .venv/bin/python -m eval.benchmarks.onnx_export --model /root/.cache/rag-fr/e5-small
        [--questions 200] [--batches 1,6] [--rounds 3] [--plain FILE]

The product's export (`index.onnx_encoder`, `EXPORT_FORMAT` 2: eager attention, fused into ONNX Runtime's
Attention operator) is loaded as the embedder loads it; the plain export (the model's default attention,
nothing fused: `EXPORT_FORMAT` 1) is made once more in a temporary folder, or read from `--plain` (e.g. an
older `rag-fr-*.onnx` beside the model). Both run on one intra-op thread, as questions do. The golden
questions and `--questions` PIAF dev questions (query prompt applied) go through both, call by call
alternated (the same moments of the machine), alone and in batches of each `--batches` size (padded to the
longest, as the query batcher's calls are). Prints per round and batch size the median and mean CPU time per
question of each graph, then the largest difference of a kept (unpadded) token's vector and the smallest
cosine of the mean-pooled vectors: the fused graph must give the same vectors.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from eval.benchmarks.answer_figures import GOLDEN, read_jsonl
from eval.benchmarks.calibrate_hybrid import model_benchmark_parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument(
        "--questions", type=int, default=200, help="PIAF dev questions beside the golden ones"
    )
    parser.add_argument("--batches", default="1,6", help="questions per call, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--plain", type=Path, default=None, help="a plain export to reuse (else made now)")
    args = parser.parse_args(argv)
    from index.config import IndexConfig
    from index.embedding import SentenceTransformerEmbedder
    from index.onnx_encoder import OnnxTransformer

    embedder = SentenceTransformerEmbedder(
        IndexConfig(embedding_model=str(args.model), embedding_backend="onnx")
    )
    assert embedder.onnx is not None
    fused = OnnxTransformer(embedder.onnx.path, 1)
    with tempfile.TemporaryDirectory(prefix="onnx-plain-") as tmp:
        plain = OnnxTransformer(args.plain or _plain_export(embedder, Path(tmp)), 1)
        golden = [*read_jsonl(GOLDEN), *read_jsonl(GOLDEN.parent / "seed_qa_extra.jsonl")]
        piaf = [q["question"] for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
        questions = list(dict.fromkeys([g["question"] for g in golden] + piaf[: args.questions]))
        texts = [embedder.query_prompt + q for q in questions]
        print(
            f"{len(texts)} questions (golden and PIAF dev), one thread; plain {plain.path}, fused {fused.path}"
        )
        largest, lowest = 0.0, 1.0
        for size in [int(n) for n in args.batches.split(",")]:
            batches = [embedder.model.preprocess(texts[lo : lo + size]) for lo in range(0, len(texts), size)]
            for features in batches:
                difference, cosine = _compare(
                    plain.token_embeddings(features), fused.token_embeddings(features), features
                )
                largest, lowest = max(largest, difference), min(lowest, cosine)
            for round_ in range(args.rounds):
                spent: dict[str, list[float]] = {"plain": [], "fused": []}
                for features in batches:
                    for name, encoder in (("plain", plain), ("fused", fused)):
                        started = time.thread_time()
                        encoder.token_embeddings(features)
                        spent[name].append((time.thread_time() - started) / len(features["input_ids"]))
                print(
                    f"  batch {size:>2}, round {round_ + 1}: CPU per question, median / mean: "
                    + ", ".join(
                        f"{name} {statistics.median(v) * 1000:.2f} / {statistics.mean(v) * 1000:.2f} ms"
                        for name, v in spent.items()
                    )
                    + f" (fused / plain {statistics.mean(spent['fused']) / statistics.mean(spent['plain']):.3f})"
                )
        print(
            f"largest difference of a kept token's vector {largest:.2e}, smallest pooled cosine {lowest:.8f}"
        )
    return 0


def _plain_export(embedder: Any, folder: Path) -> Path:
    """The transformer exported as `EXPORT_FORMAT` 1 did: the model's own attention, nothing fused."""
    import contextlib

    from index import onnx_encoder

    path = folder / "plain.onnx"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_patched(onnx_encoder, "_fuse_attention", lambda *_: None))
        stack.enter_context(_patched(onnx_encoder, "_eager_attention", lambda _m: contextlib.nullcontext()))
        onnx_encoder._export(embedder.model, onnx_encoder._text_transformer(embedder.model), path)
    return path


def _patched(module: Any, name: str, value: Any) -> Any:
    import contextlib

    @contextlib.contextmanager
    def patch() -> Any:
        before = getattr(module, name)
        setattr(module, name, value)
        try:
            yield
        finally:
            setattr(module, name, before)

    return patch()


def _compare(expected: np.ndarray, found: np.ndarray, features: dict[str, Any]) -> tuple[float, float]:
    mask = features["attention_mask"].numpy().astype(bool)
    difference = float(np.abs(expected[mask] - found[mask]).max())
    weights = mask[..., None].astype(np.float32)
    pooled = [(hidden * weights).sum(1) / weights.sum(1) for hidden in (expected, found)]
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in pooled]
    return difference, float((unit[0] * unit[1]).sum(1).min())


if __name__ == "__main__":
    raise SystemExit(main())
