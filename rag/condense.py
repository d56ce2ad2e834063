"""Follow-up questions -> standalone questions, without a model (the extractive backend's condense step).

LLM backends rewrite the follow-up with the condense prompt of `rag.prompts`. Without a model the rewrite
is a deterministic heuristic:
1. Is it a follow-up? Yes when it leans on the conversation: a pronoun or possessive and no name of its
   own ("D'où est-il originaire ?"), a demonstrative and its noun and no other name ("Wurde diese Idee
   schon getestet?"), an "and …?" question with one or two content words ("Et Microsoft ?"),
   or no content word that occurs anywhere in the corpus. A name is a word with an inner capital (OpenAI)
   or a capital inside the question; in German, where every noun has a capital, a word the bundled
   glossary knows (« im Jahr », « Mitarbeiter », a compound of known parts) is a noun, not a name. A name
   the conversation already holds is not the question's own ("Besitzt er Anteile an OpenAI?" after "Der
   Chef von OpenAI": « er » still needs the conversation).
2. If so, the salient content words of the previous user turns (rarest in the corpus first, most recent
   turn first, at most `MAX_CONTEXT_TERMS`) are appended, to steer retrieval.

The question as asked stays the *focus* of the answer: abstention and sentence selection require its own
content words, the appended ones only help to find the passage. A question with no content word of its own
("Where is he from?") is focused on the appended words: it asks about the conversation's subject alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from index.words import fold
from rag.crosslingual import is_known_word
from rag.evidence import WORD, EvidenceScorer, content_words

MAX_CONTEXT_TERMS = 5
_PRONOUNS = {
    "fr": "il elle ils elles lui leur leurs son sa ses celui celle ceux celles dernier derniere cela ca y",
    "en": "he she it they him her his its their them this that these those",
    "de": "er sie es ihn ihm sein seine seiner seinen seinem ihr ihre ihrer ihren ihrem dessen deren dies",
}
# Demonstrative determiners: "cette idée", "this bet", "diese Idee" point back at something said before.
# ("that" is left out: as a conjunction it starts a clause, "is it true that investors …".)
_DEMONSTRATIVES = {
    "fr": "ce cet cette ces",
    "en": "this these those",
    "de": "diese dieser dieses diesem diesen jene jener jenes jenem jenen",
}
_AND_START = re.compile(r"^\s*(et|and|und|puis|also|aussi)\b", re.IGNORECASE)
_ROLE_LINE = re.compile(r"^(User|Utilisateur|Nutzer|Assistant|Assistent)\s*:\s*(.*)$")
#: Languages that write every noun with a capital: there a capital alone does not make a name.
_NOUNS_CAPITALISED = frozenset({"de"})


@dataclass(frozen=True, slots=True)
class Condensed:
    standalone: str  # what retrieval searches with
    focus: str  # what the answer must address (the question as asked, or the LLM's rewrite)
    is_follow_up: bool


def parse_history_text(history_text: str) -> list[dict]:
    """'User: …' / 'Assistant: …' lines (see `rag.prompts.format_history`) back to turns."""
    turns: list[dict] = []
    for line in history_text.splitlines():
        match = _ROLE_LINE.match(line.strip())
        if match:
            role = "user" if match.group(1) in ("User", "Utilisateur", "Nutzer") else "assistant"
            turns.append({"role": role, "content": match.group(2)})
        elif turns:
            turns[-1]["content"] += "\n" + line
    return turns


def _has_pronoun(question: str, language: str) -> bool:
    pronouns = {fold(w) for w in _PRONOUNS.get(language, _PRONOUNS["en"]).split()}
    words = re.findall(r"\w+", question)  # "est-il" -> "est", "il"
    return any(fold(w) in pronouns for w in words)


def _is_name(word: str, language: str, *, sentence_initial: bool) -> bool:
    """A word with an inner capital (OpenAI, iPhone) names something anywhere; a capitalised word inside the
    question does too, except in a language that capitalises its nouns, where a word the glossary knows
    (« Jahr », « Mitarbeiter », « Jahresgehalt » from its parts) is a noun."""
    if any(c.isupper() for c in word[1:]):
        return True
    if sentence_initial or not word[:1].isupper():
        return False
    return language not in _NOUNS_CAPITALISED or not is_known_word(word, language)


def _has_name(
    question: str, language: str, ignore: frozenset[int] = frozenset(), known: frozenset[str] = frozenset()
) -> bool:
    """Whether the question names something of its own: a name (`_is_name`) that is not among the folded
    words `known` (the conversation's). The words at the positions in `ignore` (of
    `WORD.findall(question)`) are not looked at."""
    first = 0 if 0 in ignore else 1
    words = [w for position, w in enumerate(WORD.findall(question)) if position not in ignore]
    return any(
        _is_name(w, language, sentence_initial=index < first) and fold(w) not in known
        for index, w in enumerate(words)
    )


def _conversation_words(history: Sequence[dict]) -> frozenset[str]:
    """The folded words of every turn of the conversation (what it has already named)."""
    return frozenset(fold(w) for turn in history for w in WORD.findall(str(turn.get("content", ""))))


def _demonstrative_phrases(question: str, language: str) -> frozenset[int]:
    """Positions (in `WORD.findall(question)`) of each demonstrative determiner followed by a content word,
    and of that word: "diese Idee", "cette annonce". In German every noun has a capital, so the noun is not
    read as a name; elsewhere a capital after the determiner is a name ("this OpenAI deal" asks about
    OpenAI) and makes no reference."""
    determiners = {fold(w) for w in _DEMONSTRATIVES.get(language, _DEMONSTRATIVES["en"]).split()}
    contents = {fold(w) for w in content_words(question, language)}
    words = WORD.findall(question)
    positions: set[int] = set()
    for position, (word, following) in enumerate(zip(words, words[1:], strict=False)):
        if fold(word) not in determiners or fold(following) not in contents:
            continue
        if language not in _NOUNS_CAPITALISED and following[:1].isupper():
            continue
        positions |= {position, position + 1}
    return frozenset(positions)


def is_follow_up(
    question: str, language: str, scorer: EvidenceScorer | None, history: Sequence[dict] = ()
) -> bool:
    """Whether `question` leans on the conversation `history` (its turns, as `condense_heuristically`
    reads them; the names they hold are not the question's own). See the module doc."""
    words = content_words(question, language)
    known = _conversation_words(history)
    if _has_pronoun(question, language) and not _has_name(question, language, known=known):
        return True
    # "Wurde diese Idee schon getestet?": a demonstrative and its noun refer to the conversation, like a
    # pronoun, unless the question names its own subject elsewhere.
    phrases = _demonstrative_phrases(question, language)
    if phrases and not _has_name(question, language, phrases, known):
        return True
    if _AND_START.match(question) and len(words) <= 2:
        return True
    if not words:
        return True
    if scorer is not None:
        known = [
            w for w in words if any(scorer.stats.document_frequency.get(s) for s in scorer.stems(w, language))
        ]
        return not known
    return False


def condense_heuristically(
    question: str, history: Sequence[dict], language: str, scorer: EvidenceScorer | None
) -> Condensed:
    user_turns = [str(t.get("content", "")) for t in history if t.get("role") == "user"]
    if not user_turns or not is_follow_up(question, language, scorer, history):
        return Condensed(question, question, False)
    present = {fold(w) for w in content_words(question, language)}
    context: list[str] = []
    for turn in reversed(user_turns):
        words = [w for w in content_words(turn, language) if fold(w) not in present]
        if scorer is not None:
            # Rarest first: a name or a specific noun carries the topic better than a common verb.
            words.sort(
                key=lambda w: -max((scorer.stats.idf(s) for s in scorer.stems(w, language)), default=0.0)
            )
        for word in words:
            if fold(word) not in {fold(c) for c in context}:
                context.append(word)
        if len(context) >= MAX_CONTEXT_TERMS:
            break
    context = context[:MAX_CONTEXT_TERMS]
    if not context:
        return Condensed(question, question, True)
    standalone = f"{question.strip()} ({' '.join(context)})"
    # A question with no content word of its own ("Where is he from?") asks about the conversation's subject
    # alone: the carried words are its focus too (the abstention and the answer's choice read the focus's
    # words, and the question as asked has none to find).
    return Condensed(standalone, question if present else standalone, True)
