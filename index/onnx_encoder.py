"""The embedding model's transformer run by ONNX Runtime: exported once, cached, checked against torch.

Why: one ~16-token question through multilingual-e5-small's 12 layers is a chain of small matrix
products; torch spends most of that call dispatching them, ONNX Runtime runs the same graph with fused
kernels (eval/benchmarks/query_embedding.py prints both side by side). Only the transformer, the heavy
module, moves: tokenisation (the model's own `preprocess`), pooling and normalisation stay the model's own
sentence-transformers modules, so prompts, truncation and pooling cannot drift from the torch path.

The export (`torch.onnx.export` of the model's own weights, the `onnx` package needed for it) runs once per
model on first use and is cached (a BERT-like model's attention exported as plain operations, then
fused into ONNX Runtime's Attention operator: `_fuse_attention`): beside a local model folder
(`<folder>/onnx/rag-fr-<fingerprint>.onnx`), or under `$XDG_CACHE_HOME/rag-fr/onnx/` for a hub model or a folder that cannot be written. The
fingerprint covers the weight files and config, so replaced weights are exported again. Before it is used,
an export must give the torch path's vectors (cosine >= `MIN_COSINE` on a probe batch of unequal lengths):
an index built with either path stays valid with the other. Any failure (package missing, an architecture
the exporter cannot trace, a mismatch) leaves the torch path in charge; `OnnxUnavailable` says why.

Questions may run on a second, int8 copy (`load_int8_query_transformer`): the float32 export's matrix
products and fused attention quantised (dynamic int8, weights per output channel; the first layer kept in
float32, the one whose quantisation moved the vectors most), written beside the export once. Passages always go through the
float32 export, so stored vectors never change; a query vector moves a little (cosine ~0.997 to float32 on
PIAF questions), checked on every load against the float32 export (`MIN_INT8_COSINE`), else the float32
export embeds the questions too.

This module must not decide when ONNX is used: `index.config.IndexConfig.embedding_backend` does, read by
`index.embedding`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Exported graph layout; bump it when the export changes so that old files are not reused.
#: 2: eager attention, fused into ONNX Runtime's Attention operator (`_fuse_attention`).
EXPORT_FORMAT = 2
#: Smallest cosine between an export's vectors and torch's on the probe batch for the export to be used.
MIN_COSINE = 0.9999
#: int8 query copy layout (what is quantised); bump it when that changes so that old files are not reused.
INT8_FORMAT = 2
#: Smallest cosine between the int8 query copy's vectors and the float32 export's on the probe batch.
MIN_INT8_COSINE = 0.99
_MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_PROBE_TEXTS = (
    "Le chat dort sur le canapé.",
    "Who leads the company, and since when? A longer probe so that the batch needs padding.",
    "Wer leitet das Unternehmen?",
)


class OnnxUnavailable(RuntimeError):
    """ONNX Runtime cannot run this model here; the message says why and the torch path is used."""


class OnnxTransformer:
    """The first module of a sentence-transformers model (a text `Transformer`) as an ONNX Runtime session.

    `token_embeddings(features)` takes the features of the model's own `preprocess` and returns what the
    torch module would put under "token_embeddings" (float32, batch x tokens x hidden). One session with
    `threads` intra-op threads; ONNX Runtime lets several Python threads run it at once (it releases
    the GIL), which is how passages use more cores than a one-thread session has.
    """

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(0, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = path
        self.threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]

    def token_embeddings(self, features: dict[str, Any]) -> np.ndarray:
        feed = {name: np.asarray(features[name].cpu().numpy(), dtype=np.int64) for name in self.input_names}
        return self.session.run(None, feed)[0]


def load_onnx_transformer(model: SentenceTransformer, name: str, threads: int) -> OnnxTransformer:
    """The cached export of `model` (exported now if absent), checked against torch. Raises OnnxUnavailable."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise OnnxUnavailable("the onnxruntime package is not installed (pip install onnxruntime)") from exc
    transformer = _text_transformer(model)
    folder = _model_folder(model, name)
    path = _export_path(folder, name)
    exported_now = not path.is_file()
    if exported_now:
        _export(model, transformer, path)
    try:
        encoder = OnnxTransformer(path, threads)
        cosine = _probe_cosine(model, encoder)
    except Exception as exc:  # noqa: BLE001 - a damaged file is exported again below
        if exported_now:
            raise OnnxUnavailable(f"the ONNX export {path} cannot be run: {exc}") from exc
        cosine = -1.0
    if cosine < MIN_COSINE and not exported_now:
        # A damaged file, or a hub model whose weights changed under the same name: export again once.
        _export(model, transformer, path)
        encoder = OnnxTransformer(path, threads)
        cosine = _probe_cosine(model, encoder)
    if cosine < MIN_COSINE:
        raise OnnxUnavailable(
            f"the ONNX export {path} gives other vectors than torch (cosine {cosine:.6f} < {MIN_COSINE})"
        )
    return encoder


def load_int8_query_transformer(model: SentenceTransformer, encoder: OnnxTransformer) -> OnnxTransformer:
    """The int8 copy of `encoder`'s export (made now if absent), checked against it. Raises OnnxUnavailable."""
    path = encoder.path.with_name(f"{encoder.path.stem}-int8q{INT8_FORMAT}.onnx")
    made_now = not path.is_file()
    if made_now:
        _quantize(encoder.path, path)
    try:
        quantized = OnnxTransformer(path, encoder.threads)
        cosine = _probe_cosine(model, quantized, reference=encoder)
    except Exception as exc:  # noqa: BLE001 - a damaged file is made again below
        if made_now:
            raise OnnxUnavailable(f"the int8 query copy {path} cannot be run: {exc}") from exc
        cosine = -1.0
    if cosine < MIN_INT8_COSINE and not made_now:  # damaged, or made from an older export: once more
        _quantize(encoder.path, path)
        quantized = OnnxTransformer(path, encoder.threads)
        cosine = _probe_cosine(model, quantized, reference=encoder)
    if cosine < MIN_INT8_COSINE:
        raise OnnxUnavailable(
            f"the int8 query copy {path} moves the vectors too far (cosine {cosine:.4f} < {MIN_INT8_COSINE})"
        )
    return quantized


def _quantize(
    source: Path,
    path: Path,
    float32_groups: tuple[str, ...] = ("layer.0",),
    per_channel: bool = True,
    reduce_range: bool = False,
) -> None:
    """Dynamic int8 quantisation of `source`'s MatMuls and fused attention but those of `float32_groups`
    (`float32_nodes`), written under a temporary name then renamed (an interrupted run never leaves a file
    that looks finished). The other arguments are `quantize_dynamic`'s (eval/benchmarks/query_int8.py
    compares them)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise OnnxUnavailable(f"the int8 query copy cannot be made: {exc}") from exc
    # Handed over loaded: given a path, the quantiser writes `<source>-inferred.onnx` beside it, and two
    # processes making their copy at once broke each other's (seen: "Failed to find proper ai.onnx domain").
    model = onnx.load(str(source))
    excluded = float32_nodes(model.graph, float32_groups)
    with (
        _written_whole(path, ".int8-", "the int8 query copy could not be made") as temporary,
        _errors_only(None),  # the quantiser warns on the root logger about pre-processing
    ):
        quantize_dynamic(
            model,
            temporary,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul", "Attention"],
            per_channel=per_channel,
            reduce_range=reduce_range,
            nodes_to_exclude=excluded,
            # Type inference stops at the fused Attention nodes (ONNX Runtime's own operator): every
            # tensor of this graph is float32 but the inputs' ids.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


def float32_nodes(graph: Any, groups: tuple[str, ...]) -> list[str]:
    """The names of `graph`'s (an export's) matrix products that `groups` name, kept in float32 by the int8
    copy. A group is a layer ("layer.0", "layer.11"; "last": the last one) or a kind of product in every
    layer: "qkv" (the query/key/value products, fused in Attention nodes), "attention-output",
    "intermediate" (the feed-forward's first product), "output" (its second)."""
    attention = [n.name for n in graph.node if n.op_type == "Attention"]
    matmuls = [n.name for n in graph.node if n.op_type == "MatMul" and "/layer." in n.name]
    layers = len(attention) or 1 + max((int(m.split("/layer.")[1].split("/")[0]) for m in matmuls), default=0)
    names: list[str] = []
    for group in groups:
        group = f"layer.{layers - 1}" if group == "last" else group
        if group.startswith("layer."):
            # A fused export (`_fuse_attention`) holds each layer's query/key/value products in an
            # Attention node, in layer order (the graph is sorted).
            index = int(group.removeprefix("layer."))
            names += [m for m in matmuls if f"/{group}/" in m] + attention[index : index + 1]
        elif group == "qkv":
            names += attention + [m for m in matmuls if "/attention/self/" in m]
        elif group == "attention-output":
            names += [m for m in matmuls if "/attention/output/" in m]
        elif group == "intermediate":
            names += [m for m in matmuls if "/intermediate/" in m]
        elif group == "output":
            names += [m for m in matmuls if "/output/dense/" in m and "/attention/" not in m]
        else:
            raise ValueError(f"unknown group of matrix products: {group!r}")
    return list(dict.fromkeys(names))


@contextlib.contextmanager
def _errors_only(logger_name: str | None) -> Iterator[None]:
    """The logger `logger_name` (None: the root logger) shows only errors within the block, then as it was."""
    import logging

    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _written_whole(path: Path, prefix: str, failure: str) -> Iterator[str]:
    """A temporary file name beside `path`, renamed to `path` when the block succeeds, removed otherwise, so
    that an interrupted write (Ctrl-C, a full disk) never leaves a file that looks finished. Any failure of
    the block becomes OnnxUnavailable(`failure`: first line of the error)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".onnx")
    except OSError as exc:  # a read-only or full cache folder: the caller falls back
        raise OnnxUnavailable(f"the ONNX export cannot be written in {path.parent}: {exc.strerror}") from exc
    os.close(handle)
    try:
        yield temporary
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the model folder's other files are not
        os.replace(temporary, path)
    except OnnxUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means "use the other path"
        raise OnnxUnavailable(f"{failure}: {str(exc).splitlines()[0][:200]}") from exc
    finally:
        Path(temporary).unlink(missing_ok=True)


def _text_transformer(model: SentenceTransformer) -> Any:
    from sentence_transformers.base.modules import Transformer
    from transformers import PreTrainedModel

    first = model[0]
    if not isinstance(first, Transformer) or not isinstance(getattr(first, "model", None), PreTrainedModel):
        raise OnnxUnavailable(f"the model's first module is a {type(first).__name__}, not a text Transformer")
    text = getattr(first, "modality_config", {}).get("text", {})
    if text.get("method", "forward") != "forward" or text.get("method_output_name") not in (
        None,
        "last_hidden_state",
    ):
        raise OnnxUnavailable(f"the model's transformer is called in a way the export does not cover: {text}")
    return first


def _model_folder(model: SentenceTransformer, name: str) -> Path | None:
    """The local folder the model was loaded from, or None for a hub model (its files are the hub cache's)."""
    folder = Path(name).expanduser()
    return (
        folder.resolve()
        if (folder / "modules.json").is_file() or (folder / "config.json").is_file()
        else None
    )


def _fingerprint(model_dir: Path | None, name: str) -> str:
    digest = hashlib.sha256(f"{EXPORT_FORMAT}\0{name}".encode())
    if model_dir is not None:
        for path in sorted(model_dir.iterdir()):
            if path.suffix in (".safetensors", ".bin") or path.name == "config.json":
                stat = path.stat()
                digest.update(f"\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def _export_path(model_dir: Path | None, name: str) -> Path:
    filename = f"rag-fr-{_fingerprint(model_dir, name)}.onnx"
    if model_dir is not None and os.access(model_dir, os.W_OK):
        return model_dir / "onnx" / filename
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in name.strip("/"))[-80:]
    return cache / "rag-fr" / "onnx" / slug / filename


def _export(model: SentenceTransformer, transformer: Any, path: Path) -> None:
    """torch.onnx.export of the transformer to `path`, written under a temporary name then renamed, so that
    an interrupted export (Ctrl-C, a full disk) never leaves a file that looks finished."""
    import torch

    try:
        import onnx  # noqa: F401 - torch's exporter needs it
    except ImportError as exc:
        raise OnnxUnavailable("the onnx package, needed once to export the model, is not installed") from exc
    features = model.preprocess(list(_PROBE_TEXTS[:2]), prompt=None)
    names = [key for key in _MODEL_INPUTS if key in features]
    hf_model = transformer.model

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf_model = hf_model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.hf_model(**dict(zip(names, inputs, strict=True)), return_dict=True).last_hidden_state

    print(f"Preparing the ONNX Runtime copy of the embedding model (once): {path}", file=sys.stderr)
    dynamic = {key: {0: "batch", 1: "tokens"} for key in [*names, "last_hidden_state"]}
    with _written_whole(path, ".export-", "the model could not be exported to ONNX") as temporary:
        import warnings

        with (
            _eager_attention(hf_model),
            torch.inference_mode(False),
            torch.no_grad(),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter(
                "ignore"
            )  # tracer warnings about shapes taken as constants: the probe checks
            torch.onnx.export(
                LastHiddenState().eval(),
                tuple(features[key] for key in names),
                temporary,
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
        _fuse_attention(temporary, hf_model.config)


@contextlib.contextmanager
def _eager_attention(hf_model: Any) -> Iterator[None]:
    """The model's attention written out as plain operations while it is exported, then as it was. Its
    default (PyTorch's scaled_dot_product_attention) is exported with IsNaN/Where nodes around the softmax,
    which keep ONNX Runtime from recognising the attention (`_fuse_attention`); the vectors are the same."""
    before = getattr(getattr(hf_model, "config", None), "_attn_implementation", None)
    setter = getattr(hf_model, "set_attn_implementation", None)
    changed = False
    if setter is not None and before not in (None, "eager"):
        try:
            setter("eager")
            changed = True
        except Exception:  # noqa: BLE001 - an architecture without it is exported as it is
            changed = False
    try:
        yield
    finally:
        if changed:
            setter(before)


def _fuse_attention(path: str, config: Any) -> None:
    """Each layer's attention in `path` (an export of a BERT-like encoder) replaced by ONNX Runtime's fused
    Attention operator, in place; the file is left as it is when the optimiser cannot (another architecture,
    an unknown graph). Only the attention: with SkipLayerNormalization and BiasGelu fused too (the
    optimiser's default for BERT), a batch of 8 questions cost 7 % more. multilingual-e5-small, one thread,
    259 golden and PIAF dev questions, CPU per question, the graphs alternated (load 13-23): alone 5-12 %
    less, in batches of 6 within noise (x0.98-1.01); largest difference of a kept token's vector 1.3e-6
    (eval/benchmarks/onnx_export.py; docs/figures-history.md, "The chat under load")."""
    model_type = getattr(config, "model_type", "")
    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    if model_type not in _FUSABLE or not heads or not hidden:
        return
    try:
        from onnxruntime.transformers.fusion_options import FusionOptions
        from onnxruntime.transformers.optimizer import optimize_model

        options = FusionOptions("bert")
        for name in _NOT_FUSED:
            setattr(options, name, False)
        with _errors_only("onnxruntime.transformers"):
            fused = optimize_model(
                path,
                model_type="bert",
                num_heads=int(heads),
                hidden_size=int(hidden),
                optimization_options=options,
                opt_level=0,
                use_gpu=False,
            )
        if not fused.get_fused_operator_statistics().get("Attention"):
            return
        fused.save_model_to_file(path)
    except Exception as exc:  # noqa: BLE001 - the unfused export is as valid, only slower
        print(f"ONNX attention fusion skipped: {str(exc).splitlines()[0][:200]}", file=sys.stderr)


#: Architectures whose exported encoder layers ONNX Runtime's BERT optimiser recognises.
_FUSABLE = ("bert", "xlm-roberta", "roberta", "camembert")
#: The optimiser's other fusions, left off (`_fuse_attention`).
_NOT_FUSED = (
    "enable_skip_layer_norm",
    "enable_bias_skip_layer_norm",
    "enable_bias_gelu",
    "enable_gelu",
    "enable_layer_norm",
    "enable_embed_layer_norm",
)


def _probe_cosine(
    model: SentenceTransformer, encoder: OnnxTransformer, reference: OnnxTransformer | None = None
) -> float:
    """Smallest cosine between the reference's token embeddings (torch's, or another export's) and the
    encoder's, mean-pooled, on the probe texts."""
    import torch

    features = model.preprocess(list(_PROBE_TEXTS), prompt=None)
    if reference is not None:
        expected = reference.token_embeddings(features)
    else:
        with torch.inference_mode():
            expected = model[0](dict(features))["token_embeddings"].float().numpy()
    found = encoder.token_embeddings(features)
    mask = features["attention_mask"].numpy()[..., None].astype(np.float32)
    pooled = [(hidden * mask).sum(1) / mask.sum(1) for hidden in (expected, found)]
    unit = [vectors / np.linalg.norm(vectors, axis=1, keepdims=True) for vectors in pooled]
    return float((unit[0] * unit[1]).sum(1).min())
