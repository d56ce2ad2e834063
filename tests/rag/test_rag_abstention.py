"""Abstention: no answer in the passages -> "the documents do not say" in the question's language."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from rag.abstention import ABSTAIN_THRESHOLD, is_abstention
from rag.backends.base import GenerationRequest, Generator
from rag.prompts import ABSTENTION_MESSAGES, abstention_message


class MustNotBeCalled(Generator):
    name = "must-not-be-called"
    is_llm = True

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        raise AssertionError("the generator was called although the passages cannot answer")


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Combien d'employés compte OpenAI ?", "fr"),
        ("En quelle année OpenAI a-t-elle été fondée ?", "fr"),
        ("What is the name of OpenAI's latest model?", "en"),
        ("In welchem Jahr wurde OpenAI gegründet?", "de"),
    ],
)
def test_unanswerable_questions_abstain_in_their_language(
    fresh_assistant, question: str, language: str
) -> None:
    from rag import Assistant

    assistant = Assistant(
        fresh_assistant.settings, fresh_assistant.store, generators={"strict": MustNotBeCalled()}
    )
    answer = assistant.ask(question, backend="strict")
    assert answer.abstained
    assert answer.language == language
    assert answer.text == ABSTENTION_MESSAGES[language]
    assert answer.citations == [] and answer.cited_passages == []
    extractive = assistant.ask(question)
    assert extractive.abstained and extractive.text == ABSTENTION_MESSAGES[language]


def test_answerable_question_is_answered_from_the_passage(seed_assistant) -> None:
    answer = seed_assistant.ask("Quelle est la valorisation d'OpenAI ?")
    assert not answer.abstained
    assert "80 milliards de dollars" in answer.text
    assert any("80 milliards de dollars" in c.quote and c.supported for c in answer.citations)


def test_messages_and_fallback() -> None:
    assert abstention_message("fr").startswith("Les documents ne le disent pas")
    assert abstention_message("de").startswith("Die Dokumente sagen es nicht")
    assert abstention_message("pt") == ABSTENTION_MESSAGES["en"]  # no wording for Portuguese: English
    assert is_abstention("The documents do not say.") and is_abstention("Les documents ne le disent pas.")
    assert not is_abstention("Les documents disent que OpenAI vaut 80 milliards [1].")
    assert 0.0 < ABSTAIN_THRESHOLD < 1.0


def test_threshold_setting_overrides_the_calibrated_constant(seed_index_dir) -> None:
    from rag_fakes import lexical_settings

    from rag import open_assistant

    settings = lexical_settings(seed_index_dir)
    never = open_assistant(
        settings.model_copy(update={"answer": settings.answer.model_copy(update={"abstain_threshold": 0.0})})
    )
    always = open_assistant(
        settings.model_copy(update={"answer": settings.answer.model_copy(update={"abstain_threshold": 1.01})})
    )
    question = "Qui guide Microsoft dans son pari sur OpenAI ?"
    assert not never.ask(question).abstained
    assert always.ask(question).abstained


def test_a_name_no_document_mentions_weighs_against_answering(seed_assistant) -> None:
    from rag.evidence import names_unknown_to_corpus

    scorer = seed_assistant.scorer
    known = "Quel rôle joue Microsoft auprès d'OpenAI ?"
    unknown = "Quel rôle joue Amazon Zorblax auprès d'OpenAI ?"
    assert not names_unknown_to_corpus(known, scorer.term_groups(known, "fr", "fr"), scorer)
    assert names_unknown_to_corpus(unknown, scorer.term_groups(unknown, "fr", "fr"), scorer)
    assert seed_assistant.ask(unknown).abstained


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Quand Sam Altman a-t-il revendu Loopt ?", "date"),
        ("Et quand est-il né ?", "date"),
        ("Il est né quand ?", "date"),
        ("Wann wurde OpenAI gegründet?", "date"),
        # "quand / when" inside the question is a conjunction: the question asks for something else.
        ("Quel âge avait Sam Altman quand il a revendu sa première entreprise ?", "number"),
        ("Which well-known investor surrounded Altman when OpenAI started?", ""),
        ("How old was he?", "number"),
        # A measure asks for a figure too.
        ("Quelle est la profondeur du Loch Ness ?", "number"),
        ("How deep is Loch Ness?", "number"),
        ("Wie lange blieben die Beatles im Ashram?", "number"),
        ("À quelle température le laitier fond-il ?", "number"),
        ("Wie groß ist die Fläche des Loch Lomond?", "number"),
    ],
)
def test_expected_answer_type_reads_the_question_word(question: str, expected: str) -> None:
    from rag.evidence import expected_answer_type

    assert expected_answer_type(question) == expected


def test_figures_in_words_count_as_figures_but_vague_plurals_do_not() -> None:
    from rag.evidence import has_answer_type

    assert has_answer_type("À moins de trente ans, il revend déjà Loopt", "number")
    assert has_answer_type("Zwei Firmen konkurrieren", "number")
    assert not has_answer_type("Même une valorisation de plusieurs dizaines de milliards", "number")


def test_years_before_1000_and_eras_are_dates_but_small_figures_are_not() -> None:
    from rag.evidence import has_answer_type

    assert has_answer_type("l'émergence d'Athènes comme foyer culturel, vers 875, caractérisée", "date")
    assert has_answer_type("Aux alentours du Ier millénaire av. J.-C., le travail du fer", "date")
    assert has_answer_type("Rome fut fondée en 753 av. J.-C.", "date")
    assert has_answer_type("Founded in 300 BC.", "date")
    assert not has_answer_type("Le siège dura en tout 30 minutes.", "date")
    assert not has_answer_type("Il compte 120 membres.", "date")


def test_hybrid_gate_reads_cosines_offset_for_language_and_answer_type() -> None:
    from rag.abstention import HybridGate
    from rag.evidence import ScoredWindow, Window
    from rag.records import Passage

    passage = Passage(1, ["c"], "d", "s", "t", "x", 0, 1, 1.0)

    def window(cosine: float | None, *, typed: bool = True, crosslingual: bool = False) -> ScoredWindow:
        return ScoredWindow(
            passage,
            0,
            Window(0, 1, "x", frozenset()),
            0.5,
            typed,
            cosine,
            frozenset(),
            crosslingual=crosslingual,
        )

    gate = HybridGate("m", 0.1, 0.88, crosslingual_offset=0.04, type_mismatch_penalty=0.1)
    assert gate.window_cosine(window(None)) is None
    assert gate.window_cosine(window(0.8)) == pytest.approx(0.8)
    assert gate.window_cosine(window(0.8, crosslingual=True)) == pytest.approx(0.84)
    assert gate.window_cosine(window(0.8, typed=False)) == pytest.approx(0.7)
    assert gate.margin(0.5, 0.84) == pytest.approx(0.01)


def _evidence_of(question: str, language: str = "fr", document_language: str = "fr"):
    """An Evidence with the question's term groups as the evidence step makes them (no windows)."""
    from collections import Counter

    from rag.evidence import CorpusStats, Evidence, EvidenceScorer, expected_answer_type

    scorer = EvidenceScorer(CorpusStats(Counter(), 10))
    groups = tuple(scorer.term_groups(question, language, document_language))
    return Evidence(question, language, expected_answer_type(question), (), False, True, groups)


@pytest.mark.parametrize(
    ("question", "language", "anchored"),
    [
        ("Combien d’employés compte OpenAI ?", "fr", True),
        ("How many employees does OpenAI have?", "en", True),
        ("Wie viele Mitarbeiter hat OpenAI?", "de", True),
        ("Quel est le chiffre d’affaires annuel d’OpenAI ?", "fr", True),
        ("Combien de temps a duré le siège ?", "fr", True),  # a duration: its units (« dix mois »)
        ("Combien pesait Edward Dickinson Baker ?", "fr", True),  # a weight: its units
        ("Combien de fois a-t-il gagné ?", "fr", False),  # a vague count: any figure
        ("Qui dirige OpenAI ?", "fr", False),
        ("What causes the small number of studies?", "en", False),  # asks no figure
    ],
)
def test_answer_anchor_is_the_counted_or_measured_noun(question: str, language: str, anchored: bool) -> None:
    from rag.abstention import answer_anchor

    assert bool(answer_anchor(_evidence_of(question, language))) == anchored


def test_a_figure_answers_a_count_only_next_to_the_counted_noun() -> None:
    from rag.abstention import answer_anchor, holds_anchored_figure

    anchor = answer_anchor(_evidence_of("Combien d’employés compte OpenAI ?"))
    assert holds_anchored_figure("OpenAI compte aujourd’hui 3 000 employés dans le monde.", anchor)
    assert holds_anchored_figure(
        "Ses employés, au nombre de trois mille, travaillent à San Francisco.", anchor
    )
    assert not holds_anchored_figure("OpenAI est valorisée 80 milliards de dollars.", anchor)
    far = "Il compte 3 000 clients, répartis dans des dizaines de pays où travaillent ses employés."
    assert not holds_anchored_figure(far, anchor)
    # A German question over French text: the cognate's first letters suffice (« Chromosomen »).
    german = answer_anchor(_evidence_of("Wie viele Chromosomen hat ein Wildschwein?", "de"))
    assert holds_anchored_figure("Le cochon domestique possède 38 chromosomes.", german)


@pytest.mark.parametrize(
    ("question", "language", "answering", "not_answering"),
    [
        (
            "Quelle est la profondeur du Loch Ness ?",
            "fr",
            "Le Loch Ness atteint 230 mètres de profondeur.",
            "Le Loch Ness est décrit pour la première fois en 565.",
        ),
        (
            "How much did Edward Dickinson Baker weigh?",
            "en",
            "Il pesait 80 kg.",
            "(24 février 1811 - 21 octobre 1861)",
        ),
        ("Combien de temps a duré le siège ?", "fr", "Le siège dura dix mois.", "Le siège commence en 1453."),
        ("À quelle température fond-il ?", "fr", "Il fond à 1 500 °C.", "Il fond en 1500 dans le four n° 2."),
        (
            "Wie groß ist die Fläche des Loch Lomond?",
            "de",
            "Sa superficie est de 71 km².",
            "Il compte 22 îles.",
        ),
    ],
)
def test_a_measure_is_answered_only_by_a_figure_with_its_unit(
    question: str, language: str, answering: str, not_answering: str
) -> None:
    from rag.abstention import answer_anchor, holds_anchored_figure

    anchor = answer_anchor(_evidence_of(question, language))
    assert holds_anchored_figure(answering, anchor)
    assert not holds_anchored_figure(not_answering, anchor)


def test_hybrid_gate_penalises_a_figure_away_from_the_anchor() -> None:
    from rag.abstention import HybridGate, answer_anchor
    from rag.evidence import ScoredWindow, Window
    from rag.records import Passage

    passage = Passage(1, ["c"], "d", "s", "t", "x", 0, 1, 1.0)
    anchor = answer_anchor(_evidence_of("Combien d’employés compte OpenAI ?"))
    gate = HybridGate("m", 0.1, 0.88, type_mismatch_penalty=0.1)

    def window(text: str) -> ScoredWindow:
        return ScoredWindow(passage, 0, Window(0, len(text), text, frozenset()), 0.5, True, 0.9, frozenset())

    assert gate.window_cosine(window("OpenAI compte 3 000 employés."), anchor) == pytest.approx(0.9)
    assert gate.window_cosine(window("OpenAI vaut 80 milliards."), anchor) == pytest.approx(0.8)
    assert gate.window_cosine(window("OpenAI vaut 80 milliards.")) == pytest.approx(0.9)  # no anchor


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("Et combien a-t-il investi ?", "fr"),
        ("How much money has it put in?", "en"),
        ("Wie viel hat Microsoft investiert?", "de"),
    ],
)
def test_an_amount_in_words_answers_a_sum_but_not_a_measure(question: str, language: str) -> None:
    """« injectent des milliards » answers "how much did it invest" (the article's answer, with no figure);
    a window with no amount at all still does not, nor does an amount answer a measure (a depth)."""
    from rag.abstention import HybridGate, answer_anchor
    from rag.evidence import ScoredWindow, Window
    from rag.records import Passage

    passage = Passage(1, ["c"], "d", "s", "t", "x", 0, 1, 1.0)
    gate = HybridGate("m", 0.1, 0.88, type_mismatch_penalty=0.15)

    def window(text: str) -> ScoredWindow:  # untyped: no digit, no figure in words
        return ScoredWindow(passage, 0, Window(0, len(text), text, frozenset()), 0.5, False, 0.9, frozenset())

    anchor = answer_anchor(_evidence_of(question, language))
    amount = window("Les partenariats, notamment avec Microsoft, injectent des milliards dans l’entreprise.")
    assert gate.window_cosine(amount, anchor) == pytest.approx(0.9)
    assert gate.window_cosine(window("Microsoft a misé gros sur OpenAI."), anchor) == pytest.approx(0.75)
    depth = answer_anchor(_evidence_of("Quelle est la profondeur du Loch Ness ?"))
    assert gate.window_cosine(
        window("Des milliers de touristes visitent le Loch Ness."), depth
    ) == pytest.approx(0.75)
    # A count that names its noun wants a figure next to it: an amount in words is no count of it.
    employees = answer_anchor(_evidence_of("Combien d’employés compte OpenAI ?"))
    assert gate.window_cosine(amount, employees) == pytest.approx(0.75)


def _scored_window(start: int, coverage: float, cosine: float):
    """A typed window of one passage, its coverage and cosine given (the gate's two readings)."""
    from rag.evidence import ScoredWindow, Window
    from rag.records import Passage

    passage = Passage(1, ["c"], "d", "s", "t", "x", 0, 1, 1.0)
    return ScoredWindow(
        passage, 0, Window(start, start + 1, "x", frozenset()), coverage, True, cosine, frozenset()
    )


def test_a_same_window_gate_reads_one_windows_words_and_meaning_together() -> None:
    """One window holds the question's words but is far by meaning, another is close by meaning but holds
    none of its words: the best lexical score and the best cosine of two windows pass the line together,
    the best single window does not (a citation's window must pass alone: `answers_question`)."""
    from rag.abstention import HybridGate, answers_question, evidence_check
    from rag.evidence import Evidence

    window = _scored_window
    words, meaning = window(0, 0.9, 0.80), window(2, 0.0, 0.85)
    evidence = Evidence("Qui dirige Zorg ?", "fr", "", (words, meaning), False, True)
    apart = HybridGate("m", 0.1, 0.92)
    together = HybridGate("m", 0.1, 0.92, same_window=True)
    assert not evidence_check(evidence, gate=apart).abstain  # 0.1 * 0.9 + 0.85 = 0.94
    check = evidence_check(evidence, gate=together)  # best window: 0.1 * 0.9 + 0.80 = 0.89
    assert check.abstain
    assert (check.score, check.cosine, check.window) == (
        pytest.approx(0.9),
        pytest.approx(0.80),
        words.window,
    )
    assert not any(answers_question(item, evidence, together) for item in (words, meaning))
    closer = window(0, 0.9, 0.84)  # 0.1 * 0.9 + 0.84 = 0.93
    assert not evidence_check(replace(evidence, windows=(closer, meaning)), gate=together).abstain


def test_a_lexical_reach_ignores_the_words_of_a_window_far_by_meaning() -> None:
    """The best cosine comes from one window; another, far from the question by meaning, shares a word with
    it (another sense of the word, a chunk retrieved last for that word alone). With a reach, that window's
    lexical score is not read, so it cannot lift the question over the line; within the reach it is."""
    from rag.abstention import HybridGate, evidence_check
    from rag.evidence import Evidence

    window = _scored_window
    meaning, far_word = window(0, 0.0, 0.88), window(2, 0.3, 0.81)
    evidence = Evidence("Quel est le dernier modèle de Zorg ?", "fr", "", (meaning, far_word), False, True)
    every = HybridGate("m", 0.1, 0.9)
    reach = HybridGate("m", 0.1, 0.9, lexical_reach=0.05)
    assert not evidence_check(evidence, gate=every).abstain  # 0.1 * 0.3 + 0.88 = 0.91
    check = evidence_check(evidence, gate=reach)  # 0.81 < 0.88 - 0.05: 0.1 * 0.0 + 0.88 = 0.88
    assert check.abstain
    assert (check.score, check.cosine, check.window) == (0.0, pytest.approx(0.88), meaning.window)
    close_word = window(2, 0.3, 0.84)  # within the reach: read
    assert not evidence_check(replace(evidence, windows=(meaning, close_word)), gate=reach).abstain
