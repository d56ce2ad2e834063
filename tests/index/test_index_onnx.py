"""The ONNX Runtime path of the embedder (index/onnx_encoder.py) on the tiny real model: the same vectors as
torch for passages, an export made once and reused, a damaged export replaced, and the fallbacks."""

from __future__ import annotations

import builtins
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from index.config import IndexConfig
from index.embedding import SentenceTransformerEmbedder, load_embedder
from index.errors import EmbeddingUnavailable

TEXTS = [
    "Paris est la capitale de la France. La tour Eiffel y fut construite en 1889.",
    "Le chat dort.",
    "x",
    "Berlin is the capital of Germany. The wall fell in 1989, and the city was reunited the next year.",
    "Der Hund schläft.",
]


@pytest.fixture
def model_copy(tiny_st_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model: its ONNX export is written beside it."""
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_st_model_dir, folder, ignore=shutil.ignore_patterns("onnx"))
    return folder


def _embedder(folder: Path, backend: str, **settings: object) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(
        IndexConfig(embedding_model=str(folder), embedding_backend=backend, **settings)
    )


def test_onnx_passages_are_torchs_vectors_in_any_batching(model_copy: Path) -> None:
    """Batches of sorted lengths run side by side on threads: rows stay in order, vectors stay torch's."""
    onnx = _embedder(model_copy, "onnx", embedding_batch_size=2)
    torch_embedder = _embedder(model_copy, "torch", embedding_batch_size=2)
    assert (onnx.backend, torch_embedder.backend) == ("onnx", "torch")
    onnx._workers = 3  # more threads than this machine may have cores: order must not depend on it
    reference = torch_embedder.model.encode(TEXTS, normalize_embeddings=True)
    seen: list[tuple[int, int]] = []
    vectors = onnx.embed_passages(TEXTS, on_progress=lambda done, total, _stage: seen.append((done, total)))
    assert vectors.dtype == np.float32 and vectors.shape == (len(TEXTS), onnx.dimension)
    assert np.min(np.sum(vectors * reference, axis=1)) > 0.9999
    assert np.allclose(torch_embedder.embed_passages(TEXTS), reference, atol=1e-5)
    assert seen[-1] == (len(TEXTS), len(TEXTS)) and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_export_is_made_once_beside_the_model_and_reused(
    model_copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _embedder(model_copy, "onnx")
    assert "Preparing the ONNX Runtime copy" in capsys.readouterr().err
    exports = [p for p in (model_copy / "onnx").glob("rag-fr-*.onnx") if "-int8q" not in p.name]
    assert exports == [first.onnx.path]
    mtime = exports[0].stat().st_mtime_ns
    second = _embedder(model_copy, "auto")
    assert second.backend == "onnx" and second.onnx.path == exports[0]
    assert exports[0].stat().st_mtime_ns == mtime and "Preparing" not in capsys.readouterr().err
    assert not list((model_copy / "onnx").glob(".export-*")), "no temporary file is left behind"


def test_export_fuses_the_attention_and_gives_torchs_vectors(model_copy: Path) -> None:
    """Each layer's attention is one fused ONNX Runtime operator (no IsNaN/Where of the default attention's
    export); questions of unequal lengths, batched (padding), get the vectors torch gives each alone; the
    model's own attention is left as it was."""
    import onnx

    embedder = _embedder(model_copy, "onnx")
    graph = onnx.load(str(embedder.onnx.path), load_external_data=False).graph
    kinds = [node.op_type for node in graph.node]
    assert kinds.count("Attention") == 2 and "IsNaN" not in kinds  # the tiny model's two layers
    assert embedder.model[0].model.config._attn_implementation != "eager"
    torch_embedder = _embedder(model_copy, "torch")
    questions = ["Où dort le chat ?", "x", "Who leads the company, and since when? A longer question here."]
    batched = embedder.embed_queries(questions)
    alone = np.stack([torch_embedder.embed_query(q) for q in questions])
    assert np.abs(batched - alone).max() < 1e-5


def test_export_unfused_when_the_optimiser_fails(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A graph the optimiser cannot handle keeps its plain export: ONNX Runtime still runs it."""
    import onnx

    def failing(*args: object, **kwargs: object) -> None:
        raise ValueError("cannot fuse this graph")

    monkeypatch.setattr("onnxruntime.transformers.optimizer.optimize_model", failing)
    embedder = _embedder(model_copy, "onnx")
    assert "attention fusion skipped: cannot fuse this graph" in capsys.readouterr().err
    kinds = [node.op_type for node in onnx.load(str(embedder.onnx.path), load_external_data=False).graph.node]
    assert "Attention" not in kinds and "Softmax" in kinds
    reference = embedder.model.encode(TEXTS, normalize_embeddings=True)
    assert np.min(np.sum(embedder.embed_passages(TEXTS) * reference, axis=1)) > 0.9999


def test_damaged_export_is_replaced(model_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _embedder(model_copy, "onnx").onnx.path
    path.write_bytes(b"not an onnx model")
    capsys.readouterr()
    embedder = _embedder(model_copy, "onnx")
    assert "Preparing the ONNX Runtime copy" in capsys.readouterr().err
    query = embedder.embed_query("Où dort le chat ?")
    reference = embedder.model.encode(["Où dort le chat ?"], normalize_embeddings=True)[0]
    assert float(query @ reference) > 0.9999


def test_changed_weights_get_a_new_export(model_copy: Path) -> None:
    old = _embedder(model_copy, "onnx").onnx.path
    weights = next(model_copy.glob("*.safetensors"))
    weights.touch()  # a replaced weights file: its size or time differs
    new = _embedder(model_copy, "onnx").onnx.path
    assert new != old and new.is_file()


def test_unwritable_model_folder_exports_to_the_user_cache(
    model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("index.onnx_encoder.os.access", lambda _path, _mode: False)
    path = _embedder(model_copy, "onnx").onnx.path
    assert path.is_relative_to(tmp_path / "cache" / "rag-fr" / "onnx")
    assert not (model_copy / "onnx").exists()


def test_export_folder_that_cannot_be_written_falls_back_to_torch(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def read_only(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("index.onnx_encoder.tempfile.mkstemp", read_only)
    embedder = _embedder(model_copy, "auto")
    assert embedder.backend == "torch"
    assert "cannot be written" in capsys.readouterr().err
    with pytest.raises(EmbeddingUnavailable, match="cannot be written.*RAG_INDEX__EMBEDDING_BACKEND=torch"):
        _embedder(model_copy, "onnx")


def _without_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args: object, **kwargs: object) -> object:
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)


def test_without_onnxruntime_auto_uses_torch_quietly(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_onnxruntime(monkeypatch)
    embedder = _embedder(model_copy, "auto")
    assert embedder.backend == "torch" and embedder.onnx is None
    assert capsys.readouterr().err == ""
    reference = embedder.model.encode(TEXTS, normalize_embeddings=True)
    assert np.allclose(embedder.embed_passages(TEXTS), reference, atol=1e-5)


def test_onnx_asked_for_without_onnxruntime_names_the_fix(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_onnxruntime(monkeypatch)
    with pytest.raises(
        EmbeddingUnavailable, match="pip install onnxruntime.*RAG_INDEX__EMBEDDING_BACKEND=torch"
    ):
        _embedder(model_copy, "onnx")
    config = IndexConfig(embedding_model=str(model_copy), embedding_backend="onnx")
    assert load_embedder(config) is None  # lexical mode, after one warning that says why
    assert "onnxruntime" in capsys.readouterr().err


def test_export_that_disagrees_with_torch_is_not_used(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("index.onnx_encoder.MIN_COSINE", 1.5)  # no export can pass: as if it were wrong
    embedder = _embedder(model_copy, "auto")
    assert embedder.backend == "torch"
    assert "gives other vectors than torch" in capsys.readouterr().err


def test_torch_backend_never_exports(model_copy: Path) -> None:
    assert _embedder(model_copy, "torch").onnx is None
    assert not (model_copy / "onnx").exists()


def test_questions_use_an_int8_copy_made_once_close_to_float32(model_copy: Path) -> None:
    """Questions go through the int8 copy (beside the export, reused); passages stay the float32 vectors."""
    from index.onnx_encoder import MIN_INT8_COSINE

    embedder = _embedder(model_copy, "onnx", embedding_query_int8=True)
    assert embedder.query_onnx is not None and embedder.query_onnx.path.parent == embedder.onnx.path.parent
    made = embedder.query_onnx.path.stat().st_mtime_ns
    questions = ["Où dort le chat ?", "Who leads the company, and since when?", "Wer leitet das Unternehmen?"]
    int8 = embedder.embed_queries(questions)
    float32 = embedder._embed_all(questions, embedder.query_prompt)  # the float32 export
    cosines = np.sum(int8 * float32, axis=1)
    assert np.all(cosines >= MIN_INT8_COSINE)
    reference = embedder.model.encode(TEXTS, normalize_embeddings=True)
    assert np.min(np.sum(embedder.embed_passages(TEXTS) * reference, axis=1)) > 0.9999
    again = _embedder(model_copy, "auto", embedding_query_int8=True)
    assert again.query_onnx.path == embedder.query_onnx.path
    assert again.query_onnx.path.stat().st_mtime_ns == made
    assert not list(embedder.onnx.path.parent.glob(".int8-*")), "no temporary file is left behind"


def test_int8_copy_that_moves_the_vectors_too_far_is_not_used(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("index.onnx_encoder.MIN_INT8_COSINE", 1.5)  # no copy can pass: as if it were wrong
    embedder = _embedder(model_copy, "auto", embedding_query_int8=True)
    assert embedder.backend == "onnx" and embedder.query_onnx is None
    assert "questions embedded in float32" in capsys.readouterr().err
    question = "Où dort le chat ?"
    reference = embedder.model.encode([embedder.query_prompt + question], normalize_embeddings=True)[0]
    assert float(embedder.embed_query(question) @ reference) > 0.9999


def test_int8_questions_are_off_by_default_and_make_no_copy(model_copy: Path) -> None:
    embedder = _embedder(model_copy, "onnx")
    assert embedder.query_onnx is None
    assert not list(embedder.onnx.path.parent.glob("*-int8q*"))
