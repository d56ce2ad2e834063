"""The evidence step: the retrieved passages' sentence windows, scored once per answer, without any model.

One result (`Evidence`, from `collect_evidence`) serves three stages, so they agree with each other:
- abstention (`rag.abstention`): can the passages answer the question at all?
- the extractive generator: which windows answer the question?
- citation verification (`rag.citations`): does the cited window support the claim and answer the question?

Windows (a sentence, plus the one it leans on) are found at index time by `index.windows` and, in hybrid
mode, embedded there too: the cosine of the question with each window is a dot product with the stored
vectors and the query vector retrieval already computed. Each window gets
- IDF-weighted lexical coverage: the question's content words become *term groups* (a word's stem in the
  document's language plus, when the question is in another language, the stems of its cross-lingual
  expansions from `rag.crosslingual`); a span covers a group when it holds any of its stems. Coverage is the
  IDF mass of covered groups over the IDF mass of all groups, so rare words (names, specific nouns) weigh
  more than words found in every chunk. IDF comes from the index's chunks (`CorpusStats`);
- whether it holds the expected answer type read from the question's cue words (combien / how many /
  wie viele -> a figure, quand / when / wann -> a date, qui / who / wer -> a name);
- in hybrid mode, its cosine with the question (multilingual: an English question meets French windows).
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from index.lexical import analyze
from index.windows import WindowSpan, document_windows
from index.words import FUNCTION_WORDS, META_WORDS, QUESTION_WORDS, STOPWORDS, fold
from rag.crosslingual import expand_query
from rag.markers import blank_markers
from rag.records import Passage

if TYPE_CHECKING:
    from index.tokens import TokenMatches

SUPPORTED_ANSWER_LANGUAGES = ("fr", "en", "de")

#: A measure (depth, weight, duration, temperature…) asks for a figure too: « Quelle est la profondeur du Loch
#: Ness ? », "How deep…", « Wie tief… », « À quelle température… » (`rag.abstention` then wants its unit).
_MEASURE_NOUNS = (
    r"profondeur|hauteur|longueur|largeur|altitude|surface|température|temperature|vitesse|poids|masse|"
    r"diamètre|épaisseur|depth|height|length|width|area|surface area|speed|weight|mass|diameter|distance|"
    r"duration|tiefe|höhe|länge|breite|fläche|temperatur|geschwindigkeit|gewicht|durchmesser|dauer"
)
_NUMBER_CUES = re.compile(
    r"\b(combien|quel(le)?s? (est|sont|était|étaient) (le|la|les) (nombre|montant|prix|coût|cout|"
    r"valeur|valorisation|taille|population|superficie|budget|chiffre|âge|age|salaire|durée|distance|"
    rf"{_MEASURE_NOUNS})|"
    r"how (much|many)|what (is|was|are|were) the (number|amount|price|cost|value|valuation|size|population|"
    rf"budget|age|salary|revenue|{_MEASURE_NOUNS})|wie ?viele?|wieviel|wie hoch|"
    rf"welche(n|r|s)? (anzahl|zahl|wert|preis|betrag|{_MEASURE_NOUNS})|"
    r"how (deep|tall|high|long|far|wide|thick|heavy|fast|hot|cold|big|large)|"
    r"wie (tief|lange?|weit|breit|dick|schwer|schnell|heiß|kalt|groß)|"
    rf"à quelle (température|altitude|vitesse|profondeur|hauteur|distance)|(die|der|das) ({_MEASURE_NOUNS}) "
    r"(von|des|der)|"
    r"quel âge|how old|wie alt)\b",
    re.IGNORECASE,
)
_DATE_CUES = re.compile(
    r"\b(en quelle année|quelle année|à quelle date|quelle date|depuis quand|jusqu['’]à quand|en quel siècle|"
    r"what year|which year|in what year|what date|since when|until when|in welchem jahr|welches jahr|"
    r"seit wann|bis wann)\b"
    # "quand / when / wann" asks for a date only as the question word (first, or after "et / and / und", or
    # last: "Il est né quand ?"); inside the question it is a conjunction: "Quel âge avait-il quand il a
    # revendu…", "Which investor surrounded Altman when OpenAI started?" ask for an age and a name.
    r"|^\s*(?:(?:et|mais|and|but|und|aber)\s+)?(?:quand|when|wann)\b|\b(?:quand|when|wann)\s*\?\s*$",
    re.IGNORECASE,
)
_PERSON_CUES = re.compile(r"^\s*(qui|who|whom|wer|wem|wen)\b|\b(par qui|by whom|von wem)\b", re.IGNORECASE)
_PLACE_CUES = re.compile(r"\b(où|d['’]où|where|wo|woher|wohin)\b", re.IGNORECASE)

_DIGIT = re.compile(r"\d")
# A figure written in words ("À moins de trente ans", "twelve", "zwei"). Left out: "un / one / ein" (articles
# far more often than figures) and the vague plurals ("des dizaines de milliards", "thousands of"), which
# give no figure: « plusieurs dizaines de milliards » must not answer "how much" beside « 80 milliards ».
_NUMBER_WORD_ALTERNATIVES = (
    r"deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|treize|quatorze|quinze|seize|vingt|"
    r"trente|quarante|cinquante|soixante|septante|octante|nonante|cent|mille|two|three|four|five|six|"
    r"seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
    r"thousand|zwei|drei|vier|fünf|sechs|sieben|acht|neun|zehn|elf|zwölf|zwanzig|dreißig|vierzig|"
    r"fünfzig|hundert|tausend"
)
_NUMBER_WORDS = re.compile(rf"\b({_NUMBER_WORD_ALTERNATIVES})\b", re.IGNORECASE)
_YEAR_OR_DATE = re.compile(
    r"\b(1[0-9]{3}|20[0-9]{2})\b|\b\d{1,2} (janvier|février|mars|avril|mai|juin|juillet|août|septembre|"
    r"octobre|novembre|décembre|january|february|march|april|may|june|july|august|september|october|"
    r"november|december|januar|februar|märz|juni|juli|oktober|dezember)\b|\b(siècle|century|jahrhundert)\b"
    # Before the year 1000 (« vers 875, », "around 450.") and eras (« Ier millénaire av. J.-C. », "300 BC").
    r"|\b(?:vers|dès|en|jusqu['’]en|depuis|around|circa|in|um|seit|bis)\s\d{2,3}(?=\s?[,.;)]|\s+(?:av|apr)\b)"
    r"|\b(?:av|apr)\.\s?J\.?-C\b|\b\d{1,4}\s(?:BC|AD|BCE|v\.\s?Chr|n\.\s?Chr)\b|\b(?:millénaire|millennium|jahrtausend)",
    re.IGNORECASE,
)
#: What a word is, for every stage of rag that reads words out of a question, a turn or a window (the one word
#: grammar: `rag.condense` and `rag.abstention` build on it): letters and digits with the apostrophes and
#: hyphens inside, so "d’OpenAI" and "l'inférence" keep their elision (dropped by `content_word_spans`) and
#: "est-ce" stays one word (its "ce" is not a determiner). `index.lexical` has its own tokens: it stems.
WORD_CHARACTERS = r"[\w’'-]"
WORD = re.compile(rf"{WORD_CHARACTERS}+")
_CAPITALISED_INSIDE = re.compile(rf"(?<![.!?]\s)(?<!^)\b[A-ZÀ-ÖØ-Þ]{WORD_CHARACTERS}+")

AnswerType = str  # "number" | "date" | "name" | ""


def is_stopword(word: str, language: str) -> bool:
    folded = fold(word)
    return (
        folded in STOPWORDS.get(language, ())
        or folded in META_WORDS.get(language, ())
        or folded in FUNCTION_WORDS.get(language, ())
        # Question words of every answer language: short questions are sometimes detected as the wrong one.
        or any(folded in QUESTION_WORDS[lang] for lang in SUPPORTED_ANSWER_LANGUAGES)
    )


def content_words(text: str, language: str) -> list[str]:
    """Words of `text` that carry its subject: no stop words, no question or meta words, no markers."""
    return [word for _, _, word in content_word_spans(text, language)]


def content_word_spans(text: str, language: str) -> list[tuple[int, int, str]]:
    """`content_words` with where each lies in `text`: (start, end, word), text[start:end] == word."""
    words = []
    for match in WORD.finditer(blank_markers(text, keep_offsets=True)):
        raw = match.group(0)
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
        start = match.start() + raw.find(word)
        words.append((start, start + len(word), word))
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
        return bool(_DIGIT.search(text) or _NUMBER_WORDS.search(text))
    if answer_type == "date":
        return bool(_YEAR_OR_DATE.search(text))
    if answer_type == "name":
        return bool(_CAPITALISED_INSIDE.search(text)) or bool(
            re.match(r"\s*[A-ZÀ-ÖØ-Þ]\w+ [A-ZÀ-ÖØ-Þ]", text)
        )
    return True


# Questions asking someone's age (« Quel âge… », "How old…", « Wie alt… »), and what answers them: a figure of
# years (« à moins de trente ans », "at 19", "a 28-year-old", « mit 25 Jahren »), which never repeats the
# question's word « âge ». `collect_evidence` counts that word as held by a window holding such a figure.
_AGE_CUES = re.compile(
    r"\b(quel âge|à quel âge|how old|what age|at what age|wie alt|in welchem alter)\b", re.I
)
_AGE_NOUNS = frozenset({"age", "old", "alt", "alter"})
_AGE_EXPRESSION = re.compile(
    rf"\b(?:\d{{1,3}}|{_NUMBER_WORD_ALTERNATIVES})[\s-](?:ans?|years?|year-old|jahre?n?|jährige?\w*)\b",
    re.IGNORECASE,
)

# An acronym of the question (« IA », « ONU », « PIB ») is held by a window that spells it out: consecutive
# content words whose initials are its letters (« l’intelligence artificielle », « l’Organisation des Nations
# unies », « produit intérieur brut »; stop words between them are skipped). Same language, lexical mode only:
# in hybrid mode the model reads the acronym already, and this match made a further quote pass on the golden
# set (« …l’intelligence artificielle s’impose… » for « …s’impose… le marché de l’IA ? »).
_ACRONYM = re.compile(r"[A-ZÀ-ÖØ-Þ]{2,5}")


def spells_out(text: str, acronym: str, language: str) -> bool:
    """Whether `text` holds consecutive content words whose initials spell `acronym` (case-folded)."""
    initials = "".join(fold(word)[:1].lower() for word in content_words(text, language) if len(word) > 1)
    return fold(acronym).lower() in initials


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

    @classmethod
    def from_bm25(cls, bm25: Any) -> CorpusStats:
        """Reuse the document frequencies of an `index.lexical.BM25Index` (same analyzer, same chunks)."""
        import numpy as np

        frequencies = np.diff(bm25.term_ptr).tolist()
        return cls(Counter(dict(zip(bm25.vocabulary, frequencies, strict=True))), bm25.size)

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
    # The stems of the word's own spelling (the rest came from its translations), and the group's weight for
    # choosing the answer: the IDF of its most specific stem *seen in the corpus*. An English word absent
    # from French documents ("valued") must not lend its unseen-word IDF to its translation (« valeur »).
    native: frozenset[str] = frozenset()
    answer_weight: float = 0.0
    # A word of another language than the document's that the glossary translates: its own spelling held by
    # a window is a cognate guess ("leads" stemmed as French is « leader »), no surer than a translation.
    translated: bool = False


Expander = Callable[[str, str, Sequence[str]], str]


class EvidenceScorer:
    """Scores spans of documents against a question or an answer sentence (see the module docstring)."""

    def __init__(self, stats: CorpusStats, *, expander: Expander | None | bool = True) -> None:
        self.stats = stats
        self.expander: Expander | None = expand_query if expander is True else (expander or None)
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
            native = frozenset(stems)
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
            seen = [self.stats.idf(s) for s in key if self.stats.document_frequency.get(s)]
            groups[key] = TermGroup(word, key, weight, native, max(seen, default=weight), key != native)
        return list(groups.values())

    @staticmethod
    def coverage(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> float:
        total = sum(g.weight for g in groups)
        if total <= 0:
            return 0.0
        return sum(g.weight for g in groups if g.stems & span_stems) / total

    @staticmethod
    def answer_match(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> tuple[float, float]:
        """(native, translated): the answer-weighted share of the groups the span holds in their own
        spelling, and the share it holds only through a translation (0..1 each, summing to <= 1)."""
        total = sum(g.answer_weight for g in groups)
        if total <= 0:
            return 0.0, 0.0
        native = translated = 0.0
        for group in groups:
            if group.native & span_stems:
                native += group.answer_weight
            elif group.stems & span_stems:
                translated += group.answer_weight
        return native / total, translated / total

    @staticmethod
    def cognate_match(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> float:
        """The answer-weighted share of the groups the span holds in their own spelling although the glossary
        translates them (part of `answer_match`'s native share; see `COGNATE_CREDIT`)."""
        total = sum(g.answer_weight for g in groups)
        if total <= 0:
            return 0.0
        return sum(g.answer_weight for g in groups if g.translated and g.native & span_stems) / total

    @staticmethod
    def covered(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> set[frozenset[str]]:
        return {g.stems for g in groups if g.stems & span_stems}

    @staticmethod
    def covered_native(groups: Sequence[TermGroup], span_stems: frozenset[str]) -> set[frozenset[str]]:
        """The groups the span holds in their own spelling (not only through a translation)."""
        return {g.stems for g in groups if (g.native or g.stems) & span_stems}


# -- the evidence step -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Window:
    """A sentence window of a passage (see `index.windows`), with offsets into the document's text."""

    start: int
    end: int
    text: str
    stems: frozenset[str]


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    """One window of one retrieved passage, scored once against the question."""

    passage: Passage
    rank: int  # position of the passage in the retrieval order (0 = best)
    window: Window
    coverage: float  # IDF-weighted share of the question's content terms the window holds (0..1)
    typed: bool  # holds the kind of answer asked for (a figure for "combien"); True when none is asked
    cosine: float | None  # cosine of the question and the window (hybrid mode), from the stored vectors
    covered: frozenset[frozenset[str]]  # the question's term groups it holds
    statement: bool = True  # False for a heading or a question: they name a topic, they answer nothing
    cosine_gap: float = 0.0  # how far its cosine is below the best statement's of this answer (>= 0)
    crosslingual: bool = False  # the question and the window's document are in different languages
    # The question's words the window holds, split by how they match (`EvidenceScorer.answer_match`).
    match_native: float = 0.0
    match_translated: float = 0.0
    match_cognate: float = 0.0  # the part of match_native held through a word the glossary translates
    # The question's term groups the window holds in their own spelling (the rest of `covered` it holds only
    # through a glossary translation, a guess: the glossary has no sense disambiguation).
    covered_native: frozenset[frozenset[str]] = frozenset()
    # Late interaction (hybrid mode, an index with token vectors): each word token of the retrieval query, its
    # best cosine with the window's stored tokens (`Evidence.question_tokens` says which tokens they are);
    # their mean weighed by `question_token_weights` (the MaxSim), and how far it is below the best
    # statement's.
    token_cosines: tuple[float, ...] | None = None
    maxsim: float | None = None
    maxsim_gap: float = 0.0

    @property
    def answer_score(self) -> float:
        """How well this window answers the question: what the extractive answer ranks by and what a
        citation's relevance is (weights: see ANSWER_WEIGHTS)."""
        credit = COGNATE_CREDIT if self.cosine is not None else COGNATE_CREDIT_LEXICAL
        native = self.match_native - (1.0 - credit) * self.match_cognate
        lexical = native + TRANSLATION_CREDIT * self.match_translated
        prior = RANK_PRIOR if self.cosine is not None else RANK_PRIOR_LEXICAL
        score = lexical + (TYPE_BONUS if self.typed else 0.0) - prior * self.rank
        if self.cosine is not None:
            # Relative to the best window of the same answer: raw E5 cosines are all high (0.75-0.95) and
            # shift with the question's length and wording; the gap between windows is what ranks them.
            weight = COSINE_WEIGHT_CROSSLINGUAL if self.crosslingual else COSINE_WEIGHT
            score -= weight * self.cosine_gap
        if self.maxsim is not None:
            score -= MAXSIM_WEIGHT * self.maxsim_gap
        return score


#: How a window's answer score weighs its evidence (chosen on PIAF dev with multilingual-e5-small by
#: `python -m eval.benchmarks.calibrate_hybrid --model DIR`, gold span in the answer, 400 French and 150
#: translated English and German dev questions; figures in the README).
#: - Same language: the cosine stays out (weight 3-8 gives French +0.035, but on the golden sets French
#:   citation precision falls 1.000 -> 0.963 and follow-ups 1.000 -> 0.750 at 5): the question's own words,
#:   IDF-weighted, are the better guide there.
#: - Across languages the words are the glossary's, which has no sense disambiguation ("valued" -> « valeur »
#:   for « mutation profonde de la valeur »): the cosine ranks (weight 5: en 0.580 -> 0.647, de 0.487 -> 0.560;
#:   3-8 within one question) and a word matched only through its translation counts half (flat on dev
#:   between 0.3 and 1.0; half because a translation is a guess, and it fixes the "valued" case).
#: - A question word of another language that the glossary translates but that a window holds in its own
#:   spelling ("leads" stemmed as French is « leader ») is a cognate guess. With the model (hybrid mode) the
#:   cosine arbitrates: counting it half there costs en 0.680 -> 0.673 and de 0.593 -> 0.587 (one question
#:   each), so it counts in full. Without a model it is a guess like a translation and counts half: on the
#:   same dev windows with the cosines removed (lexical mode's choice) en 0.587 -> 0.593, fr and de equal;
#:   it is what quoted « …Microsoft comme leader du secteur » for "Which company leads the investments…"
#:   over « avec Microsoft en chef de file » in lexical mode.
#: - The passage's retrieval rank (twelfth session): retrieval reads more than a window does (the whole chunk,
#:   BM25, the dense vector, the late-interaction MaxSim; PIAF dev hit@1 0.82), so among windows that score
#:   alike the better-ranked passage's is the likelier answer. Per rank (`calibrate_hybrid`'s last block, fr /
#:   en / de): 0.01 (before; it only broke ties) 0.720 / 0.687 / 0.613, 0.03 0.723 / 0.693 / 0.613, 0.04
#:   0.730 / 0.700 / 0.613, 0.05 0.733 / 0.707 / 0.620 (questions gained / lost: fr 6 / 1, en 3 / 0, de 2 / 1;
#:   58 French words per answer instead of 60: fewer further quotes), 0.06 the same, 0.07 0.730 / 0.707 /
#:   0.613, 0.08 one golden French citation lost (seed-001). Golden sets (`rag eval --piaf none`, hybrid):
#:   citation precision and recall, abstentions unchanged; one answer changed: "Which company leads the
#:   investments in OpenAI?", whose evidence is not retrieved, quotes « L’aventure OpenAI… » (passage 1)
#:   instead of « Microsoft, guidé par… » (passage 2), which named the answer by chance (F1 0.054 -> 0.026). In
#:   lexical mode 0.05 gives PIAF dev (`rag eval`, 3,263 questions) gold span 0.604 -> 0.607, citation
#:   precision 0.728 -> 0.744, but golden French citation precision 1.000 -> 0.981: « Qu’est-ce qui s’impose
#:   peu à peu… » takes a second quote from the first passage (the prior lowers the best window's score, from
#:   passage 2, so 0.85 of it is within reach), so lexical mode keeps 0.01 (its answers are unchanged).
TYPE_BONUS = 0.15  # the kind of answer asked for is there
RANK_PRIOR = 0.05  # per rank of the passage below the first (hybrid mode)
RANK_PRIOR_LEXICAL = 0.01  # the same without a model (lexical mode): only breaks near-ties
COSINE_WEIGHT = 0.0  # per unit of cosine below the best window's (hybrid mode)
COSINE_WEIGHT_CROSSLINGUAL = 5.0  # the same, when the question and the document differ in language
TRANSLATION_CREDIT = 0.5  # a question word found only through its translation counts this share
COGNATE_CREDIT = 1.0  # a translated question word found in its own spelling (a cognate) counts this share
COGNATE_CREDIT_LEXICAL = 0.5  # the same, without a model (lexical mode)
#: - Late interaction (an index with token vectors, `index.tokens`): a window's MaxSim (the best cosine of each
#:   word token of the question as asked with the window's stored tokens, plain mean) below the best
#:   statement's, weighed like the cosine gap. Tenth session, over every token of the retrieval query: gold
#:   span fr / en / de 0.680 / 0.687 / 0.613 at 0, 0.713 / 0.687 / 0.627 at 5, but from 2 on the golden
#:   follow-up « Et où s’est-il imposé ensuite ? » quoted « … Sam Altman s’impose comme référence
#:   incontournable » instead of Y Combinator. Why: a follow-up's retrieval query appends the rarest words of
#:   the earlier turns (« … (Altman Sam …) », `rag.condense`), and their tokens match any window naming Sam
#:   Altman perfectly. Eleventh session: only the tokens of the question as asked count
#:   (`MAXSIM_TOKENS` "question", `question_token_weights`); PIAF dev is the same as over the whole query
#:   (its questions are not follow-ups) and the follow-up quotes Y Combinator again at every weight.
#:   `calibrate_hybrid`'s last block (fr / en / de): 1 -> 0.695 / 0.687 / 0.613, 2 -> 0.703 / 0.673 / 0.620,
#:   3 -> 0.708 / 0.673 / 0.627, 5 -> 0.713 / 0.687 / 0.627, 8 -> 0.718 / 0.680 / 0.613. Not better: the
#:   content words' tokens only (5: 0.708 / 0.673 / 0.607), IDF-weighted tokens (5: 0.703 / 0.687 / 0.613).
#:   The MaxSim gap spreads the windows' scores, so fewer further quotes reach `ADD_RATIO` of the best
#:   (1.18 -> 1.10 quotes per French answer): with it, a further quote needs `ADD_RATIO_MAXSIM` (0.75) and the
#:   answers are as long as before (fr 58 words) for 0.728 / 0.693 / 0.640 (against 0.680 / 0.687 / 0.613;
#:   questions gained / lost fr 26 / 7, en 2 / 1, de 6 / 2). Golden sets (`rag eval --piaf none
#:   --no-baselines --no-adversarial`, hybrid): citation precision unchanged (fr 1.000, en 0.917, de 0.778),
#:   F1 0.227 unchanged, citation recall 0.918 -> 0.898 (two multi-part questions keep one passage: the first
#:   quote answers them; in one the dropped quote was a wrong sentence of the right passage).
MAXSIM_WEIGHT = 5.0  # per unit of late-interaction MaxSim below the best window's (token vectors stored)
MAXSIM_TOKENS = "question"  # the query's word tokens a window's MaxSim reads (`question_token_weights`)
MAXSIM_IDF = False  # each of them weighed by its IDF (else 1)
ANSWER_WEIGHTS = {
    "type_bonus": TYPE_BONUS,
    "rank_prior": RANK_PRIOR,
    "rank_prior_lexical": RANK_PRIOR_LEXICAL,
    "cosine": COSINE_WEIGHT,
    "cosine_crosslingual": COSINE_WEIGHT_CROSSLINGUAL,
    "translation_credit": TRANSLATION_CREDIT,
    "cognate_credit": COGNATE_CREDIT,
    "cognate_credit_lexical": COGNATE_CREDIT_LEXICAL,
    "maxsim": MAXSIM_WEIGHT,
    "maxsim_tokens": MAXSIM_TOKENS,
    "maxsim_idf": MAXSIM_IDF,
}


@dataclass(frozen=True, slots=True)
class QuestionTokens:
    """The retrieval query's word tokens, as the windows' MaxSim reads them (hybrid mode, token vectors)."""

    query: str  # the retrieval query (a follow-up's holds words of earlier turns, see `rag.condense`)
    offsets: tuple[tuple[int, int], ...]  # query[start:end] of each token
    idf: tuple[float, ...]  # its IDF over the index's chunks
    weights: tuple[float, ...]  # its weight in a window's MaxSim (`question_token_weights`; 0: left out)

    def maxsim(self, cosines: Sequence[float]) -> float:
        """The weighed mean of the tokens' best cosines with a window (`ScoredWindow.token_cosines`)."""
        total = sum(self.weights)
        return sum(w * c for w, c in zip(self.weights, cosines, strict=True)) / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Evidence:
    """The one scoring of the retrieved passages' sentences that abstention, the extractive answer and the
    citation check all read."""

    question: str
    language: str
    answer_type: AnswerType
    windows: tuple[ScoredWindow, ...]  # every window of every passage, in passage then text order
    unknown_name: bool  # the question names something that no chunk of the index mentions
    hybrid: bool  # cosines are there
    # The question's term groups, for every document language met (a window's `covered` holds some of them):
    # what `rag.abstention` reads to tell the asked detail from the topic.
    term_groups: tuple[TermGroup, ...] = ()
    # The retrieval query's word tokens whose best cosines each window's `token_cosines` holds (hybrid mode,
    # an index with token vectors; None otherwise).
    question_tokens: QuestionTokens | None = None

    @property
    def statements(self) -> list[ScoredWindow]:
        """The windows that can answer (headings and questions of the documents left out)."""
        return [w for w in self.windows if w.statement]

    def best(self) -> ScoredWindow | None:
        return max(self.statements, key=lambda w: w.answer_score, default=None)

    def of_passage(self, number: int) -> list[ScoredWindow]:
        return [w for w in self.windows if w.passage.number == number]

    @property
    def best_cosine(self) -> float:
        return max((w.cosine for w in self.statements if w.cosine is not None), default=0.0)


#: (document id) -> (window spans, their vectors or None) from the index, or None when it stores no windows.
WindowSource = Callable[[str], "tuple[list[WindowSpan], Any] | None"]
#: (document id, [(start, end)]) -> the retrieval query's word tokens against each span
#: (`index.protocols.TokenReader.window_token_matches`), or None when the index keeps no token vectors.
TokenMatchSource = Callable[[str, Sequence[tuple[int, int]]], "TokenMatches | None"]


def question_token_weights(
    offsets: Sequence[tuple[int, int]],
    idf: Sequence[float],
    question: str,
    query: str,
    language: str,
    *,
    tokens: str | None = None,
    idf_weighted: bool | None = None,
) -> tuple[float, ...]:
    """The weight of each word token of the retrieval query `query` (its `offsets` there, its `idf`) in a
    window's MaxSim with the question as asked (`question`, the focus).

    `tokens` (default `MAXSIM_TOKENS`): "query", every word token of the query; "question", those inside the
    question as asked (a follow-up's query appends the rarest words of earlier turns: « Et où s’est-il imposé
    ensuite ? (Altman Sam société première) » — with them a window naming Sam Altman matches best, whatever it
    says); "content", those of the question's content words (`content_word_spans`: no stop, question or meta
    words). `idf_weighted` (default `MAXSIM_IDF`): each token counts its IDF, else 1. A selection holding no
    token falls back to the wider one."""
    tokens = MAXSIM_TOKENS if tokens is None else tokens
    idf_weighted = MAXSIM_IDF if idf_weighted is None else idf_weighted
    if tokens not in ("query", "question", "content"):
        raise ValueError(f"tokens must be 'query', 'question' or 'content', not {tokens!r}")
    asked = question.strip()
    start = query.find(asked) if asked else -1
    start, end = (0, len(query)) if start < 0 else (start, start + len(asked))
    spans = [(0, len(query))]
    if tokens != "query":
        spans = [(start, end)]
    if tokens == "content":
        words = [(start + a, start + b) for a, b, _ in content_word_spans(query[start:end], language)]
        spans = words or spans
    keep = [any(a < high and low < b for low, high in spans) for a, b in offsets]
    if not any(keep):
        keep = [True] * len(offsets)
    return tuple(
        (float(weight) if idf_weighted else 1.0) if kept else 0.0
        for kept, weight in zip(keep, idf, strict=True)
    )


def _sentence_start(span: WindowSpan) -> int:
    return span.sentence


def passage_windows(
    passage: Passage, stored: tuple[list[WindowSpan], Any] | None
) -> list[tuple[WindowSpan, Any]]:
    """The windows inside `passage` with their vectors (None without). A window whose leading sentence lies
    before the passage keeps its own sentence only (its vector is the window's: close enough to rank it).
    Without stored windows (an index from an older version) the passage is split now, with no vectors."""
    if stored is None:
        spans = [
            WindowSpan(w.start + passage.start, w.sentence + passage.start, w.end + passage.start)
            for w in document_windows(passage.text)
        ]
        return [(span, None) for span in spans]
    spans, vectors = stored
    inside = []
    # The windows are in text order (own sentences one after the other): only those whose sentence starts
    # in the passage are looked at, found by bisection (a long document has thousands of windows, and
    # every passage of every answer looked at all of them).
    for index in range(bisect.bisect_left(spans, passage.start, key=_sentence_start), len(spans)):
        span = spans[index]
        if span.sentence > passage.end:
            break  # this window and every later one end after the passage
        if span.end > passage.end:
            continue
        start = span.start if span.start >= passage.start else span.sentence
        inside.append(
            (WindowSpan(start, span.sentence, span.end), None if vectors is None else vectors[index])
        )
    return inside


def collect_evidence(
    question: str,
    language: str,
    passages: Sequence[Passage],
    scorer: EvidenceScorer,
    language_of: Callable[[str], str],
    *,
    windows_of: WindowSource | None = None,
    query_vector: Any | None = None,
    token_matches_of: TokenMatchSource | None = None,
    retrieval_query: str | None = None,
) -> Evidence:
    """Score every sentence window of `passages` against `question`, once: lexical coverage always, the
    cosine with `query_vector` when the index stores window vectors (hybrid mode), and the MaxSim of the
    query's tokens when it stores token vectors (`token_matches_of`; `retrieval_query`: the text retrieval
    searched with, whose tokens they are, `question` by default). No model is called."""
    import numpy as np

    answer_type = expected_answer_type(question)
    groups_by_language: dict[str, list[TermGroup]] = {}
    scored: list[dict[str, Any]] = []  # each window's ScoredWindow fields
    unknown_name = False
    hybrid = query_vector is not None
    query = None if query_vector is None else np.asarray(query_vector, dtype=np.float32)
    age_asked = bool(_AGE_CUES.search(question))
    question_tokens: QuestionTokens | None = None
    for rank, passage in enumerate(passages):
        doc_language = language_of(passage.doc_id)
        if doc_language not in groups_by_language:
            groups_by_language[doc_language] = scorer.term_groups(question, language, doc_language)
            unknown_name = unknown_name or names_unknown_to_corpus(
                question, groups_by_language[doc_language], scorer
            )
        groups = groups_by_language[doc_language]
        # The asked age's own word (« âge ») is held by a window giving an age (« à moins de trente ans »).
        age_stems = frozenset(
            stem for group in groups if age_asked and fold(group.word) in _AGE_NOUNS for stem in group.stems
        )
        acronyms = [
            (group.word, group.stems)
            for group in groups
            if not hybrid and _ACRONYM.fullmatch(group.word) and language == doc_language
        ]
        stored = windows_of(passage.doc_id) if windows_of is not None else None
        pairs = passage_windows(passage, stored)
        cosines: list[float | None] = [None] * len(pairs)
        if query is not None and pairs and pairs[0][1] is not None:
            matrix = np.stack([vector for _, vector in pairs]).astype(np.float32)
            cosines = [float(c) for c in matrix @ query]
        matches = (
            token_matches_of(passage.doc_id, [(s.start, s.end) for s, _ in pairs])
            if token_matches_of and pairs
            else None
        )
        token_cosines: list[tuple[float, ...] | None] = [None] * len(pairs)
        if matches is not None:
            if question_tokens is None:
                offsets = tuple((int(a), int(b)) for a, b in matches.offsets)
                idf = tuple(float(v) for v in matches.idf)
                query_text = retrieval_query or question
                weights = question_token_weights(offsets, idf, question, query_text, language)
                question_tokens = QuestionTokens(query_text, offsets, idf, weights)
            token_cosines = [tuple(column) for column in matches.best.T.tolist()]
        for (span, _), cosine, cosines_of_tokens in zip(pairs, cosines, token_cosines, strict=True):
            text = passage.text[span.start - passage.start : span.end - passage.start]
            sentence = passage.text[span.sentence - passage.start : span.end - passage.start]
            after = passage.text[span.end - passage.start : span.end - passage.start + 1]
            stems = scorer.stems(text, doc_language)
            if age_stems and _AGE_EXPRESSION.search(text):
                stems |= age_stems
            for acronym, acronym_stems in acronyms:
                if not acronym_stems & stems and spells_out(text, acronym, doc_language):
                    stems |= acronym_stems
            window = Window(span.start, span.end, text, stems)
            native, translated = EvidenceScorer.answer_match(groups, stems)
            scored.append(
                dict(
                    passage=passage,
                    rank=rank,
                    window=window,
                    coverage=EvidenceScorer.coverage(groups, stems) if groups else 0.0,
                    typed=not answer_type or has_answer_type(text, answer_type),
                    cosine=cosine,
                    covered=frozenset(EvidenceScorer.covered(groups, stems)),
                    statement=is_statement(sentence, after),
                    crosslingual=doc_language != language,
                    match_native=native,
                    match_translated=translated,
                    match_cognate=EvidenceScorer.cognate_match(groups, stems),
                    covered_native=frozenset(EvidenceScorer.covered_native(groups, stems)),
                    token_cosines=cosines_of_tokens,
                    maxsim=None
                    if cosines_of_tokens is None or question_tokens is None
                    else question_tokens.maxsim(cosines_of_tokens),
                )
            )
    # Each window's gaps to the best statement's MaxSim and cosine, then the records, built once (built
    # first and copied with the gaps, every window of every answer was made twice or three times).
    statements = [w for w in scored if w["statement"]]
    best_maxsim = max((w["maxsim"] for w in statements if w["maxsim"] is not None), default=None)
    top = max((w["cosine"] for w in statements if w["cosine"] is not None), default=0.0)
    for w in scored:
        if best_maxsim is not None and w["maxsim"] is not None:
            w["maxsim_gap"] = max(0.0, best_maxsim - w["maxsim"])
        if hybrid and w["cosine"] is not None:
            w["cosine_gap"] = max(0.0, top - w["cosine"])
    term_groups = tuple(group for groups in groups_by_language.values() for group in groups)
    return Evidence(
        question,
        language,
        answer_type,
        tuple(ScoredWindow(**w) for w in scored),
        unknown_name,
        hybrid,
        term_groups,
        question_tokens,
    )


_LETTERS = re.compile(r"[^\W_]+")


def holds_new_answer(text: str, answer_type: AnswerType, question: str) -> bool:
    """Does `text` hold the kind of answer asked for beyond the question's own words? « À la tête
    d'OpenAI, il… » holds a name for "Wer leitet OpenAI?" only through "OpenAI", which the question gives."""
    if not answer_type:
        return True
    # Letters only, so that elisions and hyphens split words: « d’OpenAI » holds "OpenAI".
    asked = {fold(word) for word in _LETTERS.findall(question)}
    blanked = _LETTERS.sub(lambda m: " " * len(m.group(0)) if fold(m.group(0)) in asked else m.group(0), text)
    return has_answer_type(blanked, answer_type)


def with_discriminating_tokens(evidence: Evidence) -> Evidence:
    """`evidence` with its windows' MaxSim as the extractive answer reads it across languages (hybrid mode, an
    index with token vectors, every statement window in another language than the question): each question
    token weighs how much better its best window matches it than the mean window does (max - mean of its
    best cosines over the statements), so the tokens that tell the windows apart decide. A token every
    window matches alike (« das », « der », or a word piece of « Markt » matching « marché » everywhere) no
    longer flattens the gaps of the tokens that do. A token of a question word that some window holds in its
    own spelling (across languages: a name or a cognate, « Altman », « OpenAI ») keeps the mean weight of
    the others: a name matches the sentences naming it (the subject's introduction, « Originaire de la baie
    de San Francisco, Sam Altman… ») far better than those saying "il", which would let it outweigh the asked
    detail. Only the extractive answer's choice reads it; the abstention gate and the citation check read
    the evidence as it is. Chosen on PIAF dev (`python -m eval.benchmarks.calibrate_hybrid --model DIR`,
    last block; figures in docs/figures-history.md, "The extractive answer")."""
    question = evidence.question_tokens
    statements = evidence.statements
    rows = [w.token_cosines for w in statements if w.token_cosines is not None]
    if (
        not evidence.hybrid
        or question is None
        or len(rows) < 2
        or not all(w.crosslingual and w.cosine is not None for w in statements)
    ):
        return evidence
    columns = list(zip(*rows, strict=True))
    spread = [max(column) - sum(column) / len(column) for column in columns]
    own_spelling = {
        g.word.lower()
        for g in evidence.term_groups
        if g.native and any(g.stems in w.covered_native for w in statements)
    }
    # The question's words as its term groups were read (`content_word_spans`, the project's one word grammar).
    words = content_word_spans(question.query, evidence.language)
    named = [
        any(start <= a < end and word.lower() in own_spelling for start, end, word in words)
        for a, _ in question.offsets
    ]
    others = [s for s, name in zip(spread, named, strict=True) if not name] or spread
    mean = sum(others) / len(others)
    weights = tuple(
        w * (mean if name else s) for w, s, name in zip(question.weights, spread, named, strict=True)
    )
    if sum(weights) <= 0:
        return evidence
    tokens = replace(question, weights=weights)
    windows = [
        w if w.token_cosines is None else replace(w, maxsim=tokens.maxsim(w.token_cosines))
        for w in evidence.windows
    ]
    best = max(w.maxsim for w in windows if w.statement and w.maxsim is not None)
    windows = [w if w.maxsim is None else replace(w, maxsim_gap=max(0.0, best - w.maxsim)) for w in windows]
    return replace(evidence, windows=tuple(windows), question_tokens=tokens)


def with_antecedent(item: ScoredWindow, evidence: Evidence) -> ScoredWindow:
    """`item`, its window extended back to the previous sentence of its passage when the window lacks the
    asked kind of answer beyond the question's words and that sentence holds it: the answer is in the
    antecedent (« Sam Altman… » before « À la tête d'OpenAI, il a su… » for "Wer leitet OpenAI?").
    The quote stays verbatim: the new window is the passage's text between the two offsets."""
    if holds_new_answer(item.window.text, evidence.answer_type, evidence.question):
        return item
    before = [
        w
        for w in evidence.of_passage(item.passage.number)
        if w.window.end <= item.window.start and w.statement
    ]
    if not before:
        return item
    previous = max(before, key=lambda w: w.window.end)
    if not holds_new_answer(previous.window.text, evidence.answer_type, evidence.question):
        return item
    return _joined(item, previous, item)


def with_continuation(
    item: ScoredWindow,
    evidence: Evidence,
    cosine_gap: float,
    *,
    own_spelling: bool = True,
    maxsim_gap: float | None = None,
) -> ScoredWindow:
    """`item`, its window extended to the next sentence of its passage when the evidence runs on there: that
    sentence's window is close to the question by meaning (hybrid mode: its cosine within `cosine_gap` of
    the answer's best window, see `rag.backends.extractive.CONTINUATION_COSINE_GAP`, or its MaxSim within
    `maxsim_gap` of the best window's, see `CONTINUATION_MAXSIM_GAP_CROSSLINGUAL`), or (`own_spelling`) it
    holds question words, in their own spelling, that the quote lacks (the question's words are split over
    two sentences). Verbatim, never across paragraphs."""
    after = [
        w
        for w in evidence.of_passage(item.passage.number)
        if w.window.end > item.window.end and w.window.start >= item.window.start
    ]
    following = min(after, key=lambda w: w.window.end, default=None)
    if following is None or not following.statement:  # a heading or a question: the evidence ends there
        return item
    close = following.cosine is not None and following.cosine_gap <= cosine_gap
    close = close or (
        maxsim_gap is not None and following.maxsim is not None and following.maxsim_gap <= maxsim_gap
    )
    split = own_spelling and bool(following.covered_native - item.covered_native)
    if not (close or split):
        return item
    return _joined(item, item, following)


def _joined(item: ScoredWindow, first: ScoredWindow, last: ScoredWindow) -> ScoredWindow:
    """`item` with its window running from `first`'s start to `last`'s end (the passage's own text)."""
    passage = item.passage
    start, end = first.window.start, last.window.end
    if passage.start <= start and end <= passage.start + len(passage.text):
        text = passage.text[start - passage.start : end - passage.start]
    elif last.window.start < first.window.end:  # a passage rebuilt without its text (benchmarks)
        text = first.window.text + last.window.text[first.window.end - last.window.start :]
    else:
        text = f"{first.window.text} {last.window.text}"
    if "\n\n" in text:  # never across paragraphs
        return item
    window = Window(start, end, text, first.window.stems | last.window.stems)
    return replace(item, window=window)


def is_statement(sentence: str, after: str) -> bool:
    """False for a question ("Quels défis pour OpenAI ?") or a heading: a line of its own ("# Titre",
    "Le parcours de Sam Altman") without a sentence's final punctuation."""
    text = sentence.rstrip()
    if text.endswith("?") or text.startswith("#"):
        return False
    own_line = after in ("", "\n")
    return not (own_line and text and text[-1] not in ".!…:;»”\")'")


def names_unknown_to_corpus(question: str, groups: Sequence[TermGroup], scorer: EvidenceScorer) -> bool:
    """True when the question names something (a capitalised word after the first) found in no chunk."""
    words = question.split()[1:]
    names = {w.strip("?!.,;:«»\"'’()") for w in words if w[:1].isupper()}
    for group in groups:
        if group.word in names and not any(scorer.stats.document_frequency.get(s) for s in group.stems):
            return True
    return False
