"""Sentence splitting with character offsets, for passages (evidence spans) and answers (claims).

Passages are split on sentence-final punctuation followed by a capital, on line breaks (headings, list
items) and never inside a number ("3,5", "1.2"). Answers are split the same way except that quoted
spans («…», “…”) are kept whole: an extractive answer quotes several document sentences in one claim
and carries one marker for all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A boundary: . ! ? … (optionally followed by closing quotes/brackets) then whitespace then something that
# starts a sentence (capital, digit, opening quote, dash of a list item).
# French typography puts a space before a closing guillemet ("Deux. » Ensuite"); an answer's sentence often
# ends with its citation marker ("… sommets [2] Ensuite").
_BOUNDARY = re.compile(
    r"(?:(?<=[.!?…])[\"»”’)\]]*|(?<=[.!?…]\s[»”])|(?<=\d\]))\s+"
    r"(?=[\"«“(\[\-–•*]?\s*[A-ZÀ-ÖØ-Þ0-9])"
)
_LINE_BREAK = re.compile(r"\n+")
# Abbreviations after which a period does not end a sentence.
_ABBREVIATIONS = frozenset(
    [
        "m",
        "mm",
        "mme",
        "mlle",
        "dr",
        "pr",
        "st",
        "ste",
        "etc",
        "cf",
        "p",
        "pp",
        "vol",
        "no",
        "nr",
        "art",
        "av",
        "apr",
        "env",
        "ex",
        "fig",
        "mr",
        "mrs",
        "ms",
        "prof",
        "inc",
        "ltd",
        "vs",
        "e.g",
        "i.e",
        "z.b",
        "bzw",
        "usw",
    ]
)
_LIST_BULLET = re.compile(r"^\s*(?:[-–•*]|\d+[.)])\s+")


@dataclass(frozen=True, slots=True)
class Span:
    """A sentence of a text: `text == source[start:end]` (stripped of surrounding whitespace)."""

    start: int
    end: int
    text: str


def _ends_with_abbreviation(piece: str) -> bool:
    match = re.search(r"(\S+)\.$", piece.rstrip('"»”’)] '))
    if not match:
        return False
    word = match.group(1).lower().lstrip('(«“"')
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _split_line(text: str, offset: int, protect_quotes: bool) -> list[Span]:
    cuts = [0]
    for match in _BOUNDARY.finditer(text):
        before = text[cuts[-1] : match.start()]
        if _ends_with_abbreviation(before):
            continue
        if protect_quotes and _inside_quote(text, match.start()):
            continue
        cuts.append(match.end())
    cuts.append(len(text))
    spans = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        piece = text[start:end]
        stripped = piece.strip()
        if not stripped:
            continue
        lead = len(piece) - len(piece.lstrip())
        spans.append(Span(offset + start + lead, offset + start + lead + len(stripped), stripped))
    return spans


def _inside_quote(text: str, position: int) -> bool:
    before = text[:position]
    if before.count("«") > before.count("»"):
        return True
    return before.count("“") > before.count("”")


def split_sentences(text: str, *, protect_quotes: bool = False) -> list[Span]:
    """Sentences of `text` with offsets into it. Line breaks always end a sentence (unless inside a quote)."""
    spans: list[Span] = []
    position = 0
    for match in [*_LINE_BREAK.finditer(text), None]:
        end = match.start() if match else len(text)
        line = text[position:end]
        if protect_quotes and match and _inside_quote(text[: match.start()], match.start()):
            continue  # a quote that spans lines stays one claim
        spans.extend(_split_line(line, position, protect_quotes))
        if match:
            position = match.end()
    return spans


def is_list_item(sentence: str) -> bool:
    return bool(_LIST_BULLET.match(sentence))
