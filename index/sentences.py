"""The one sentence splitter: documents (chunking, evidence windows) and answers (claims) are split here.

A boundary is a ., !, ? or … (optionally followed by closing quotes/brackets) followed by space and a
capital, a digit, an opening quote, bracket or dash; not after a known abbreviation (M., Mme, Dr, p. ex.,
St, etc.), a single-letter initial (J. K. Rowling) or a list number at the start of a line. Decimal and
thousands separators (3,5 ; 1.000) are not followed by a space, so never boundaries. Line breaks: a blank
line always ends a sentence; a single line break ends one unless the next line starts in lower case (a
wrapped line), so headings and "- " list items are their own sentences.

`protect_quotes` (for answers): no cut inside «…» or “…”: an extractive answer quotes several document
sentences in one claim and carries one marker for all of them.

Changing what this returns for documents changes chunk boundaries: bump `SPLITTER_VERSION` (indexes are
then re-chunked on their next update).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

SPLITTER_VERSION = 1

# Lower-cased, without the final dot. Both French and English usage.
ABBREVIATIONS = frozenset(
    [
        "m",
        "mm",
        "mme",
        "mmes",
        "mlle",
        "mlles",
        "dr",
        "drs",
        "pr",
        "me",
        "mgr",
        "st",
        "ste",
        "sts",
        "stes",
        "cie",
        "ets",
        "ex",
        "p",
        "pp",
        "cf",
        "cf.",
        "env",
        "etc",
        "vol",
        "vols",
        "chap",
        "art",
        "fig",
        "figs",
        "no",
        "nos",
        "n°",
        "éd",
        "ed",
        "coll",
        "ibid",
        "op",
        "cit",
        "av",
        "apr",
        "j.-c",
        "jc",
        "mr",
        "mrs",
        "ms",
        "prof",
        "jr",
        "sr",
        "vs",
        "e.g",
        "i.e",
        "al",
        "sq",
        "sqq",
        "hab",
        "tél",
        "tel",
        "ann",
        "réf",
        "ref",
        "dép",
        "min",
        "max",
        "approx",
        "inc",
        "ltd",
        "co",
        "corp",
        "gén",
        "gal",
        "col",
        "cdt",
        "lt",
        "sgt",
        "capt",
        "adm",
        "bd",
        "av.",
        "fg",
        "janv",
        "févr",
        "fév",
        "avr",
        "juil",
        "sept",
        "oct",
        "nov",
        "déc",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "dec",
    ]
)

_CLOSERS = "»\"”’')]}"
_OPENERS = "«\"“‘'([{-–—¿¡"
# Candidate end: terminal punctuation, optional closers (French puts a space before »), then whitespace.
_END = re.compile(r"(?:\.{3}|…|[.!?])+(?:[ \u00a0\u202f]?[" + re.escape(_CLOSERS) + r"])*(?=\s)")
_NEWLINE = re.compile(r"[ \t]*(\n)[ \t]*")
_WORD_STOPS = '(«"“'  # with whitespace, what ends the word before a full stop


@dataclass(frozen=True, slots=True)
class Span:
    """A sentence: offsets into the text it was split from, surrounding whitespace excluded."""

    start: int
    end: int


def _word_start(text: str, dot: int, line_start: int) -> int:
    """Where the word that ends at `dot` begins (`dot` when there is none): a walk back over that word only.
    (A regex search from the line's start scanned the whole line for every full stop: a 500 kB text on
    one line took minutes to split.)"""
    start = dot
    while start > line_start and not text[start - 1].isspace() and text[start - 1] not in _WORD_STOPS:
        start -= 1
    return start


def _is_abbreviation(text: str, dot: int, line_start: int) -> bool:
    """True when the '.' at `dot` closes an abbreviation, an initial or a leading list number."""
    start = _word_start(text, dot, line_start)
    if start == dot:
        return False
    word = text[start:dot]
    lowered = word.lower().rstrip(".")
    if lowered in ABBREVIATIONS or lowered.split(".")[-1] in ABBREVIATIONS and "." in lowered:
        return True
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # initial: "J. K. Rowling"
    if "." in word and all(len(p) <= 2 for p in word.split(".") if p):
        return True  # "p.ex", "J.-C", "U.S"
    return bool(word.isdigit() and len(word) <= 3 and _only_spaces_before(text, start, line_start))


def _only_spaces_before(text: str, position: int, line_start: int) -> bool:
    while position > line_start and text[position - 1].isspace():
        position -= 1
    return position == line_start


def _starts_sentence(text: str, pos: int) -> bool:
    """Does a sentence plausibly start at the first non-space character from `pos`?"""
    n = len(text)
    while pos < n and text[pos] in " \t\u00a0\u202f":
        pos += 1
    if pos >= n or text[pos] == "\n":
        return True
    ch = text[pos]
    return ch.isupper() or ch.isdigit() or ch in _OPENERS


def _inside_quote(text: str, position: int) -> bool:
    before = text[:position]
    return before.count("«") > before.count("»") or before.count("“") > before.count("”")


def split_sentences(
    text: str, start: int = 0, end: int | None = None, *, protect_quotes: bool = False
) -> list[Span]:
    """Sentence spans of text[start:end], trimmed of surrounding whitespace, in order."""
    end = len(text) if end is None else end
    cuts: set[int] = set()
    # Line breaks first.
    line_starts = [start]
    for match in _NEWLINE.finditer(text, start, end):
        pos = match.start(1)
        line_starts.append(pos + 1)
        prev_char = text[match.start() - 1] if match.start() > start else ""
        next_char = text[match.end()] if match.end() < end else ""
        blank = next_char == "\n"
        wrapped = bool(next_char) and (next_char.islower() or next_char in ",;)") and prev_char not in ".!?:…"
        if blank or not wrapped:
            cuts.add(pos)
    # Then punctuation.
    for match in _END.finditer(text, start, end):
        dot = match.start()
        after = match.end()
        line_start = line_starts[bisect_right(line_starts, dot) - 1]
        if (
            text[dot] == "."
            and match.group().startswith(".")
            and not match.group().startswith("...")
            and (_is_abbreviation(text, dot, line_start))
        ):
            continue
        if _starts_sentence(text, after):
            cuts.add(after)
    if protect_quotes:
        cuts = {cut for cut in cuts if not _inside_quote(text[:cut], cut)}
    spans: list[Span] = []
    previous = start
    for cut in sorted(cuts) + [end]:
        a, b = previous, cut
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            spans.append(Span(a, b))
        previous = cut
    return spans
