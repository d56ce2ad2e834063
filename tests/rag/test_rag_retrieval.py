"""Retrieval: fusion, merging of overlapping/adjacent chunks, cross-lingual expansion, LangChain adapter."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from rag_fakes import FakeStore, sentence_spans

from index.lexical import analyze
from index.records import Chunk
from rag.retrieval import (
    HybridRetriever,
    PassageRetriever,
    late_rescore,
    merge_chunks,
    min_max,
    rrf_fuse,
    weighted_fuse,
)
from rag.settings import RetrievalSettings

TEXT = (
    "Le port de Brest accueille des navires depuis le Moyen Âge. "
    "La rade de Brest est une des plus grandes d'Europe. "
    "Le pont de Recouvrance relie les deux rives de la Penfeld. "
    "Le château de Brest abrite le musée national de la Marine. "
    "La ville a été reconstruite après la Seconde Guerre mondiale."
)


def _chunk(doc_id: str, text: str, start: int, end: int, ordinal: int) -> Chunk:
    return Chunk(
        f"{doc_id}-{ordinal}", doc_id, f"/docs/{doc_id}", doc_id, text[start:end], start, end, ordinal
    )


def test_rrf_and_weighted_fusion() -> None:
    rankings = {"dense": [(1, 0.9), (2, 0.5)], "lexical": [(2, 12.0), (3, 4.0)]}
    rrf = rrf_fuse(rankings, k=60)
    assert rrf[2] == pytest.approx(1 / 62 + 1 / 61)
    assert max(rrf, key=rrf.get) == 2  # found by both
    weighted = weighted_fuse(rankings, {"dense": 1.0, "lexical": 0.5})
    assert weighted[1] == pytest.approx(1.0)  # best dense, absent from lexical
    assert weighted[2] == pytest.approx(0.0 + 0.5 * 1.0)
    assert weighted[3] == pytest.approx(0.0)


def test_a_span_floor_keeps_scores_that_barely_differ_close() -> None:
    assert min_max([0.84, 0.83, 0.815]) == pytest.approx([1.0, 0.6, 0.0])  # 0.025 stretched to 0..1
    assert min_max([0.84, 0.83, 0.815], 0.05) == pytest.approx([0.5, 0.3, 0.0])  # floored: half the weight
    assert min_max([0.9, 0.8, 0.7], 0.05) == pytest.approx([1.0, 0.5, 0.0])  # a wider span is as before
    assert min_max([0.4, 0.4]) == [1.0, 1.0] and min_max([0.4, 0.4], equal=0.0) == [0.0, 0.0]
    assert min_max([0.4, 0.4], 0.05) == [0.0, 0.0] and min_max([]) == []
    # In the fusion: the floor applies to the rankings named, BM25 keeps its min-max.
    rankings = {"dense": [(1, 0.84), (2, 0.815)], "lexical": [(2, 12.0), (1, 4.0)]}
    assert weighted_fuse(rankings, {}) == pytest.approx({1: 1.0, 2: 1.0})
    floored = weighted_fuse(rankings, {}, {"dense": 0.05})
    assert floored == pytest.approx({1: 0.5, 2: 1.0})  # the lexical winner wins
    # Late interaction: MaxSim spread 0.02 under a floor of 0.05 weighs 3 x 0.4, not 3 x 1.
    fused = [(1, 1.0), (2, 0.5)]
    assert late_rescore(fused, [0.80, 0.82], 3.0) == [(2, pytest.approx(3.5)), (1, 1.0)]
    assert late_rescore(fused, [0.80, 0.82], 3.0, 0.05) == [(2, pytest.approx(1.7)), (1, 1.0)]


def test_the_retriever_floors_the_cosine_rankings_only() -> None:
    settings = RetrievalSettings(cosine_span_floor=0.05)
    retriever = HybridRetriever(FakeStore({"a.txt": "a", "b.txt": "b"}), settings, expander=lambda *a: "")
    rankings = {
        "lexical": [(0, 6.0), (1, 2.0)],
        "dense": [(1, 0.84), (0, 0.815)],
        "sentence": [(1, 0.85), (0, 0.83)],
        "coverage": [(0, 0.3), (1, 0.05)],
    }
    fused = dict(retriever.fuse(rankings))
    assert fused[0] == pytest.approx(1.0 + 1.5 * 0.3)  # BM25 still 0..1
    assert fused[1] == pytest.approx(0.5 + 2.0 * 0.4 + 1.5 * 0.05)  # dense 0.025 / 0.05, sentence 0.02 / 0.05
    unfloored = RetrievalSettings(cosine_span_floor=0.0)
    plain = dict(HybridRetriever(retriever.store, unfloored, expander=lambda *a: "").fuse(rankings))
    assert plain[1] > plain[0] and fused[0] > fused[1]  # without the floor the cosines' noise won


def test_merge_unions_overlapping_and_adjacent_chunks() -> None:
    a = _chunk("d", TEXT, 0, 120, 0)
    b = _chunk("d", TEXT, 100, 200, 1)  # overlaps a
    c = _chunk("d", TEXT, 201, 260, 2)  # adjacent to b (one space between)
    far = _chunk("e", "autre document " * 10, 0, 40, 0)
    texts = {"d": TEXT, "e": "autre document " * 10}
    passages = merge_chunks(
        [(c, 3.0, {"lexical": 3.0}), (far, 2.0, {}), (a, 1.0, {}), (b, 0.5, {})], texts.get, 5
    )
    assert len(passages) == 2
    merged = passages[0]
    assert merged.chunk_ids == ["d-0", "d-1", "d-2"]  # in document order
    assert (merged.start, merged.end) == (0, 260)
    assert merged.text == TEXT[0:260]
    assert merged.score == 3.0 and merged.number == 1
    assert passages[1].doc_id == "e" and passages[1].number == 2


def test_merge_joins_two_groups_bridged_by_a_later_chunk() -> None:
    first = _chunk("d", TEXT, 0, 60, 0)
    third = _chunk("d", TEXT, 120, 180, 2)
    bridge = _chunk("d", TEXT, 50, 130, 1)
    passages = merge_chunks([(first, 3.0, {}), (third, 2.0, {}), (bridge, 1.0, {})], {"d": TEXT}.get, 5)
    assert [(p.start, p.end) for p in passages] == [(0, 180)]


def test_unmerged_passages_are_the_chunks_in_rank_order() -> None:
    a, b = _chunk("d", TEXT, 0, 120, 0), _chunk("d", TEXT, 100, 200, 1)
    far = _chunk("e", "autre document " * 10, 0, 40, 0)
    texts = {"d": TEXT, "e": "autre document " * 10}
    ranked = [(b, 3.0, {}), (far, 2.0, {}), (a, 1.0, {})]
    passages = merge_chunks(ranked, texts.get, 5, merge=False)
    assert [(p.number, p.chunk_ids, p.start, p.end) for p in passages] == [
        (1, ["d-1"], 100, 200),
        (2, ["e-0"], 0, 40),
        (3, ["d-0"], 0, 120),
    ]
    assert len(merge_chunks(ranked, texts.get, 5)) == 2


def test_retriever_never_shows_the_same_text_twice() -> None:
    store = FakeStore({"brest.txt": TEXT}, {"brest.txt": sentence_spans(TEXT, 90, 40)})
    assert len(store.chunks) > 4
    retriever = HybridRetriever(store, RetrievalSettings(top_k=5))
    passages = retriever.retrieve("pont de Recouvrance Penfeld château Brest", "fr")
    spans = sorted((p.start, p.end) for p in passages)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start > end  # neither overlapping nor merely touching
    for passage in passages:
        assert passage.text == TEXT[passage.start : passage.end]
    assert any(len(p.chunk_ids) > 1 for p in passages)
    assert "Recouvrance" in passages[0].text


def test_cross_lingual_expansion_reaches_the_documents_language() -> None:
    store = FakeStore({"brest.txt": TEXT})
    calls = []

    def expander(text: str, source: str, targets):
        calls.append((source, tuple(targets)))
        return "pont rive" if "bridge" in text else ""

    plain = HybridRetriever(store, RetrievalSettings(), expander=lambda *a: "")
    assert plain.retrieve("bridge banks", "en") == []
    expanded = HybridRetriever(store, RetrievalSettings(), expander=expander)
    assert expanded.retrieve("bridge banks", "en")[0].doc_id == "brest.txt"
    assert calls == [("en", ("fr",))]


def test_langchain_retriever_adapter(seed_assistant) -> None:
    retriever = seed_assistant.as_langchain_retriever(k=5)
    assert isinstance(retriever, BaseRetriever)
    documents = retriever.invoke("Quelle est la valorisation d'OpenAI ?")
    assert sum(len(d.metadata["chunk_ids"]) for d in documents) == 5  # k chunks, touching ones merged
    assert all(isinstance(d, LCDocument) for d in documents)
    first = documents[0].metadata
    assert {"chunk_ids", "source", "start", "end", "score", "number", "doc_id"} <= set(first)
    text = seed_assistant.store.document_text(first["doc_id"])
    assert text[first["start"] : first["end"]] == documents[0].page_content
    assert any("80 milliards" in d.page_content for d in documents)
    # The plain constructor works with any retrieve function.
    adapter = PassageRetriever(retrieve=lambda q, k: seed_assistant.retrieve(q, k), k=1)
    assert len(adapter.invoke("Loopt géolocalisation")) == 1


@pytest.mark.slow  # imports sentence-transformers
def test_reranker_that_cannot_load_is_a_clear_error(seed_index_dir) -> None:
    from rag_fakes import lexical_settings

    from rag import RagError, open_assistant

    settings = lexical_settings(seed_index_dir, reranker_model="/nonexistent/cross-encoder")
    assistant = open_assistant(settings)
    with pytest.raises(RagError, match=r"/nonexistent/cross-encoder.*reranker_model"):
        assistant.retrieve("Quelle est la valorisation d'OpenAI ?")


class _ReverseReranker:
    """Stands in for the cross-encoder: reverses the fused order (what a reranker may do)."""

    def rerank(self, question, candidates):
        return [(row, -float(i)) for i, (row, _) in enumerate(reversed(candidates))]


def test_reranker_order_is_used_and_scored() -> None:
    store = FakeStore({"brest.txt": TEXT}, {"brest.txt": sentence_spans(TEXT, 60, 0)})
    plain = HybridRetriever(store, RetrievalSettings(top_k=1))
    reranked = HybridRetriever(store, RetrievalSettings(top_k=1), reranker=_ReverseReranker())
    question = "pont de Recouvrance Brest"
    assert plain.retrieve(question, "fr")[0].chunk_ids != reranked.retrieve(question, "fr")[0].chunk_ids
    assert "rerank" in reranked.retrieve(question, "fr")[0].scores


def test_merging_stops_at_the_passage_length_bound_and_never_repeats_text() -> None:
    text = " ".join(f"Phrase numéro {n} du long article sur Brest." for n in range(400))
    chunks = [
        _chunk("d", text, start, min(len(text), start + 500), n)
        for n, start in enumerate(range(0, len(text), 400))
    ]
    passages = merge_chunks([(c, 1.0, {}) for c in chunks[:20]], {"d": text}.get, 20, max_chars=1200)
    assert len(passages) > 1
    assert all(len(p.text) <= 1200 for p in passages)
    spans = sorted((p.start, p.end) for p in passages)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end  # no text shown twice
    for passage in passages:
        assert passage.text == text[passage.start : passage.end]
    assert spans[0][0] == 0 and spans[-1][1] == chunks[19].end  # and none left out


def test_sentence_window_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-row memo of window vectors starts again past WINDOW_CACHE_ROWS rows (a long chat over a
    big index), and the sentence ranking is the same with or without it."""
    import numpy as np

    import rag.retrieval as retrieval
    from index.windows import WindowSpan

    class WindowStore:
        def __init__(self) -> None:
            self.chunks = [_chunk(f"d{i}", TEXT, 0, 60, 0) for i in range(6)]
            self.reads = 0

        def query_vector(self, query: str) -> np.ndarray:
            return np.array([1.0, 0.0], dtype=np.float32)

        def windows(self, doc_id: str):  # noqa: ANN202
            self.reads += 1
            cosine = int(doc_id[1:]) / 10
            vector = np.array([[cosine, (1 - cosine**2) ** 0.5]], dtype=np.float32)
            return [WindowSpan(0, 0, 60)], vector

    monkeypatch.setattr(retrieval, "WINDOW_CACHE_ROWS", 3)
    store = WindowStore()
    retriever = HybridRetriever(store, RetrievalSettings())  # type: ignore[arg-type]
    first = retriever.sentence_ranking("q", list(range(6)))
    assert [row for row, _ in first] == [5, 4, 3, 2, 1, 0]
    assert len(retriever._chunk_windows) <= 3 and store.reads == 6
    assert retriever.sentence_ranking("q", list(range(6))) == first


class _SameVector:
    """An embedder that sees every text alike: dense search ties, so the other signals decide."""

    def embed_query(self, text: str):
        return [1.0, 0.0]

    def embed_passages(self, texts):
        import numpy as np

        return np.tile([1.0, 0.0], (len(texts), 1))


class _CoverageStore(FakeStore):
    """The fake store with term coverage (`index.protocols.CoverageReader`), read from its BM25 index."""

    def term_coverage(self, query, rows, language=None, *, fix_unknown=True):
        return self.bm25.coverage(analyze(query, language=language), rows)


def test_hybrid_fusion_adds_each_candidates_share_of_the_question_terms() -> None:
    documents = {
        "a.txt": "Le zorblax est un fromage. Le zorblax mûrit. Le zorblax se mange.",
        "b.txt": "Le glorbium accompagne le zorblax au dessert.",
        "c.txt": "Le port de Brest accueille des navires.",
    }
    store = _CoverageStore(documents, embedder=_SameVector())
    # No span floor: `plain` below is the fusion of the other rankings as min-max stretches them.
    settings = RetrievalSettings(coverage_weight=1.5, sentence_weight=0.0, cosine_span_floor=0.0)
    retriever = HybridRetriever(store, settings, expander=lambda *a: "")
    rankings = retriever.rankings("zorblax glorbium", "fr", 5)
    coverage = dict(rankings["coverage"])
    row = {store.chunks[r].doc_id: r for r in range(len(store.chunks))}
    assert coverage[row["b.txt"]] == pytest.approx(1.0)  # holds both terms
    assert 0 < coverage[row["a.txt"]] < 1 and coverage[row["c.txt"]] == 0.0
    fused = dict(retriever.fuse(rankings))
    plain = weighted_fuse({k: v for k, v in rankings.items() if k != "coverage"}, {})
    for name, r in row.items():
        assert fused[r] == pytest.approx(plain[r] + 1.5 * coverage[r]), name
    assert retriever.retrieve("zorblax glorbium", "fr")[0].doc_id == "b.txt"
    assert retriever.retrieve("zorblax glorbium", "fr")[0].scores["coverage"] == pytest.approx(1.0)
    # Off: the same fusion without it; RRF and lexical mode never read it.
    off = HybridRetriever(store, settings.model_copy(update={"coverage_weight": 0.0}), expander=lambda *a: "")
    assert "coverage" not in off.rankings("zorblax glorbium", "fr", 5)
    rrf = HybridRetriever(store, settings.model_copy(update={"fusion": "rrf"}), expander=lambda *a: "")
    assert "coverage" not in rrf.rankings("zorblax glorbium", "fr", 5)
    lexical = HybridRetriever(_CoverageStore(documents), settings, expander=lambda *a: "")
    assert set(lexical.rankings("zorblax glorbium", "fr", 5)) == {"lexical"}
    # A store that cannot tell (no term_coverage) is fused without it.
    assert "coverage" not in HybridRetriever(
        FakeStore(documents, embedder=_SameVector()), settings, expander=lambda *a: ""
    ).rankings("zorblax glorbium", "fr", 5)


def test_late_interaction_rescores_only_the_best_candidates() -> None:
    fused = [(1, 3.0), (2, 2.9), (3, 2.0), (4, 1.0)]
    rescored = late_rescore(fused, [0.5, 0.9, 0.7], 3.0)  # MaxSim of rows 1-3, min-max normalised: 0, 1, 0.5
    assert rescored == [(2, pytest.approx(5.9)), (3, pytest.approx(3.5)), (1, 3.0), (4, 1.0)]
    assert late_rescore(fused, [0.4, 0.4], 3.0) == fused  # no spread: nothing to tell them apart
    assert late_rescore([], [], 3.0) == []
