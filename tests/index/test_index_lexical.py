"""Language detection, the analyzer, and BM25 against a direct implementation of the formula."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from index.language import detect_language
from index.lexical import Analyzer, BM25Index, analyze
from index.words import STOPWORDS


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Quelle est la valorisation d’OpenAI évoquée dans l’article ?", "fr"),
        ("Combien d'employeurs", "fr"),
        ("Who is the chief executive of the company?", "en"),
        ("Wer hat die Firma gegründet und warum ist sie so groß?", "de"),
        ("¿Quién fundó la empresa y por qué es tan grande?", "es"),
        ("Chi ha fondato la società e perché è così grande?", "it"),
        ("Wie heeft het bedrijf opgericht en waarom is het zo groot?", "nl"),
        ("Quem fundou a empresa e por que ela é tão grande?", "pt"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_detect_language_empty_defaults() -> None:
    assert detect_language("") == "en"
    assert detect_language("1234", default="fr") == "fr"
    assert set(STOPWORDS) == {"fr", "en", "de", "es", "it", "nl", "pt"}


def test_french_analysis_elisions_accents_stems_numbers() -> None:
    terms = analyze("L’économie d'OpenAI qu’il a créée vaut 80 milliards, soit 14,2 % en 2019.", "fr")
    assert "l" not in terms and "d" not in terms and "qu" not in terms and "il" not in terms
    assert "econom" in terms  # stemmed then accent-folded
    assert {"80", "2019", "14,2", "14", "2"} <= set(terms)
    assert analyze("économies", "fr") == analyze("Economie", "fr")


def test_ligatures_are_spelled_out() -> None:
    assert analyze("Les œuvres d’Æsope", "fr") == analyze("les oeuvres d'aesope", "fr")


def test_unknown_query_terms_find_the_indexed_term_they_mean() -> None:
    texts = ("La mare symbolise le quartier.", "Une hiérarchie stricte.", "Hiérarchie.", "Elon Musk.")
    bm25 = BM25Index().build([analyze(text, "fr") for text in texts])
    assert analyze("symbolisent", "fr") == ["symbolisent"]  # the French stemmer keeps this plural
    assert bm25.known_variant("symbolisent") == "symbolis"  # inflection: longest indexed prefix
    assert bm25.known_variant("hierarchi") == "hierarch"  # typo-like: one letter too many
    assert bm25.known_variant("hierarch") is None  # known already
    assert bm25.known_variant("selon") is None  # short: a real word this corpus lacks, not "elon"
    assert bm25.known_variant("2019") is None and bm25.known_variant("zzzzzzzz") is None


def test_chunk_terms_add_title_and_headings_once() -> None:
    analyzer = Analyzer()
    terms = analyzer.analyze_chunk(
        "Il commence sa carrière en 1953.", "Bruno Cremer", ("Bruno Cremer", "Débuts"), "fr"
    )
    assert terms == analyze("Il commence sa carrière en 1953.", "fr") + ["bruno", "crem", "debut"]
    assert analyzer.analyze_chunk("Texte seul.", "", (), "fr") == analyze("Texte seul.", "fr")


def test_analyzer_language_detected_when_none() -> None:
    assert Analyzer().analyze("The companies were running") == ["compani", "run"]
    with pytest.raises(ValueError, match="valid"):
        Analyzer("xx")


def _bm25_reference(docs: list[list[str]], query: list[str], k1: float, b: float) -> list[float]:
    n = len(docs)
    avg = sum(len(d) for d in docs) / n
    df = Counter(t for d in docs for t in set(d))
    scores = []
    for d in docs:
        tf = Counter(d)
        score = 0.0
        for term in query:
            if term not in tf:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            score += idf * tf[term] * (k1 + 1) / (tf[term] + k1 * (1 - b + b * len(d) / avg))
        scores.append(score)
    return scores


def test_bm25_matches_the_formula_and_survives_save_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    vocabulary = [f"t{i}" for i in range(40)]
    docs = [list(rng.choice(vocabulary, size=rng.integers(1, 30))) for _ in range(60)]
    docs.append([])  # an empty row must not break anything
    index = BM25Index(k1=1.3, b=0.6).build(docs)
    index.save(tmp_path)
    loaded = BM25Index.load(tmp_path)
    for query in (["t1"], ["t2", "t3", "t3"], ["t5", "unknown"]):
        expected = _bm25_reference(docs, query, 1.3, 0.6)
        assert np.allclose(loaded.scores(query), expected, rtol=1e-5)
        top = loaded.search(query, 5)
        best = sorted((s for s in expected if s > 0), reverse=True)[:5]
        assert np.allclose([score for _, score in top], best, rtol=1e-5)  # equal scores may swap rows
        assert all(np.isclose(expected[row], score, rtol=1e-5) for row, score in top)
    assert loaded.search(["unknown"], 5) == []
    assert loaded.row_term_counts() == [dict(Counter(d)) for d in docs]
    assert not list(tmp_path.glob("*.pkl"))


def test_coverage_is_the_idf_weighted_share_of_the_query_terms_a_row_holds() -> None:
    rng = np.random.default_rng(11)
    vocabulary = [f"t{i}" for i in range(30)]
    docs = [list(rng.choice(vocabulary, size=rng.integers(1, 20))) for _ in range(50)]
    index = BM25Index().build(docs)
    # Built in two parts and extended, and a slice of it: every way an index is made keeps row order.
    extended = BM25Index().build(docs[:20]).extended(BM25Index().build(docs[20:]))
    sliced = index.take_rows(np.arange(10, 50))
    n = len(docs)

    def idf(term: str, rows: list[list[str]]) -> float:
        df = sum(term in d for d in rows)
        return float(np.log1p((len(rows) - df + 0.5) / (df + 0.5)))

    for query in (["t1", "t2", "t2", "t3"], ["t4", "unknown"], ["t7"]):
        terms = list(dict.fromkeys(query))
        for built, rows, offset in ((index, docs, 0), (extended, docs, 0), (sliced, docs[10:], 10)):
            wanted = range(0, len(rows), 3)
            found = built.coverage(query, list(wanted))
            total = sum(idf(t, rows) for t in terms)
            expected = {r: sum(idf(t, rows) for t in terms if t in rows[r]) / total for r in wanted}
            assert found.keys() == expected.keys(), offset
            assert all(np.isclose(found[r], expected[r]) for r in wanted)
    assert n == index.size
    holds_all = next(r for r, d in enumerate(docs) if {"t1", "t2"} <= set(d))
    assert index.coverage(["t1", "t2"], [holds_all]) == {holds_all: pytest.approx(1.0)}
    assert index.coverage(["unknown"], [0, 1]) == {0: 0.0, 1: 0.0}
    assert index.coverage([], [0]) == {}


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Wer leitet Siemens?", "de"),
        ("Woher kommt der Kaffee?", "de"),
        ("Who founded Siemens?", "en"),
        ("Qui dirige Siemens ?", "fr"),
        ("¿Dónde vive Ana?", "es"),
    ],
)
def test_short_questions_are_told_apart_by_their_question_word(question: str, language: str) -> None:
    # French is the default here, so a wrong guess would show as "fr".
    assert detect_language(question, default="fr") == language


def test_word_lists_are_written_folded() -> None:
    """Users look words up as `fold(word)`: a list entry with a capital or an accent could never match."""
    from index.words import FUNCTION_WORDS, META_WORDS, QUESTION_WORDS, fold

    for lists in (STOPWORDS, QUESTION_WORDS, META_WORDS, FUNCTION_WORDS):
        for language, words in lists.items():
            assert words and all(word == fold(word) for word in words), language
    assert fold("Élève") == "eleve" and fold("Qu’EST-CE") == "qu’est-ce"
