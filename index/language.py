"""Language detection by stop words (the word lists are in `index.words`).

Detection counts how many of a text's words are frequent function words of each language; it is
deterministic, needs no model and is good enough to pick a stemmer for a paragraph. Short texts (queries)
are the hard case: French-only letters (é, è, ç, à, ...) and elisions (l', d', qu') add weight to French,
and ties fall back to the caller's `default`.
"""

from __future__ import annotations

import re
import unicodedata

from index.words import LANGUAGES, QUESTION_WORDS, STOPWORDS, fold_accents

_WORD = re.compile(r"[^\W\d_]+")
_FRENCH_LETTERS = frozenset("èêçùûîœë")  # shared with pt/es/it only in part: a hint, capped
_FRENCH_ELISION = re.compile(r"\b(?:l|d|qu|j|n|s|c|m|t|jusqu|lorsqu|puisqu)['’][^\W\d_]", re.IGNORECASE)


def detect_language(text: str, default: str = "en") -> str:
    """Best guess among fr, en, de, es, it, nl, pt from stop-word counts; `default` for empty or unknown text.

    Only the first ~2,000 words are looked at: more does not change the answer and keeps it fast.
    """
    words = _WORD.findall(text.lower())[:2000]
    if not words:
        return default
    scores = dict.fromkeys(LANGUAGES, 0.0)
    for word in words:
        folded = fold_accents(word)
        for lang in LANGUAGES:
            if folded in STOPWORDS[lang]:
                scores[lang] += 1.0
            if folded in QUESTION_WORDS[lang]:
                scores[lang] += 0.5
    # Letters and elisions that are (nearly) French-only: they decide short questions like "Qui a fondé X".
    lowered = text.lower()
    scores["fr"] += min(2.0, 0.25 * sum(1 for ch in lowered if ch in _FRENCH_LETTERS))
    scores["fr"] += 1.0 * len(_FRENCH_ELISION.findall(text))
    best = max(LANGUAGES, key=lambda lang: (scores[lang], lang == default))
    return best if scores[best] > 0 else default


DOCUMENT_LANGUAGE_DEFAULT = "fr"
DOCUMENT_LANGUAGE_SAMPLE = 20_000  # characters; detection reads at most ~2,000 words of them anyway


def document_language(text: str) -> str:
    """The language of a whole document: decided once, when it is indexed, and stored with it.

    The one place that decides it (readers and test fakes call this, never `detect_language` with their
    own sample size or default)."""
    return detect_language(text[:DOCUMENT_LANGUAGE_SAMPLE], default=DOCUMENT_LANGUAGE_DEFAULT)


# Scripts whose languages the stop-word detector cannot see: (prefix of the Unicode character name, code).
_SCRIPTS = (
    ("CJK", "zh"),
    ("HIRAGANA", "ja"),
    ("KATAKANA", "ja"),
    ("HANGUL", "ko"),
    ("CYRILLIC", "ru"),
    ("ARABIC", "ar"),
    ("HEBREW", "he"),
    ("GREEK", "el"),
    ("DEVANAGARI", "hi"),
    ("THAI", "th"),
)


def script_language(text: str) -> str | None:
    """The language of a text mostly written in a non-Latin script ('zh' for Han, 'ja' when kana appear,
    'ru' for Cyrillic, ...), or None for Latin-script text, so that a brand name in Latin letters inside a
    Chinese question does not make it French."""
    counts: dict[str, int] = {}
    latin = 0
    for ch in text[:2000]:
        if not ch.isalpha():
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("LATIN"):
            latin += 1
            continue
        for prefix, code in _SCRIPTS:
            if name.startswith(prefix):
                counts[code] = counts.get(code, 0) + 1
                break
    if "ja" in counts:  # Japanese mixes kanji (CJK) with kana
        counts["ja"] += counts.pop("zh", 0)
    if not counts:
        return None
    code, count = max(counts.items(), key=lambda item: item[1])
    # A Han or kana character is about a word, a Latin word about five letters: half as many is a majority.
    return code if 2 * count >= latin else None
