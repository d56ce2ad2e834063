"""A lexical cross-lingual bridge: translate a query's content words with a bundled en/fr/de glossary.

Why: without a multilingual embedding model (offline installs, this sandbox) retrieval is BM25 only, and an
English or German question shares almost no terms with a French document. `expand_query` turns the question
into a bag of target-language words (surface forms: the target language's BM25 analyzer stems them itself),
which the retriever can add to its lexical query.

How: rag/data/glossary.tsv holds ~5,000 concepts (`en<TAB>fr<TAB>de`, comma-separated forms; see its header
for how the words were chosen). Every form is indexed twice per language: by its accent-folded surface
words and by the index analyzer's stems (`index.lexical.analyze`, so "sociétés" finds "société"). Lookup is
greedy longest-match over the question's words ("how much" before "how"), an exact surface match winning
over a stem match of the same length (so "founded" does not become "find" although both stem to "found").

What it is not: a translator. It has no word-sense disambiguation (all senses of a row are emitted), no
grammar, only three languages. Words outside the glossary pass through as they are when they may match
anyway: names and numbers (digits, inner capitals as in "OpenAI", or a capital letter away from the sentence
start), spelled the same in every language, and any other word of 5+ letters, often a cognate the
documents' stemmer unifies ("integration" / "intégration"; on the cross-lingual PIAF dev set this added 1 to 2
points of English recall@5). Shorter unknown words are dropped. A German word the glossary lacks is also
split into known parts (`Glossary._compound_parts`). Figures: `python -m eval.benchmarks.crosslingual`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from index.lexical import analyze
from index.words import QUESTION_WORDS, STOPWORDS, fold
from rag.errors import RagError

GLOSSARY_LANGUAGES: tuple[str, ...] = ("en", "fr", "de")
# Concepts (by English form) whose stop-word forms are still looked up: the words a question hinges on.
# The English question words (`index.words`), whose "much" and "many" only count inside "how much/many".
_HINGE_CONCEPTS = (QUESTION_WORDS["en"] - {"much", "many"}) | {
    "how much",
    "how many",
    "how long",
    "how old",
    "how often",
}

# Same word/number split as the index analyzer, but on the original text so capitals survive.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
# French elisions (l'entreprise -> entreprise), as the index analyzer drops them for French.
_FRENCH_ELISION = re.compile(r"\b(?:l|d|qu|j|n|s|c|m|t|jusqu|lorsqu|puisqu|quoiqu)['’](?=[^\W\d_])", re.I)
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")
# Between the parts of a German compound: Arbeit-s-markt, Firm-en-wert, Sonne-n-energie ("" first).
_LINKING_ELEMENTS = ("", "s", "es", "n", "en", "e", "er")
# Unknown words this long pass through as they are: many are cognates that the documents' stemmer maps to
# the same term ("integration" / "intégration", "fossils" / "fossiles").
PASS_THROUGH_MIN_LETTERS = 5


class GlossaryFormatError(RagError):
    """The glossary file has a malformed row."""


@dataclass(frozen=True)
class Concept:
    """One glossary row: the surface forms of one meaning in each language."""

    forms: dict[str, tuple[str, ...]]
    line: int


@dataclass(frozen=True)
class _Token:
    text: str
    sentence_initial: bool


def parse_glossary(lines: Iterable[str], source: str = "glossary") -> list[Concept]:
    """Rows of a glossary file; raises GlossaryFormatError naming the line for any malformed row."""
    concepts: list[Concept] = []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != len(GLOSSARY_LANGUAGES):
            raise GlossaryFormatError(
                f"{source}, line {number}: expected 3 TAB-separated columns (en, fr, de), found {len(cells)}: "
                f"{line!r}. Fix the row (use a TAB between columns, commas between forms) or comment it out."
            )
        forms: dict[str, tuple[str, ...]] = {}
        for language, cell in zip(GLOSSARY_LANGUAGES, cells, strict=True):
            items = tuple(form.strip() for form in cell.split(",")) if cell.strip() else ()
            if any(not form for form in items):
                raise GlossaryFormatError(
                    f"{source}, line {number}: empty form in the {language} column {cell!r} "
                    "(a stray comma?). Remove it."
                )
            forms[language] = items
        if not forms["en"]:
            raise GlossaryFormatError(
                f"{source}, line {number}: the en column is empty; every concept needs an English form. "
                "Add one or comment the row out."
            )
        concepts.append(Concept(forms=forms, line=number))
    return concepts


def _tokens(text: str, language: str) -> list[_Token]:
    if language == "fr":
        text = _FRENCH_ELISION.sub("", text)
    tokens: list[_Token] = []
    previous_end = 0
    for match in _TOKEN.finditer(text):
        gap = text[previous_end : match.start()]
        initial = not tokens or bool(_SENTENCE_END.search(gap))
        tokens.append(_Token(match.group(), initial))
        previous_end = match.end()
    return tokens


def _surface_key(word: str) -> str:
    return fold(word)


class Glossary:
    """Concepts indexed by (language, words) for greedy phrase lookup."""

    def __init__(self, concepts: Sequence[Concept]) -> None:
        self.concepts = list(concepts)
        self._surface: dict[str, dict[tuple[str, ...], list[int]]] = {lang: {} for lang in GLOSSARY_LANGUAGES}
        self._stemmed: dict[str, dict[tuple[str, ...], list[int]]] = {lang: {} for lang in GLOSSARY_LANGUAGES}
        self._stem_cache: dict[tuple[str, str], str] = {}
        self.max_phrase_words = 1
        for index, concept in enumerate(self.concepts):
            for language in GLOSSARY_LANGUAGES:
                forms = concept.forms[language]
                for form in forms:
                    words = [token.text for token in _tokens(form, language)]
                    if not words or not self._indexable(words, concept.forms["en"], language):
                        continue
                    self.max_phrase_words = max(self.max_phrase_words, len(words))
                    for table, key in (
                        (self._surface, tuple(_surface_key(word) for word in words)),
                        (self._stemmed, self._stem_key(words, language)),
                    ):
                        ids = table[language].setdefault(key, [])
                        if index not in ids:
                            ids.append(index)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Glossary:
        """The glossary at `path`, or the one bundled with the package (rag/data/glossary.tsv)."""
        if path is None:
            resource = resources.files("rag.data") / "glossary.tsv"
            text, source = resource.read_text(encoding="utf-8"), "rag/data/glossary.tsv"
        else:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
        return cls(parse_glossary(text.splitlines(), source))

    # -- keys -----------------------------------------------------------------------------------------
    def _stem(self, word: str, language: str) -> str:
        key = (language, word)
        stem = self._stem_cache.get(key)
        if stem is None:
            terms = analyze(word, language)
            # Stop words have no stem; keep them (marked) so "how much" / "wie viel" can still be looked up.
            stem = terms[0] if terms else "~" + _surface_key(word)
            if len(self._stem_cache) < 200_000:  # bounded: a long-running server sees endless new words
                self._stem_cache[key] = stem
        return stem

    def _stem_key(self, words: Sequence[str], language: str) -> tuple[str, ...]:
        return tuple(self._stem(word, language) for word in words)

    @staticmethod
    def _indexable(words: Sequence[str], concept_english: Sequence[str], language: str) -> bool:
        """A one-word form that is a stop word ("est" for east) would fire on every French sentence; keep
        it only for the question words (who/qui/wer, how much/combien), which questions depend on."""
        if len(words) > 1 or _surface_key(words[0]) not in STOPWORDS[language]:
            return True
        return any(form.lower() in _HINGE_CONCEPTS for form in concept_english)

    # -- lookup ---------------------------------------------------------------------------------------
    def _match(self, words: Sequence[str], language: str) -> list[int]:
        keys = tuple(_surface_key(word) for word in words)
        surface = self._surface[language].get(keys)
        if surface:
            return surface
        if len(keys) == 1 and keys[0] in STOPWORDS[language]:
            return []  # a function word matches by its exact form only: "wurden" is not "Würde" (dignity)
        return self._stemmed[language].get(self._stem_key(words, language), [])

    def translations(self, word: str, source_lang: str, target_lang: str) -> list[str]:
        """Forms in `target_lang` of every concept whose `source_lang` form matches `word` (or phrase)."""
        if not _supported(source_lang, target_lang):
            return []
        words = [token.text for token in _tokens(word, source_lang)]
        if not words:
            return []
        return _unique(
            form for index in self._match(words, source_lang) for form in self._forms(index, target_lang)
        )

    def knows(self, word: str, language: str) -> bool:
        """Whether `word` is a word of `language` the glossary holds (by its form or stem; in German also a
        compound of known parts): a common word, not a name, wherever it stands ("Jahr", "Mitarbeiter")."""
        if language not in GLOSSARY_LANGUAGES:
            return False
        words = [token.text for token in _tokens(word, language)]
        if not words:
            return False
        return bool(self._match(words, language)) or (
            language == "de" and len(words) == 1 and bool(self._compound_parts(words[0]))
        )

    def expand_query(self, text: str, source_lang: str, target_langs: Sequence[str]) -> str:
        """The translations of `text`'s content words into `target_langs`, space-joined (see module doc)."""
        targets = [lang for lang in dict.fromkeys(target_langs) if _supported(source_lang, lang)]
        if not targets:
            return ""
        tokens = _tokens(text, source_lang)
        output: list[str] = []
        position = 0
        while position < len(tokens):
            matched, length = self._longest_match(tokens, position, source_lang)
            if matched:
                for index in matched:
                    for target in targets:
                        output.extend(self._forms(index, target))
                token = tokens[position]
                # A capitalised single word mid-sentence may be a name that merely looks like a word
                # ("Apple"); German capitalises every noun, so there it is no signal.
                if length == 1 and source_lang != "de" and _looks_like_name(token):
                    output.append(token.text)
                position += length
                continue
            token = tokens[position]
            if source_lang == "de":
                for index in self._compound_parts(token.text):
                    for target in targets:
                        output.extend(self._forms(index, target))
            if (
                _looks_like_name(token)
                or _is_number(token.text)
                or _cognate_candidate(token.text, source_lang)
            ):
                output.append(token.text)
            position += 1
        return " ".join(_unique(output))

    def _longest_match(self, tokens: Sequence[_Token], start: int, language: str) -> tuple[list[int], int]:
        longest = min(self.max_phrase_words, len(tokens) - start)
        for length in range(longest, 0, -1):
            words = [token.text for token in tokens[start : start + length]]
            if length == 1 and _is_number(words[0]):
                return [], 1
            matched = self._match(words, language)
            if matched:
                return matched, length
        return [], 1

    def _compound_parts(self, word: str) -> list[int]:
        """Concepts of a German compound the glossary lacks, from its parts: "Rechenleistung" -> "Leistung"
        (the head, last part, 4+ letters) and, when known too, "Rechen" (the modifier, 3+ letters, a linking
        -s/-es/-n/-en/-e/-er allowed, itself split again: "Arbeitsmarktpolitik" -> Arbeit, Markt, Politik).
        The longest known head wins; [] when no head is known."""
        if len(word) < 7 or not word.isalpha():
            return []
        lower = word.lower()
        for cut in range(3, len(lower) - 3):
            modifier, head = lower[:cut], lower[cut:]
            head_ids = self._match([head], "de")
            if not head_ids:
                continue
            for link in _LINKING_ELEMENTS:
                base = modifier[: len(modifier) - len(link)] if modifier.endswith(link) else ""
                modifier_ids = (
                    (self._match([base], "de") or self._compound_parts(base)) if len(base) >= 3 else []
                )
                if modifier_ids:
                    return modifier_ids + head_ids
            return head_ids
        return []

    def _forms(self, index: int, language: str) -> tuple[str, ...]:
        return self.concepts[index].forms[language]


def _supported(source_lang: str, target_lang: str) -> bool:
    return (
        source_lang in GLOSSARY_LANGUAGES and target_lang in GLOSSARY_LANGUAGES and source_lang != target_lang
    )


def _is_number(word: str) -> bool:
    return any(ch.isdigit() for ch in word)


def _cognate_candidate(word: str, language: str) -> bool:
    return (
        len(word) >= PASS_THROUGH_MIN_LETTERS
        and word.isalpha()
        and _surface_key(word) not in STOPWORDS[language]
    )


def _looks_like_name(token: _Token) -> bool:
    word = token.text
    if len(word) < 2:
        return False
    if any(ch.isupper() for ch in word[1:]):  # OpenAI, iPhone, acronyms (UE, GPT): names anywhere
        return True
    return word[0].isupper() and not token.sentence_initial


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


_GLOSSARY_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _load_default_glossary() -> Glossary:
    return Glossary.load()


def default_glossary() -> Glossary:
    """The bundled glossary, loaded and indexed on first use (a few hundred ms), then shared. Loaded once
    even when many questions need it at the same moment (`lru_cache` alone lets each of them load it)."""
    with _GLOSSARY_LOCK:
        return _load_default_glossary()


def expand_query(text: str, source_lang: str, target_langs: Sequence[str]) -> str:
    """Translations of the content words of `text` (in `source_lang`) into `target_langs`, space-joined.

    Multi-word expressions are matched first ("how much" -> "combien"); names and numbers pass through;
    other unknown words are dropped. Returns "" when no target differs from the source or a language is not
    one of en, fr, de.
    """
    return default_glossary().expand_query(text, source_lang, target_langs)


def translations(word: str, source_lang: str, target_lang: str) -> list[str]:
    """Forms of `word` (one word or an expression in `source_lang`) in `target_lang`; [] when unknown."""
    return default_glossary().translations(word, source_lang, target_lang)


def is_known_word(word: str, language: str) -> bool:
    """Whether the bundled glossary holds `word` as a word of `language` (see `Glossary.knows`)."""
    return default_glossary().knows(word, language)
