"""The embedding model's transformer run by ONNX Runtime: exported once, cached, checked against torch.

Why: one ~16-token question through multilingual-e5-small's 12 layers is a chain of small matrix
products; torch spends most of that call dispatching them, ONNX Runtime runs the same graph with fused
kernels (eval/benchmarks/query_embedding.py prints both side by side). Only the transformer, the heavy
module, moves: tokenisation (the model's own `preprocess`), pooling and normalisation stay the model's own
sentence-transformers modules, so prompts, truncation and pooling cannot drift from the torch path.

The export (`torch.onnx.export` of the model's own weights, the `onnx` package needed for it) runs once per
model on first use and is cached: beside a local model folder (`<folder>/onnx/rag-fr-<fingerprint>.onnx`),
or under `$XDG_CACHE_HOME/rag-fr/onnx/` for a hub model or a folder that cannot be written. The
fingerprint covers the weight files and config, so replaced weights are exported again. Before it is used,
an export must give the torch path's vectors (cosine >= `MIN_COSINE` on a probe batch of unequal lengths):
an index built with either path stays valid with the other. Any failure (package missing, an architecture
the exporter cannot trace, a mismatch) leaves the torch path in charge; `OnnxUnavailable` says why.

This module must not decide when ONNX is used: `index.config.IndexConfig.embedding_backend` does, read by
`index.embedding`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Exported graph layout; bump it when the export changes so that old files are not reused.
EXPORT_FORMAT = 1
#: Smallest cosine between an export's vectors and torch's on the probe batch for the export to be used.
MIN_COSINE = 0.9999
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
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".export-", suffix=".onnx")
    except OSError as exc:  # a read-only or full cache folder: torch runs the model instead
        raise OnnxUnavailable(f"the ONNX export cannot be written in {path.parent}: {exc.strerror}") from exc
    os.close(handle)
    dynamic = {key: {0: "batch", 1: "tokens"} for key in [*names, "last_hidden_state"]}
    try:
        import warnings

        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
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
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the model folder's other files are not
        os.replace(temporary, path)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "use torch"
        raise OnnxUnavailable(
            f"the model could not be exported to ONNX: {str(exc).splitlines()[0][:200]}"
        ) from exc
    finally:
        Path(temporary).unlink(missing_ok=True)


def _probe_cosine(model: SentenceTransformer, encoder: OnnxTransformer) -> float:
    """Smallest cosine between the torch and the ONNX token embeddings, mean-pooled, on the probe texts."""
    import torch

    features = model.preprocess(list(_PROBE_TEXTS), prompt=None)
    with torch.inference_mode():
        expected = model[0](dict(features))["token_embeddings"].float().numpy()
    found = encoder.token_embeddings(features)
    mask = features["attention_mask"].numpy()[..., None].astype(np.float32)
    pooled = [(hidden * mask).sum(1) / mask.sum(1) for hidden in (expected, found)]
    unit = [vectors / np.linalg.norm(vectors, axis=1, keepdims=True) for vectors in pooled]
    return float((unit[0] * unit[1]).sum(1).min())
