"""Prompts: numbered passages with their source, the answer language, the abstention wording."""

from __future__ import annotations

from rag.prompts import build_messages, condense_prompt, format_history
from rag.records import Passage


def _passage(number: int, heading: list[str], page: int | None) -> Passage:
    return Passage(
        number, [f"c{number}"], "doc.pdf", "/x/doc.pdf", "doc", f"texte {number}", 0, 7, 1.0, heading, page
    )


def test_messages_number_the_passages_with_source_heading_and_page() -> None:
    system, user = build_messages(
        "Quelle est la date ?", "fr", [_passage(1, ["Partie", "Section"], 3), _passage(2, [], None)]
    )
    assert "uniquement à partir des passages" in system.content and "[1]" in system.content
    assert "Les documents ne le disent pas" in system.content
    assert "[1] doc.pdf — Partie > Section (p. 3)\ntexte 1" in user.content
    assert "[2] doc.pdf\ntexte 2" in user.content
    assert user.content.rstrip().endswith("Réponse (en français, avec les citations [n]) :")


def test_other_languages_get_the_english_prompt_asking_for_their_language() -> None:
    system, _ = build_messages("¿Cuándo?", "es", [_passage(1, [], None)])
    assert "Write the answer in Spanish" in system.content
    system, _ = build_messages("Wann?", "de", [_passage(1, [], None)])
    assert "Antworte auf Deutsch" in system.content


def test_history_and_condense_prompt() -> None:
    history = [
        {"role": "user", "content": "Qui dirige OpenAI ?"},
        {"role": "assistant", "content": "Sam Altman."},
        {"role": "system", "content": "ignored"},
    ]
    text = format_history(history, "fr", max_turns=6)
    assert text == "Utilisateur: Qui dirige OpenAI ?\nAssistant: Sam Altman."
    assert format_history(history, "fr", max_turns=0) == ""
    prompt = condense_prompt("D'où est-il originaire ?", text, "fr")
    assert "Question de suite : D'où est-il originaire ?" in prompt and "Sam Altman." in prompt


def test_the_conversation_goes_before_the_passages_only_when_given() -> None:
    history = format_history(
        [{"role": "user", "content": "Who runs OpenAI?"}, {"role": "assistant", "content": "Sam Altman."}],
        "en",
        6,
    )
    _, user = build_messages("Where is he from?", "en", [_passage(1, [], None)], history)
    assert user.content.startswith("Conversation so far (to understand the question; it is not a source):\n")
    assert user.content.index("Assistant: Sam Altman.") < user.content.index("Passages:")
    assert user.content.rstrip().endswith(
        "Question: Where is he from?\nAnswer (in English, with [n] citations):"
    )
    _, alone = build_messages("Where is he from?", "en", [_passage(1, [], None)])
    assert alone.content.startswith("Passages:")
