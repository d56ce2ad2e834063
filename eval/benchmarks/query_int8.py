"""How faithful each int8 copy of the query encoder is, and what it costs: variants side by side.

    .venv/bin/python -m eval.benchmarks.query_int8 --model /root/.cache/rag-fr/e5-small
        [--variants today,all,...] [--folder /tmp/NAME-int8] [--rounds 3] [--fr 600]

One model, its float32 ONNX export (`index.onnx_encoder`) and int8 copies of it made by
`index.onnx_encoder._quantize` (dynamic int8, weights per output channel unless said) with some matrix
products kept in float32 (`index.onnx_encoder.float32_nodes`): `today` is the copy the product makes
(`index.embedding_query_int8`), the others are made once in `--folder`. PIAF dev questions (`--fr`
sampled French ones, seed 5, and the 300 translated English and German ones), query prompt applied, are
embedded by the float32 export and by each copy; per language the cosine of each question's vector to its
float32 vector (mean, 1st percentile, min), and of the token vectors late interaction reads (the word
pieces', `index.tokens.TextTokens.words`). Then CPU time per question (one-thread sessions, the product's
query path `_embed_batch` with token vectors) for questions of 8-20 model tokens, alone and in batches of
8, every variant in turn for `--rounds` rounds (median of the rounds; ratios to float32 from the same
round hold on a busy machine, absolute figures need an idle one).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks.answer_figures import read_jsonl
from eval.benchmarks.calibrate_hybrid import DATA, model_benchmark_parser

#: name -> (float32 groups, per_channel, reduce_range); see `index.onnx_encoder.float32_nodes`.
VARIANTS: dict[str, tuple[tuple[str, ...], bool, bool]] = {
    "all": ((), True, False),
    "layer0": (("layer.0",), True, False),
    "all-rr": ((), True, True),
    "layer0-rr": (("layer.0",), True, True),
    "layer0-tensor": (("layer.0",), False, False),
    "layer0+last": (("layer.0", "last"), True, False),
    "qkv": (("qkv",), True, False),
    "attention-output": (("attention-output",), True, False),
    "intermediate": (("intermediate",), True, False),
    "output": (("output",), True, False),
    "layer0+output": (("layer.0", "output"), True, False),
    "layer0+qkv": (("layer.0", "qkv"), True, False),
}
#: Weight-only int8 in blocks of 32 (MatMulNBits, `blockwise_int8`), beside the dynamic ones of VARIANTS.
BLOCKWISE = "nbits8"


def blockwise_int8(source: Path, path: Path, block_size: int = 32) -> None:
    """Every matrix product of `source` with a constant weight as ONNX Runtime's MatMulNBits: weights int8
    in blocks of `block_size` input rows (one scale each, symmetric), the activations quantised by the
    kernel per block too (accuracy_level 4) rather than once per tensor as `_quantize` does. The fused
    attention's products stay float32. The weights are quantised by ONNX Runtime's own routine
    (`quantize_matmul_8bits`, what its MatMulNBitsQuantizer calls: that class needs the onnx_ir package,
    not installed; same file to the bit as the class's with bits=8, block_size=32, is_symmetric,
    accuracy_level=4)."""
    from index.onnx_encoder import _written_whole

    try:
        import onnx
        from onnx import numpy_helper
        from onnxruntime.capi._pybind_state import quantize_matmul_8bits
    except ImportError as exc:
        raise SystemExit(f"the blockwise int8 copy cannot be made: {exc}") from exc
    model = onnx.load(str(source))
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes = []
    for node in graph.node:
        weight = weights.get(node.input[1]) if node.op_type == "MatMul" and len(node.input) == 2 else None
        if weight is None or len(weight.dims) != 2 or weight.dims[0] % block_size:
            nodes.append(node)
            continue
        matrix = np.ascontiguousarray(numpy_helper.to_array(weight), dtype=np.float32)  # (K, N)
        rows, cols = matrix.shape
        blocks = rows // block_size
        packed = np.zeros((cols, blocks, block_size), dtype=np.uint8)
        scales = np.zeros((cols, blocks), dtype=np.float32)
        zero_points = np.zeros((cols, blocks), dtype=np.uint8)
        quantize_matmul_8bits(packed, matrix, scales, zero_points, block_size, cols, rows, True)
        graph.initializer.remove(weight)
        graph.initializer.extend(
            [
                numpy_helper.from_array(packed, f"{weight.name}_Q8"),
                numpy_helper.from_array(scales, f"{weight.name}_scales"),
            ]
        )
        nodes.append(
            onnx.helper.make_node(
                "MatMulNBits",
                [node.input[0], f"{weight.name}_Q8", f"{weight.name}_scales"],
                list(node.output),
                name=f"{node.name}_Q8",
                domain="com.microsoft",
                K=rows,
                N=cols,
                bits=8,
                block_size=block_size,
                accuracy_level=4,
            )
        )
    del graph.node[:]
    graph.node.extend(nodes)
    if not any(opset.domain == "com.microsoft" for opset in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    with _written_whole(path, ".int8-", "the blockwise int8 copy could not be made") as temporary:
        onnx.save(model, temporary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument(
        "--variants", default=",".join(["today", *VARIANTS, BLOCKWISE]), help="comma-separated; '': none"
    )
    parser.add_argument("--folder", type=Path, default=Path("/tmp/query-int8"))
    parser.add_argument("--fr", type=int, default=600, help="French PIAF dev questions sampled")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timed", type=int, default=96, help="questions of 8-20 tokens timed per round")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        help="NAME=PATH: another quantised copy of the export to compare",
    )
    args = parser.parse_args(argv)
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from index.config import IndexConfig
    from index.embedding import SentenceTransformerEmbedder
    from index.onnx_encoder import INT8_FORMAT, OnnxTransformer, _quantize

    embedder = SentenceTransformerEmbedder(
        IndexConfig(embedding_model=str(args.model), embedding_backend="onnx", embedding_query_int8=True)
    )
    reference = embedder.onnx
    sessions: dict[str, OnnxTransformer] = {"float32": reference}
    for name in filter(None, args.variants.split(",")):
        if name == "today":
            path = reference.path.with_name(f"{reference.path.stem}-int8q{INT8_FORMAT}.onnx")
        else:
            path = args.folder / f"{reference.path.stem}-{name}.onnx"
            if not path.is_file():
                started = time.perf_counter()
                if name == BLOCKWISE:
                    blockwise_int8(reference.path, path)
                else:
                    _quantize(reference.path, path, *VARIANTS[name])
                print(f"made {path.name} in {time.perf_counter() - started:.0f} s", flush=True)
        sessions[name] = OnnxTransformer(path, 1)
    for extra in args.extra:
        name, _, path = extra.partition("=")
        sessions[name] = OnnxTransformer(Path(path), 1)

    dev = [q for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    random.Random(5).shuffle(dev)
    xling = read_jsonl(DATA / "piaf_dev_xling.jsonl")
    sets = {"fr": [q["question"] for q in dev[: args.fr]]}
    sets |= {lang: [x[f"question_{lang}"] for x in xling] for lang in ("en", "de")}
    prompt = embedder.query_prompt

    def encode(session: OnnxTransformer, texts: list[str], size: int) -> tuple[np.ndarray, list]:
        vectors, tokens = [], []
        for start in range(0, len(texts), size):
            found, found_tokens = embedder._embed_batch(
                texts[start : start + size], prompt, session, tokens=True
            )
            vectors.append(found)
            tokens += found_tokens
        return np.concatenate(vectors), tokens

    print(
        f"Cosine to the float32 export, PIAF dev ({', '.join(f'{k} {len(v)}' for k, v in sets.items())}): "
        "question vector mean / 1st percentile / min | word-piece token vectors mean / 1st pct / min"
    )
    expected = {lang: encode(reference, texts, 8) for lang, texts in sets.items()}
    for name, session in sessions.items():
        if name == "float32":
            continue
        cells = []
        for lang, texts in sets.items():
            vectors, tokens = encode(session, texts, 8)
            ref_vectors, ref_tokens = expected[lang]
            cos = (vectors * ref_vectors).sum(1)
            token_cos = np.concatenate(
                [
                    (a.vectors[a.words] * b.vectors[b.words]).sum(1)
                    for a, b in zip(tokens, ref_tokens, strict=True)
                ]
            )
            cells.append(
                f"{lang} {cos.mean():.4f} / {np.percentile(cos, 1):.4f} / {cos.min():.4f} | "
                f"{token_cos.mean():.4f} / {np.percentile(token_cos, 1):.4f} / {token_cos.min():.4f}"
            )
        print(f"{name:>17}: " + "   ".join(cells), flush=True)

    everything = [t for texts in sets.values() for t in texts]
    lengths = embedder.count_tokens_batch([prompt + t for t in everything])
    short = [t for t, n in zip(everything, lengths, strict=True) if 8 <= n <= 20]
    timed = random.Random(7).sample(short, min(args.timed, len(short)))
    print(
        f"\nCPU ms per question, {len(timed)} questions of 8-20 tokens, one-thread sessions, "
        f"median of {args.rounds} rounds (ratio to float32 in the same round)"
    )
    cpu: dict[tuple[str, int], list[float]] = {}
    ratios: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for size in (1, 8):
            this_round = {}
            for name, session in sessions.items():
                started = time.process_time()
                encode(session, timed, size)
                this_round[name] = (time.process_time() - started) * 1000 / len(timed)
                cpu.setdefault((name, size), []).append(this_round[name])
            for name, value in this_round.items():
                ratios.setdefault((name, size), []).append(value / this_round["float32"])
    for name in sessions:
        cells = [
            f"batch {size}: {statistics.median(cpu[name, size]):5.2f} ms (x{statistics.median(ratios[name, size]):.2f})"
            for size in (1, 8)
        ]
        print(f"{name:>17}: " + "   ".join(cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
