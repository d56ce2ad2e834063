"""Metrics on hand-computed examples (the numbers in comments are worked out by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from eval_fakes import HashEmbedder

from eval import metrics as m
from eval.baselines import BaselineChunk, WhitespaceBM25, cached_passage_vectors, whitespace_tokens
from eval.datasets import Evidence

E = Evidence("d", "q" * 10, 10, 20)
E2 = Evidence("o", "r" * 10, 50, 60)


def test_covers_inside_adjacent_and_gaps() -> None:
    assert m.covers([m.Span("d", 5, 25)], E)
    assert not m.covers([m.Span("d", 0, 15)], E)
    assert m.covers([m.Span("d", 0, 15), m.Span("d", 12, 30)], E)  # overlapping neighbours
    assert m.covers([m.Span("d", 15, 30), m.Span("d", 0, 15)], E)  # order of the list does not matter
    assert m.covers([m.Span("d", 0, 15), m.Span("d", 15, 30)], E)  # touching neighbours
    assert not m.covers([m.Span("d", 0, 15), m.Span("d", 16, 30)], E)  # one character missing
    assert not m.covers([m.Span("o", 0, 100)], E)  # other document
    whole = Evidence("p.txt", "x", 0, 100, whole_document=True)
    assert m.covers([m.Span("p.txt", 50, 60)], whole)


def test_ranks_and_retrieval_scores() -> None:
    ranked = [m.Span("o", 0, 100), m.Span("d", 0, 15), m.Span("d", 12, 30), m.Span("d", 5, 25)]
    ranks = m.evidence_ranks(ranked, [E, E2])
    assert ranks == [3, 1]  # E needs passages 2 and 3 together
    assert m.hit_at_k(ranks, 1) == 1.0
    assert m.recall_at_k(ranks, 1) == 0.5
    assert m.recall_at_k(ranks, 3) == 1.0
    assert m.reciprocal_rank(ranks) == 1.0
    assert m.ndcg_at_k(ranks, 10) == pytest.approx((1 / math.log2(4) + 1) / 2)  # 0.75
    assert m.ndcg_at_k(ranks, 2) == pytest.approx(0.5)  # rank 3 is beyond k
    ranks = [None, 2]
    assert (m.hit_at_k(ranks, 1), m.hit_at_k(ranks, 2)) == (0.0, 1.0)
    assert m.recall_at_k(ranks, 2) == 0.5
    assert m.reciprocal_rank(ranks) == 0.5
    assert m.ndcg_at_k(ranks) == pytest.approx(1 / math.log2(3) / 2)  # 0.3155
    assert m.reciprocal_rank([None]) == 0.0
    assert m.recall_at_k([], 5) == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("L’Élysée, à Paris !", "elysee paris"),
        ("Les fluctuations du capital-risque", "fluctuations capital risque"),
        ("The answer is a cat.", "answer is cat"),
        ("d'accord, l'homme", "accord homme"),
        ("aujourd'hui", "aujourd hui"),  # an apostrophe inside a word is not an article
        ("« 100 000 » euros", "100 000 euros"),
        ("Une des villes de la région", "villes region"),
    ],
)
def test_normalize_answer_french(text: str, expected: str) -> None:
    assert m.normalize_answer(text) == expected


def test_answer_scores() -> None:
    # pred tokens [chat, noir, dort], ref [chat, noir]: P = 2/3, R = 1, F1 = 0.8
    assert m.token_f1("le chat noir dort", ["un chat noir"]) == pytest.approx(0.8)
    assert m.token_f1("chat", ["chien", "le chat"]) == 1.0  # best reference
    assert m.token_f1("rien", ["chat"]) == 0.0
    assert m.token_f1("", [""]) == 1.0
    assert m.exact_match("La Tour Eiffel.", ["tour eiffel"]) == 1.0
    assert m.exact_match("La Tour Eiffel est haute", ["tour eiffel"]) == 0.0
    assert m.answer_contained("Il est né en 1575 à Seidenberg.", ["1575"]) == 1.0
    assert m.answer_contained("Il est né en 1575 à Seidenberg.", ["157"]) == 0.0  # whole tokens only
    assert m.answer_contained("Il est né à Görlitz.", ["1575", "Gorlitz"]) == 1.0


def test_citation_scores() -> None:
    # E spans 10..20 (10 chars): a cited passage must overlap it by min(30, 10 // 2) = 5 characters
    cited = [m.Span("d", 0, 14), m.Span("d", 12, 40), m.Span("o", 0, 5)]
    assert m.citation_precision(cited, [E]) == pytest.approx(1 / 3)  # overlaps 4 (no), 8 (yes), other doc
    assert m.citation_recall(cited, [E]) == 1.0  # the two neighbours cover E together
    assert m.citation_recall(cited, [E, E2]) == 0.5  # E2 (50..60 of "o") is not covered
    assert m.citation_precision([], [E]) is None
    assert m.citation_recall(cited, []) is None
    long_quote = Evidence("d", "x" * 100, 0, 100)
    assert not m.holds_evidence(m.Span("d", 80, 200), long_quote)  # 20 < min(30, 50)
    assert m.holds_evidence(m.Span("d", 70, 200), long_quote)  # 30 characters


def test_abstention_rates() -> None:
    outcomes = [(True, False), (True, True), (False, True), (False, False), (False, True)]
    rates = m.abstention_rates(outcomes)
    assert rates["correct_abstention"] == pytest.approx(2 / 3)
    assert rates["false_abstention"] == pytest.approx(1 / 2)
    assert m.abstention_rates([(True, False)])["correct_abstention"] is None


def test_latency_and_throughput() -> None:
    assert m.percentile([1, 2, 3, 4], 50) == 2.5
    assert m.percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert m.percentile([10], 95) == 10
    assert m.percentile([], 50) is None
    summary = m.latency_summary([{"retrieve": 0.001}, {"retrieve": 0.003, "generate": 0.01}])
    assert summary["retrieve"]["median_ms"] == pytest.approx(2.0)
    assert summary["generate"]["count"] == 1
    assert m.throughput(10, 4.0) == 2.5
    assert m.mean([1.0, None, 0.0]) == 0.5


def test_whitespace_bm25_hand_example() -> None:
    assert whitespace_tokens("Le Chat, noir") == ["le", "chat,", "noir"]
    bm25 = WhitespaceBM25([BaselineChunk("d", 0, 3, "a b"), BaselineChunk("d", 4, 9, "a c c")])
    # idf(c) = ln(1 + (2 - 1 + 0.5) / 1.5) = ln 2; |d2| = 3, avgdl = 2.5,
    # norm = 1.5 * (0.25 + 0.75 * 3 / 2.5) = 1.725; score = ln2 * 2 * 2.5 / (2 + 1.725)
    assert bm25.scores("c")[1] == pytest.approx(math.log(2) * 5 / 3.725)
    assert bm25.scores("c")[0] == 0.0
    assert [c.text for c in bm25.search("C", 5)] == ["a c c"]
    assert bm25.search("zzz", 5) == []
    assert bm25.scores("c c")[1] == pytest.approx(2 * bm25.scores("c")[1])  # a repeated term counts again
    # Equal scores rank by chunk row, so two runs give the same order.
    tied = WhitespaceBM25(
        [BaselineChunk("d", i, i + 3, text) for i, text in enumerate(["x y", "a b", "a b"])]
    )
    assert [c.start for c in tied.search("a", 5)] == [1, 2]


def test_baseline_vectors_reuse_the_known_ones_and_embed_only_the_rest(tmp_path: Path) -> None:
    class Counting(HashEmbedder):
        embedded: list[str] = []

        def embed_passages(self, texts, *, show_progress=False, on_progress=None):  # noqa: ANN001
            self.embedded.extend(texts)
            return super().embed_passages(texts)

    embedder = Counting()
    texts = ["le chat dort", "le chien court", "le chat dort", "la pluie tombe"]
    known = {"le chat dort": embedder._vector("le chat dort"), "absent du lot": embedder._vector("x")}
    vectors = cached_passage_vectors(embedder, texts, tmp_path, progress=False, known=known)
    assert sorted(embedder.embedded) == ["la pluie tombe", "le chien court"]  # each unknown text once
    np.testing.assert_array_equal(vectors, embedder.embed_passages(texts))  # as if all were embedded
    assert vectors.dtype == np.float32 and vectors.shape == (4, embedder.dimension)
    embedder.embedded.clear()
    np.testing.assert_array_equal(cached_passage_vectors(embedder, texts, tmp_path, progress=False), vectors)
    assert embedder.embedded == []  # the second run reads the cached matrix
