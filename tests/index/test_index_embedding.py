"""The embedder contract on the tiny real model, prompt rules, and the lexical fallback when loading fails."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from index.config import IndexConfig
from index.embedding import SentenceTransformerEmbedder, load_embedder, resolve_prompts, torch_threads


def test_embedder_contract(tiny_embedder) -> None:  # noqa: ANN001
    vectors = tiny_embedder.embed_passages(["Bonjour le monde.", "Le chat dort.", "x"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, tiny_embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = tiny_embedder.embed_query("Où dort le chat ?")
    assert query.shape == (tiny_embedder.dimension,) and np.isclose(np.linalg.norm(query), 1.0, atol=1e-5)
    assert tiny_embedder.embed_passages([]).shape == (0, tiny_embedder.dimension)
    assert tiny_embedder.count_tokens("le chat") == len(tiny_embedder.token_spans("le chat")) > 0
    assert tiny_embedder.count_tokens_batch(["le chat", ""]) == [tiny_embedder.count_tokens("le chat"), 0]


def test_progress_callback_keeps_row_order(tiny_embedder) -> None:  # noqa: ANN001
    texts = [f"phrase {'longue ' * (i % 7)} numéro {i}" for i in range(160)]
    seen: list[tuple[int, int]] = []
    sliced = tiny_embedder.embed_passages(
        texts, on_progress=lambda done, total, _: seen.append((done, total))
    )
    assert np.allclose(sliced, tiny_embedder.embed_passages(texts), atol=1e-5)
    assert seen[-1] == (160, 160) and len(seen) > 1


def test_batches_group_texts_of_like_token_counts(tiny_embedder, monkeypatch) -> None:  # noqa: ANN001
    """A batch is padded to its longest text: batches are cut from the texts ordered by model tokens, not
    characters (trailing spaces are characters and no token), and the vectors do not change."""
    short_words = "a b c d e f g h i j k l m n o p q r s t"  # one token per letter
    long_words = "anticonstitutionnellement extraordinairement"
    counts = tiny_embedder.count_tokens_batch([short_words, long_words])
    assert counts[0] != counts[1]
    # By characters the two kinds interleave (39-70 and 44-75 characters); by tokens they do not.
    texts = [(short_words if i % 2 else long_words) + " " * (i // 2) for i in range(64)]
    batches: list[list[str]] = []
    real_batch = tiny_embedder._embed_batch

    def spy(batch, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        batches.append(list(batch))
        return real_batch(batch, *args, **kwargs)

    tiny_embedder.batch_size = 32
    monkeypatch.setattr(tiny_embedder, "_embed_batch", spy)
    vectors = tiny_embedder.embed_passages(texts)
    assert len(batches) == 2
    assert all(len({text.strip() for text in batch}) == 1 for batch in batches)  # one kind per batch
    monkeypatch.setattr(tiny_embedder, "_embed_batch", real_batch)
    for i in (0, 1, 62, 63):
        assert np.allclose(vectors[i], tiny_embedder.embed_passages([texts[i]])[0], atol=1e-6)


def test_e5_prompts_are_applied(tiny_st_model_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "multilingual-e5-tiny"
    shutil.copytree(tiny_st_model_dir, folder)
    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(folder)))
    assert (embedder.query_prompt, embedder.passage_prompt) == ("query: ", "passage: ")
    raw = embedder.model.encode(["query: le chat"], normalize_embeddings=True)[0]
    assert np.allclose(embedder.embed_query("le chat"), raw, atol=1e-5)
    raw = embedder.model.encode(["passage: le chat"], normalize_embeddings=True)[0]
    assert np.allclose(embedder.embed_passages(["le chat"])[0], raw, atol=1e-5)


@pytest.mark.parametrize(("backend", "threads"), [("onnx", 1), ("onnx", 0), ("torch", 1), ("torch", 0)])
def test_query_path_gives_encodes_vectors(
    tiny_st_model_dir: Path, tmp_path: Path, backend: str, threads: int
) -> None:
    """The query path skips `encode()` but not its modules: same vectors, alone or batched with padding,
    whatever the thread count, with the transformer run by ONNX Runtime or torch."""
    import torch

    folder = tmp_path / "multilingual-e5-tiny"
    shutil.copytree(tiny_st_model_dir, folder)
    config = IndexConfig(
        embedding_model=str(folder),
        embedding_query_threads=threads,
        embedding_batch_size=2,
        embedding_backend=backend,
    )
    embedder = SentenceTransformerEmbedder(config)
    assert embedder.backend == backend
    questions = [
        "Où dort le chat ?",
        "Qui a écrit « Les Misérables » et en quelle année ?",
        "x",
        "Wer?",
        "a b",
    ]
    raw = embedder.model.encode([f"query: {q}" for q in questions], normalize_embeddings=True)
    threads_before = torch.get_num_threads()
    batched = embedder.embed_queries(questions)
    assert batched.dtype == np.float32 and batched.shape == (5, embedder.dimension)
    assert np.allclose(batched, raw, atol=1e-5)
    assert np.allclose(np.stack([embedder.embed_query(q) for q in questions]), raw, atol=1e-5)
    assert embedder.embed_queries([]).shape == (0, embedder.dimension)
    assert torch.get_num_threads() == threads_before


def test_questions_waiting_together_are_embedded_shortest_first_in_small_calls(
    tiny_st_model_dir: Path, monkeypatch
) -> None:  # noqa: ANN001
    """The query batcher's burst: calls of at most QUERY_CALL_SIZE questions of like lengths (a call pads each
    question to its longest), each question's encoding handed back in its place, the same as alone (float32
    questions; the int8 copy's: the next test)."""
    from index.embedding import QUERY_CALL_SIZE

    tiny_embedder = SentenceTransformerEmbedder(
        IndexConfig(embedding_model=str(tiny_st_model_dir), embedding_query_int8=False)
    )
    questions = [f"{'très ' * (n % 7)}question {n} ?" for n in range(2 * QUERY_CALL_SIZE + 3)]
    calls: list[list[str]] = []
    encode = tiny_embedder.encode_queries
    monkeypatch.setattr(
        tiny_embedder, "encode_queries", lambda texts: calls.append(list(texts)) or encode(texts)
    )
    encodings = tiny_embedder._encode_waiting_queries(questions)
    assert [len(call) for call in calls] == [QUERY_CALL_SIZE, QUERY_CALL_SIZE, 3]
    lengths = [[len(text) for text in call] for call in calls]
    assert all(max(earlier) <= min(later) for earlier, later in zip(lengths, lengths[1:], strict=False))
    alone = [encode([question])[0] for question in questions]
    assert len(encodings) == len(questions)
    for mine, reference in zip(encodings, alone, strict=True):
        assert np.allclose(mine.vector, reference.vector, atol=1e-6)
        assert np.allclose(mine.tokens.vectors, reference.tokens.vectors, atol=1e-6)
    calls.clear()
    tiny_embedder._encode_waiting_queries(questions[:2])
    assert calls == [questions[:2]]  # a few: one call, as they came


def test_int8_questions_waiting_together_are_embedded_one_per_call_as_alone(tiny_st_model_dir: Path) -> None:
    """The int8 copy scales each call's activations by their largest value: batched, a question's vector
    moved with its neighbours (~3e-4 per dimension), so an answer could depend on what others asked at the
    same moment. Through it, every question is a call of its own, in the burst and in `embed_queries`."""
    tiny_embedder = SentenceTransformerEmbedder(
        IndexConfig(embedding_model=str(tiny_st_model_dir), embedding_query_int8=True)
    )
    assert (
        tiny_embedder.query_onnx is not None
    )  # the int8 copy is made (onnxruntime's quantiser is a dependency)
    questions = [f"{'très ' * (n % 7)}question {n} ?" for n in range(11)]
    assert tiny_embedder.query_calls(questions) == [[i] for i in range(11)]
    alone = [tiny_embedder.encode_queries([question])[0] for question in questions]
    for mine, reference in zip(tiny_embedder._encode_waiting_queries(questions), alone, strict=True):
        assert np.array_equal(mine.vector, reference.vector)
        assert np.array_equal(mine.tokens.vectors, reference.tokens.vectors)
    together = tiny_embedder.embed_queries(questions)
    assert np.array_equal(together, np.stack([reference.vector for reference in alone]))


def test_torch_threads_is_restored_after_an_error() -> None:
    import torch

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError), torch_threads(before + 1):
        assert torch.get_num_threads() == before + 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with torch_threads(0):
        assert torch.get_num_threads() == before


def test_prompt_precedence() -> None:
    e5 = IndexConfig(embedding_model="intfloat/multilingual-e5-small")
    assert resolve_prompts(e5, None) == ("query: ", "passage: ")
    assert resolve_prompts(e5.model_copy(update={"query_prompt": ""}), None) == ("", "passage: ")
    own = {"query": "Represent the question: ", "document": ""}
    assert resolve_prompts(IndexConfig(embedding_model="org/other"), own) == ("Represent the question: ", "")
    assert resolve_prompts(IndexConfig(embedding_model="sentence-transformers/all-MiniLM-L6-v2"), {}) == (
        "",
        "",
    )


def test_models_own_prompts_are_used(tiny_st_model_dir: Path, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(tiny_st_model_dir), prompts={"query": "Q: ", "document": "D: "})
    model.save(str(tmp_path / "prompted"))
    embedder = SentenceTransformerEmbedder(IndexConfig(embedding_model=str(tmp_path / "prompted")))
    assert (embedder.query_prompt, embedder.passage_prompt) == ("Q: ", "D: ")


@pytest.mark.parametrize(
    "model", ["./no/such/folder", "intfloat/multilingual-e5-small", "not-a-real/model-xyz"]
)
def test_unloadable_model_means_lexical_with_one_warning(model: str, capsys, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # the hub is unreachable: must still be fast
    started = time.perf_counter()
    assert load_embedder(IndexConfig(embedding_model=model)) is None
    assert time.perf_counter() - started < 30
    err = capsys.readouterr().err
    assert err.count("Warning:") == 1 and model in err
    assert "RAG_INDEX__EMBEDDING_MODEL" in err and "lexical" in err


def test_folder_that_is_not_a_model(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    (tmp_path / "junk.txt").write_text("x", encoding="utf-8")
    assert load_embedder(IndexConfig(embedding_model=str(tmp_path))) is None
    assert str(tmp_path) in capsys.readouterr().err


def test_empty_model_name_is_lexical_without_warning(capsys) -> None:  # noqa: ANN001
    assert load_embedder(IndexConfig(embedding_model="")) is None
    assert capsys.readouterr().err == ""
