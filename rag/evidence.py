"""How much of a question (or an answer sentence) a span of a document covers — without any model.

One measure serves three stages, so they agree with each other:
- abstention (`rag.abstention`): does the best retrieved sentence cover the question's content terms?
- the extractive generator: which sentences answer the question?
- citation verification (`rag.citations`): does the cited passage support the answer sentence?

The measure is IDF-weighted coverage: the question's content words become *term groups* (a word's stem in
the document's language plus, when the question is in another language, the stems of its cross-lingual
expansions from `rag.crosslingual`); a span covers a group when it holds any of its stems. Coverage is the
IDF mass of covered groups over the IDF mass of all groups, so rare words (names, specific nouns) weigh
more than words found in every chunk. IDF comes from the index's chunks (`CorpusStats`).

An expected answer type (number, date, person/place) is read from the question's cue words (combien /
how many / wie viele, quand / when / wann, qui / who / wer, …) and checked on the span.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from index.language import STOPWORDS, fold_accents
from index.lexical import analyze
from rag.markers import blank_markers

SUPPORTED_ANSWER_LANGUAGES = ("fr", "en", "de")

# Words that talk about the question or the documents rather than about the subject: "selon l'article",
# "mentioned in the text". They are never in the span that answers, so they must not count as missing.
_META_WORDS = {
    "fr": "article articles document documents texte textes passage passages selon evoque evoquee evoques "
    "evoquees mentionne mentionnee mentionnes cite citee cites auteur apres dit indique",
    "en": "article articles document documents text texts passage passages according mentioned said says "
    "stated author state",
    "de": "artikel dokument dokumente dokumenten text texte textes laut erwahnt erwahnte genannt autor",
}
# Words of a question that ask for a kind of answer; they are cues, not content to find in the span.
_QUESTION_WORDS = {
    "fr": "quel quelle quels quelles qui que quoi quand ou comment combien pourquoi lequel laquelle "
    "lesquels lesquelles est-ce",
    "en": "what which who whom whose when where why how much many",
    "de": "was welche welcher welches welchen welchem wer wen wem wessen wann wo woher wohin warum wie "
    "viel viele wieviel",
}
# Inflected function words missing from the index's stop lists (they only matter for coverage here).
_FUNCTION_WORDS = {
    "de": "seiner seinem seinen seines ihrer ihrem ihren ihres deren dessen worden wurde wurden gibt",
    "en": "did does done has had",
    "fr": "ete etait etaient sont",
}
_NUMBER_CUES = re.compile(
    r"\b(combien|quel(le)?s? (est|sont|était|étaient) (le|la|les) (nombre|montant|prix|coût|cout|"
    r"valeur|valorisation|taille|population|superficie|budget|chiffre|âge|age|salaire|durée|distance)|"
    r"how (much|many)|what (is|was|are|were) the (number|amount|price|cost|value|valuation|size|population|"
    r"budget|age|salary|revenue)|wie ?viele?|wieviel|wie hoch|welche(n|r|s)? (anzahl|zahl|wert|preis|betrag))\b",
    re.IGNORECASE,
)
_DATE_CUES = re.compile(
    r"\b(quand|en quelle année|quelle année|à quelle date|quelle date|depuis quand|en quel siècle|when|"
    r"what year|which year|in what year|what date|wann|in welchem jahr|welches jahr|seit wann)\b",
    re.IGNORECASE,
)
_PERSON_CUES = re.compile(r"^\s*(qui|who|whom|wer|wem|wen)\b|\b(par qui|by whom|von wem)\b", re.IGNORECASE)
_PLACE_CUES = re.compile(r"\b(où|d['’]où|where|wo|woher|wohin)\b", re.IGNORECASE)

_DIGIT = re.compile(r"\d")
_YEAR_OR_DATE = re.compile(
    r"\b(1[0-9]{3}|20[0-9]{2})\b|\b\d{1,2} (janvier|février|mars|avril|mai|juin|juillet|août|septembre|"
    r"octobre|novembre|décembre|january|february|march|april|may|june|july|august|september|october|"
    r"november|december|januar|februar|märz|juni|juli|oktober|dezember)\b|\b(siècle|century|jahrhundert)\b",
    re.IGNORECASE,
)
_CAPITALISED_INSIDE = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-ZÀ-ÖØ-Þ][\w’'-]+")
_WORD = re.compile(r"[\w’'-]+", re.UNICODE)

AnswerType = str  # "number" | "date" | "name" | ""


def fold(word: str) -> str:
    """Lowercase without accents (`index.language.fold_accents`): how stop-word and cue lists are compared."""
    return fold_accents(word.lower())


@lru_cache(maxsize=16)
def _folded_set(words: str) -> frozenset[str]:
    return frozenset(fold(w) for w in words.split())


def _stopwords(language: str) -> frozenset[str]:
    return frozenset(fold(w) for w in STOPWORDS.get(language, ()))


_STOPWORDS_FOLDED: dict[str, frozenset[str]] = {}


def is_stopword(word: str, language: str) -> bool:
    if language not in _STOPWORDS_FOLDED:
        _STOPWORDS_FOLDED[language] = _stopwords(language)
    folded = fold(word)
    return (
        folded in _STOPWORDS_FOLDED[language]
        or folded in _folded_set(_META_WORDS.get(language, ""))
        or folded in _folded_set(_FUNCTION_WORDS.get(language, ""))
        # Question words of every language: short questions are sometimes detected as the wrong language.
        or any(folded in _folded_set(words) for words in _QUESTION_WORDS.values())
    )


def content_words(text: str, language: str) -> list[str]:
    """Words of `text` that carry its subject: no stop words, no question or meta words, no markers."""
    words = []
    for raw in _WORD.findall(blank_markers(text)):
        # Elided articles: "d’OpenAI" -> "OpenAI", "l'inférence" -> "inférence".
        word = re.sub(r"^(?:[dljmnstc]|qu|jusqu|lorsqu|puisqu)['’]", "", raw, flags=re.IGNORECASE).strip(
            "'’-"
        )
        # Inverted subject pronouns: "défend-il", "a-t-elle", "wurde-es" are the verb alone.
        word = re.sub(r"(?:-t)?-(?:il|elle|ils|elles|on|ce|je|tu|nous|vous)$", "", word, flags=re.IGNORECASE)
        if not word or word.isdigit() and len(word) < 2:
            continue
        # A stop word of the question's language is dropped; an English stop word inside a French question
        # ("the") too, since such mixes are frequent in names and titles. "OpenAI"-like names are kept.
        stop = is_stopword(word, language) or is_stopword(word, "en" if language != "en" else "fr")
        if stop and not any(ch.isupper() for ch in word[1:]):
            continue
        words.append(word)
    return words


def expected_answer_type(question: str) -> AnswerType:
    if _DATE_CUES.search(question):
        return "date"
    if _NUMBER_CUES.search(question):
        return "number"
    if _PERSON_CUES.search(question) or _PLACE_CUES.search(question):
        return "name"
    return ""


def has_answer_type(text: str, answer_type: AnswerType) -> bool:
    if answer_type == "number":
        return bool(_DIGIT.search(text))
    if answer_type == "date":
        return bool(_YEAR_OR_DATE.search(text))
    if answer_type == "name":
        return bool(_CAPITALISED_INSIDE.search(text)) or bool(
            re.match(r"\s*[A-ZÀ-ÖØ-Þ]\w+ [A-ZÀ-ÖØ-Þ]", text)
        )
    return True


class CorpusStats:
    """Document frequencies of analyzed terms over the index's chunks (the IDF of every coverage score)."""

    #: Weight of a term found nowhere in the corpus, relative to a term seen once (see rag.abstention).
    unseen_factor: float = 1.0

    def __init__(self, document_frequency: Counter[str], chunk_count: int) -> None:
        self.document_frequency = document_frequency
        self.chunk_count = max(chunk_count, 1)
        self._max_idf = self._idf_for(1)

    @classmethod
    def from_texts(cls, texts: Iterable[tuple[str, str]]) -> CorpusStats:
        """`texts`: (text, language) pairs, one per chunk."""
        frequency: Counter[str] = Counter()
        count = 0
        for text, language in texts:
            frequency.update(set(analyze(text, language=language)))
            count += 1
        return cls(frequency, count)

    def _idf_for(self, df: int) -> float:
        return math.log(1.0 + (self.chunk_count - df + 0.5) / (df + 0.5))

    def idf(self, stem: str) -> float:
        df = self.document_frequency.get(stem, 0)
        return self._max_idf * self.unseen_factor if df == 0 else self._idf_for(df)


@dataclass(frozen=True, slots=True)
class TermGroup:
    """One content word of the question: any of `stems` found in a span covers it."""

    word: str
    stems: frozenset[str]
    weight: float


Expander = Callable[[str, str, Sequence[str]], str]


def _default_expander() -> Expander:
    from rag.crosslingual import expand_query

    return expand_query


class EvidenceScorer:
    """Scores spans of documents against a question or an answer sentence (see the module docstring)."""

    def __init__(self, stats: CorpusStats, *, expander: Expander | None | bool = True) -> None:
        self.stats = stats
        self.expander: Expander | None = _default_expander() if expander is True else (expander or None)
        self._stem_cache: dict[tuple[str, str], frozenset[str]] = {}

    def stems(self, text: str, language: str) -> frozenset[str]:
        key = (text, language)
        cached = self._stem_cache.get(key)
        if cached is None:
            cached = frozenset(analyze(text, language=language))
            if len(self._stem_cache) > 50_000:
                self._stem_cache.clear()
            self._stem_cache[key] = cached
        return cached

    def term_groups(self, text: str, text_language: str, document_language: str) -> list[TermGroup]:
        """Content words of `text` as groups of stems in the document's language (with translations)."""
        groups: dict[frozenset[str], TermGroup] = {}
        cross = text_language != document_language and self.expander is not None
        for word in content_words(text, text_language):
            stems = set(analyze(word, language=document_language)) or set(
                analyze(word, language=text_language)
            )
            if cross:
                try:
                    extra = self.expander(word, text_language, [document_language])  # type: ignore[misc]
                except Exception:  # noqa: BLE001 - an expansion failure must not break answering
                    extra = ""
                if extra:
                    stems |= set(analyze(extra, language=document_language))
            if not stems:
                continue
            key = frozenset(stems)
            if key in groups:
                continue
            # The weight of a group is its most specific spelling: a translation seen in the corpus counts.
            weight = max(self.stats.idf(s) for s in key)
            groups[key] = TermGroup(word, key, weight)
        return list(groups.values())

    @staticmethod
    def coverage(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> float:
        total = sum(g.weight for g in groups)
        if total <= 0:
            return 0.0
        return sum(g.weight for g in groups if g.stems & span_stems) / total

    @staticmethod
    def covered(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> set[frozenset[str]]:
        return {g.stems for g in groups if g.stems & span_stems}


# A sentence that opens with a pronoun or demonstrative leans on the previous one ("80 milliards de dollars.
# C'est la valorisation…"): its window takes the previous sentence along.
_ANAPHORIC_START = re.compile(
    r"^(c['’]est|ce|cet|cette|ces|cela|ceci|ça|il|elle|ils|elles|celui|celle|ceux|celles|"
    r"it|this|that|these|those|he|she|they|es|er|sie|das|dies|dieser|diese|dieses)\b",
    re.IGNORECASE,
)
_FRAGMENT_WORDS = 6  # a "sentence" this short is a fragment (a figure, a name) that the next one explains


@dataclass(frozen=True, slots=True)
class Window:
    """One or two adjacent sentences of a passage, with offsets into the document's text."""

    start: int
    end: int
    text: str
    stems: frozenset[str]


def sentence_windows(
    scorer: EvidenceScorer, text: str, offset: int, language: str, *, with_context: bool = True
) -> list[Window]:
    """Windows over the sentences of `text` (which starts at `offset` in its document)."""
    from index.sentences import split_sentences

    sentences = split_sentences(text)
    windows = []
    for index, sentence in enumerate(sentences):
        first = sentence
        if with_context and index > 0:
            previous = sentences[index - 1]
            sentence_text, previous_text = (
                text[sentence.start : sentence.end],
                text[previous.start : previous.end],
            )
            if _ANAPHORIC_START.match(sentence_text) or len(previous_text.split()) <= _FRAGMENT_WORDS:
                first = previous
        span_text = text[first.start : sentence.end]
        windows.append(
            Window(offset + first.start, offset + sentence.end, span_text, scorer.stems(span_text, language))
        )
    return windows
