"""Token vectors kept at index time (index.tokens) for late interaction: stored compactly, incremental,
checked on open; the question's tokens come from its one query pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from index.build import build_index
from index.config import IndexConfig
from index.errors import IndexFormatError
from index.store import IndexStore
from index.tokens import TOKENS_FILE, TextTokens, TokenTable


def _config(tmp_path: Path, model: str) -> IndexConfig:
    return IndexConfig(index_dir=tmp_path / "index", embedding_model=model, show_progress=False)


def _unit(rng: np.random.Generator, count: int, dimension: int) -> np.ndarray:
    vectors = rng.normal(size=(count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _text_tokens(vectors: np.ndarray, first_id: int) -> TextTokens:
    count = len(vectors)
    offsets = np.stack([np.arange(count) * 3, np.arange(count) * 3 + 2], axis=1).astype(np.int32)
    ids = np.arange(first_id, first_id + count, dtype=np.int32)
    return TextTokens(vectors, offsets, ids, np.ones(count, dtype=bool))


def test_table_quantises_to_int8_and_round_trips(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    texts = [_text_tokens(_unit(rng, n, 16), 10 * i) for i, n in enumerate((3, 0, 5))]
    table = TokenTable.from_texts(texts, [100, 0, 7], 16)
    assert table.codes.dtype == np.int8 and table.bounds.tolist() == [0, 3, 3, 8]
    assert table.starts.tolist()[:3] == [100, 103, 106] and table.ends.tolist()[3] == 9
    restored = table.codes.astype(np.float32) * table.scales[:, None]
    original = np.concatenate([t.vectors for t in texts])
    assert np.all(np.sum(restored * original, axis=1) > 0.999)  # int8 + a scale per token: cosine kept
    table.save(tmp_path)
    loaded = TokenTable.load(tmp_path)
    assert loaded is not None and TokenTable.load(tmp_path / "none") is None
    assert np.array_equal(loaded.codes, table.codes) and np.array_equal(loaded.bounds, table.bounds)
    # Rows taken and appended keep each chunk's block.
    picked = table.take_rows(np.array([2, 0])).extended(table.take_rows(np.array([1])))
    assert picked.bounds.tolist() == [0, 5, 8, 8]
    assert np.array_equal(picked.ids, np.concatenate([texts[2].ids, texts[0].ids]))


def test_maxsim_is_each_question_tokens_best_cosine_weighed() -> None:
    rng = np.random.default_rng(1)
    chunks = [_unit(rng, 4, 8), _unit(rng, 6, 8)]
    table = TokenTable.from_texts([_text_tokens(c, 0) for c in chunks], [0, 0], 8)
    question = np.concatenate([chunks[1][2:3], _unit(rng, 1, 8)])
    weights = np.array([3.0, 1.0], dtype=np.float32)
    found = table.maxsim(question, weights, [0, 1])
    expected = [float(weights @ (question @ c.T).max(1) / weights.sum()) for c in chunks]
    assert found == pytest.approx(expected, abs=0.01)
    assert found[1] > found[0]  # the chunk holding the question's first token verbatim
    # Token 0 is in both chunks, token 5 in one only: the rarer weighs more.
    assert table.idf(np.array([5]))[0] > table.idf(np.array([0]))[0]


def test_tokens_come_from_the_pass_that_embeds(tiny_embedder) -> None:  # noqa: ANN001
    texts = ["Paris est la capitale de la France.", "Lyon est connue pour sa gastronomie !"]
    vectors, tokens = tiny_embedder.embed_passages_with_tokens(texts)
    assert np.allclose(vectors, tiny_embedder.embed_passages(texts), atol=1e-6)
    assert tokens is not None and len(tokens) == 2
    for text, found in zip(texts, tokens, strict=True):
        pieces = [text[a:b] for a, b in found.offsets.tolist()]
        assert "".join(pieces).replace(" ", "") == text.replace(" ", "")  # every token, no prompt
        assert found.vectors.dtype == np.int8 and found.scales is not None  # quantised as they are stored
        restored = found.vectors.astype(np.float32) * found.scales[:, None]
        assert np.allclose(np.linalg.norm(restored, axis=1), 1.0, atol=0.01)
        assert found.words.tolist() == [any(ch.isalnum() for ch in p) for p in pieces]
    encoding = tiny_embedder.encode_query("Quelle est la capitale de la France ?")
    assert np.allclose(encoding.vector, tiny_embedder.embed_query("Quelle est la capitale de la France ?"))
    assert encoding.tokens is not None and not encoding.tokens.words[-1]  # "?" is no word
    assert np.allclose(np.linalg.norm(encoding.tokens.vectors, axis=1), 1.0, atol=1e-5)


def _tokens_by_chunk(store: IndexStore) -> dict[str, tuple]:
    table = store.token_table
    assert table is not None
    out = {}
    for row, chunk in enumerate(store.chunks):
        block = slice(table.bounds[row], table.bounds[row + 1])
        out[chunk.chunk_id] = (table.ids[block].tolist(), table.starts[block].tolist(), table.codes[block])
    return out


def test_an_update_keeps_each_chunks_tokens_as_a_full_build_gives_them(
    tmp_path: Path,
    corpus: Path,
    counting_embedder,  # noqa: ANN001
) -> None:
    config = _config(tmp_path, counting_embedder.name)
    build_index([corpus], config, embedder=counting_embedder)
    (corpus / "paris.txt").write_text(
        "Paris compte deux millions d’habitants. Elle est grande.", encoding="utf-8"
    )
    counting_embedder.embedded.clear()
    build_index([], config, embedder=counting_embedder)
    assert counting_embedder.embedded and all("Berlin" not in t for t in counting_embedder.embedded)
    updated = IndexStore.open(config.index_dir, embedder=counting_embedder)
    fresh_config = IndexConfig(
        index_dir=tmp_path / "fresh", embedding_model=counting_embedder.name, show_progress=False
    )
    build_index([corpus], fresh_config, embedder=counting_embedder)
    fresh = IndexStore.open(fresh_config.index_dir, embedder=counting_embedder)
    ours, theirs = _tokens_by_chunk(updated), _tokens_by_chunk(fresh)
    assert ours.keys() == theirs.keys()
    for chunk_id, (ids, starts, codes) in ours.items():
        assert (ids, starts) == theirs[chunk_id][:2]
        assert np.abs(codes.astype(int) - theirs[chunk_id][2].astype(int)).max(initial=0) <= 1
    for row, chunk in enumerate(updated.chunks):  # each token lies inside its chunk, on its text
        block = slice(updated.token_table.bounds[row], updated.token_table.bounds[row + 1])
        assert all(chunk.start <= s for s in updated.token_table.starts[block])
        assert all(e <= chunk.end for e in updated.token_table.ends[block])


def test_an_index_without_tokens_opens_and_the_next_run_adds_them(
    tmp_path: Path,
    corpus: Path,
    counting_embedder,  # noqa: ANN001
) -> None:
    config = _config(tmp_path, counting_embedder.name)
    first = build_index([corpus], config, embedder=counting_embedder)
    store = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert store.token_table is not None
    assert store.token_maxsim("capitale de la France", [0, 1]).shape == (2,)
    (store.generation / TOKENS_FILE).unlink()  # as an index of before token vectors
    old = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert old.token_table is None and old.token_maxsim("capitale", [0]) is None
    counting_embedder.embedded.clear()
    report = build_index([], config, embedder=counting_embedder)
    assert report.written and report.embedded_chunks == first.chunks
    assert any("token vectors" in m for m in report.messages)
    assert IndexStore.open(config.index_dir, embedder=counting_embedder).token_table is not None


def test_a_damaged_tokens_file_is_named(tmp_path: Path, corpus: Path, tiny_embedder) -> None:  # noqa: ANN001
    config = _config(tmp_path, tiny_embedder.name)
    build_index([corpus], config, embedder=tiny_embedder)
    generation = IndexStore.open(config.index_dir, embedder=tiny_embedder).generation
    with np.load(generation / TOKENS_FILE) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["starts"] = arrays["starts"] + 10_000  # tokens outside their chunks
    (generation / TOKENS_FILE).unlink()
    np.savez(generation / TOKENS_FILE, **arrays)
    with pytest.raises(IndexFormatError, match="tokens.npz has a token outside its chunk.*--rebuild"):
        IndexStore.open(config.index_dir, embedder=tiny_embedder)
    (generation / TOKENS_FILE).write_bytes(b"not a zip")
    with pytest.raises(IndexFormatError, match="tokens.npz cannot be read"):
        IndexStore.open(config.index_dir, embedder=tiny_embedder)


def test_lexical_mode_stores_no_tokens(tmp_path: Path, corpus: Path) -> None:
    config = _config(tmp_path, "")
    build_index([corpus], config, embedder=None)
    store = IndexStore.open(config.index_dir, config=config, load_model=False)
    assert store.token_table is None and not (store.generation / TOKENS_FILE).exists()


def test_token_vectors_off_builds_an_index_without_them(
    tmp_path: Path,
    corpus: Path,
    counting_embedder,  # noqa: ANN001
) -> None:
    config = _config(tmp_path, counting_embedder.name).model_copy(update={"token_vectors": False})
    report = build_index([corpus], config, embedder=counting_embedder)
    store = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert report.chunks and store.mode == "hybrid" and store.vector_index.ntotal == report.chunks
    assert store.token_table is None and not (store.generation / TOKENS_FILE).exists()
    assert store.token_maxsim("capitale de la France", [0]) is None
    # An update stays without them, and embeds only the changed file.
    (corpus / "paris.txt").write_text("Paris compte deux millions d’habitants.", encoding="utf-8")
    counting_embedder.embedded.clear()
    build_index([], config, embedder=counting_embedder)
    assert counting_embedder.embedded and all("Berlin" not in t for t in counting_embedder.embedded)
    assert IndexStore.open(config.index_dir, embedder=counting_embedder).token_table is None


def test_turning_token_vectors_off_then_on_again(
    tmp_path: Path,
    corpus: Path,
    counting_embedder,  # noqa: ANN001
) -> None:
    on = _config(tmp_path, counting_embedder.name)
    off = on.model_copy(update={"token_vectors": False})
    first = build_index([corpus], on, embedder=counting_embedder)
    before = IndexStore.open(on.index_dir, embedder=counting_embedder)
    assert before.token_table is not None
    # Off, nothing else changed: a new generation without them, nothing embedded, every chunk kept.
    counting_embedder.embedded.clear()
    report = build_index([], off, embedder=counting_embedder)
    assert report.written and report.embedded_chunks == 0 and not counting_embedder.embedded
    assert any("index.token_vectors" in m for m in report.messages)
    dropped = IndexStore.open(off.index_dir, embedder=counting_embedder)
    assert dropped.token_table is None and not (dropped.generation / TOKENS_FILE).exists()
    assert [c.chunk_id for c in dropped.chunks] == [c.chunk_id for c in before.chunks]
    np.testing.assert_array_equal(dropped.stored_vectors(), before.stored_vectors())
    assert not build_index([], off, embedder=counting_embedder).written  # then nothing to do
    # On again: every chunk is embedded once more to add them.
    counting_embedder.embedded.clear()
    again = build_index([], on, embedder=counting_embedder)
    assert again.written and again.embedded_chunks == first.chunks
    assert any("token vectors" in m for m in again.messages)
    restored = IndexStore.open(on.index_dir, embedder=counting_embedder)
    assert restored.token_table is not None and restored.token_table.chunk_count == first.chunks
    assert not build_index([], on, embedder=counting_embedder).written


def test_only_word_pieces_are_stored() -> None:
    rng = np.random.default_rng(2)
    text = _text_tokens(_unit(rng, 4, 8), 0)
    text = TextTokens(text.vectors, text.offsets, text.ids, np.array([True, False, True, False]))
    table = TokenTable.from_texts([text], [0], 8)
    assert table.ids.tolist() == [0, 2] and table.bounds.tolist() == [0, 2]


def _low_rank_tokens(rng: np.random.Generator, count: int, dimension: int, rank: int) -> np.ndarray:
    """Unit vectors that lie mostly in a `rank`-dimensional subspace (token vectors are anisotropic)."""
    directions = np.linalg.qr(rng.normal(size=(dimension, dimension)))[0][:, :rank]
    vectors = rng.normal(size=(count, rank)) @ directions.T + 0.02 * rng.normal(size=(count, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_a_large_table_is_projected_on_its_principal_directions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import index.tokens as tokens_module

    monkeypatch.setattr(tokens_module, "BASIS_DIMENSION", 8)
    monkeypatch.setattr(tokens_module, "PROJECT_FROM_TOKENS", 100)
    rng = np.random.default_rng(3)
    vectors = _low_rank_tokens(rng, 400, 64, 6)
    texts = [_text_tokens(vectors[i : i + 20], i) for i in range(0, 400, 20)]
    table = TokenTable.from_texts(texts, [0] * 20, 64)
    small = table.take_rows(np.arange(4))  # 80 tokens: below the threshold, kept as they are
    assert small.compacted() is small and small.basis is None
    compact = table.compacted()
    assert compact.basis is not None and compact.basis.shape == (64, 8) and compact.codes.shape == (400, 8)
    assert compact.dimension == 64 and compact.compacted() is compact
    question, weights = vectors[[5, 250]] + 0.1 * _low_rank_tokens(rng, 2, 64, 6), np.ones(2, np.float32)
    question /= np.linalg.norm(question, axis=1, keepdims=True)
    exact, projected = (
        table.maxsim(question, weights, range(20)),
        compact.maxsim(question, weights, range(20)),
    )
    assert np.abs(exact - projected).max() < 0.03 and np.argmax(projected) == np.argmax(exact)
    # On disk with its basis; checked against the model's dimension; read back the same.
    compact.save(tmp_path)
    loaded = TokenTable.load(tmp_path)
    assert loaded is not None and np.array_equal(loaded.basis, compact.basis)
    spans = np.array([[0, 10_000]] * 20)
    assert loaded.fault(spans, 64) is None
    assert "projection" in loaded.fault(spans, 32)
    # New chunks' tokens join the table through its basis, as if they had been projected with it.
    joined = compact.take_rows(np.arange(10)).extended(table.take_rows(np.arange(10, 20)))
    assert np.array_equal(joined.basis, compact.basis)
    assert np.abs(joined.codes.astype(int) - compact.codes.astype(int)).max() <= 1


def test_an_index_projects_its_tokens_once_and_updates_through_the_same_basis(
    tmp_path: Path,
    corpus: Path,
    counting_embedder,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import index.tokens as tokens_module

    config = _config(tmp_path, counting_embedder.name)
    build_index([corpus], config, embedder=counting_embedder)
    exact = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert exact.token_table.basis is None  # a small index: its tokens as the model gives them
    question = "Quelle est la capitale de la France ?"
    rows = list(range(len(exact.chunks)))
    before = exact.token_maxsim(question, rows)
    # A table large enough (as an index of the code before the projection grows): projected at the next write.
    monkeypatch.setattr(tokens_module, "BASIS_DIMENSION", 24)
    monkeypatch.setattr(tokens_module, "PROJECT_FROM_TOKENS", 10)
    (corpus / "rome.txt").write_text("Rome est la capitale de l’Italie.", encoding="utf-8")
    counting_embedder.embedded.clear()
    build_index([], config, embedder=counting_embedder)
    assert counting_embedder.embedded and all("Berlin" not in t for t in counting_embedder.embedded)
    grown = IndexStore.open(config.index_dir, embedder=counting_embedder)
    basis = grown.token_table.basis
    assert basis is not None and basis.shape == (counting_embedder.dimension, 24)
    kept = [grown.chunk_index(c.chunk_id) for c in exact.chunks]
    assert np.abs(grown.token_maxsim(question, kept) - before).max() < 0.05
    # The next update projects its new tokens on the same basis.
    (corpus / "paris.txt").write_text("Paris compte deux millions d’habitants.", encoding="utf-8")
    build_index([], config, embedder=counting_embedder)
    updated = IndexStore.open(config.index_dir, embedder=counting_embedder)
    assert np.array_equal(updated.token_table.basis, basis)
    assert updated.token_maxsim(question, [0, 1]).shape == (2,)


def test_the_questions_tokens_are_projected_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    # A small product shared between OpenBLAS's threads cost ~18 ms of CPU instead of ~0.05 on a busy machine
    # (the threads wait for each other): the projection runs inside `one_blas_thread` with the product it feeds.
    from threadpoolctl import threadpool_info

    import index.tokens as tokens_module

    monkeypatch.setattr(tokens_module, "BASIS_DIMENSION", 8)
    monkeypatch.setattr(tokens_module, "PROJECT_FROM_TOKENS", 100)
    rng = np.random.default_rng(5)
    vectors = _low_rank_tokens(rng, 400, 64, 6)
    table = TokenTable.from_texts(
        [_text_tokens(vectors[i : i + 20], i) for i in range(0, 400, 20)], [0] * 20, 64
    )
    compact = table.compacted()
    assert compact.basis is not None
    threads_seen: list[list[int]] = []
    project = TokenTable.project

    def spying(self: TokenTable, question: np.ndarray) -> np.ndarray:
        threads_seen.append([lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"])
        return project(self, question)

    monkeypatch.setattr(TokenTable, "project", spying)
    compact.maxsim(vectors[[3, 7]], np.ones(2, np.float32), range(20))
    compact.best_per_token(vectors[[3]], [np.arange(5), np.zeros(0, np.int64), np.arange(40, 60)])
    assert len(threads_seen) == 2 and all(count == 1 for seen in threads_seen for count in seen)


def test_whole_table_similarities_give_each_spans_best_as_its_own_product() -> None:
    # `similarities` (a small table, once per question) and the product over a span's own tokens give the
    # same best cosines to float32 rounding; `best_in_groups` is `best_per_token` of concatenated spans.
    rng = np.random.default_rng(7)
    vectors = _low_rank_tokens(rng, 300, 32, 8)
    table = TokenTable.from_texts(
        [_text_tokens(vectors[i : i + 30], i) for i in range(0, 300, 30)], [0] * 10, 32
    )
    question = vectors[[4, 50, 299]]
    spans = [np.arange(0, 30), np.zeros(0, np.int64), np.array([5, 5, 280, 17]), np.arange(100, 290)]
    plain = table.best_per_token(question, spans)
    whole = table.best_per_token(question, spans, table.similarities(question))
    np.testing.assert_allclose(whole, plain, atol=2e-6)
    assert table.similarities(question).shape == (3, len(table)) and whole[:, 1].tolist() == [0.0] * 3
    lengths = np.array([len(s) for s in spans])
    grouped = table.best_in_groups(question, np.concatenate(spans), lengths)
    np.testing.assert_array_equal(grouped, plain)
    rows = [3, 0, 9]
    np.testing.assert_allclose(
        table.maxsim(question, np.ones(3, np.float32), rows, table.similarities(question)),
        table.maxsim(question, np.ones(3, np.float32), rows),
        atol=2e-6,
    )
