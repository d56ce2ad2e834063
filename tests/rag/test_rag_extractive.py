"""The model-free extractive answerer: question-type cues, lead-in language, quotes, streaming."""

from __future__ import annotations

import pytest

from rag.backends.base import GenerationRequest
from rag.backends.extractive import ExtractiveGenerator
from rag.records import Passage

TEXT = (
    "Acme est un fabricant de vélos installé à Grenoble. "
    "L'entreprise a été fondée en 1998 par Jeanne Martin. "
    "Elle emploie aujourd'hui 1 200 personnes dans trois usines. "
    "Ses vélos sont vendus dans toute l'Europe."
)


def _passages() -> list[Passage]:
    half = TEXT.index("Elle emploie")
    return [
        Passage(1, ["c1"], "acme.txt", "/docs/acme.txt", "acme", TEXT[:half], 0, half, 2.0),
        Passage(2, ["c2"], "acme.txt", "/docs/acme.txt", "acme", TEXT[half:], half, len(TEXT), 1.0),
    ]


@pytest.mark.parametrize(
    ("question", "language", "expected", "marker"),
    [
        ("Combien de personnes travaillent chez Acme ?", "fr", "1 200 personnes", "[2]"),
        ("En quelle année Acme a-t-elle été fondée ?", "fr", "1998", "[1]"),
        ("Qui a fondé l'entreprise Acme ?", "fr", "Jeanne Martin", "[1]"),
        ("Où est installé le fabricant Acme ?", "fr", "Grenoble", "[1]"),
    ],
)
def test_question_cues_pick_the_answering_sentence(question, language, expected, marker) -> None:
    text = ExtractiveGenerator().compose(question, language, _passages())
    assert text.startswith("D’après les documents : «")
    assert expected in text and marker in text


def test_lead_in_follows_the_question_language_and_quotes_stay_verbatim() -> None:
    generator = ExtractiveGenerator()
    english = generator.compose("When was Acme fondée?", "en", _passages())
    assert english.startswith("According to the documents: «")
    german = generator.compose("Wann wurde Acme fondée?", "de", _passages())
    assert german.startswith("Laut den Dokumenten: «")
    assert "fondée en 1998" in english and "fondée en 1998" in german


def test_nothing_related_gives_the_abstention_message() -> None:
    assert (
        ExtractiveGenerator()
        .compose("Quel temps fait-il à Tokyo ?", "fr", _passages())
        .startswith("Les documents ne le disent pas")
    )


def test_streams_word_by_word_and_is_deterministic() -> None:
    generator = ExtractiveGenerator()
    request = GenerationRequest("Combien de personnes emploie Acme ?", "fr", _passages())
    pieces = list(generator.stream(request))
    assert len(pieces) > 5 and "".join(pieces) == generator.compose(request.question, "fr", request.passages)
    assert pieces == list(generator.stream(request))
    assert generator.is_llm is False and generator.name == "extractive"


def test_anaphoric_sentence_takes_its_antecedent_along() -> None:
    text = "80 milliards de dollars. C'est la valorisation de la société Zorg aujourd'hui."
    passage = Passage(1, ["c"], "z.txt", "/z.txt", "z", text, 0, len(text), 1.0)
    answer = ExtractiveGenerator().compose("Quelle est la valorisation de Zorg ?", "fr", [passage])
    assert "80 milliards de dollars. C'est la valorisation" in answer
