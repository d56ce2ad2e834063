"""Split a document into sentences, then pack whole sentences into chunks of a token budget.

Sentences: a boundary is a ., !, ? or … (optionally followed by closing quotes/brackets) followed by
space and a capital, a digit, an opening quote or a dash; not after a known abbreviation (M., Mme, Dr,
p. ex., St, etc.), a single-letter initial (J. K. Rowling) or a list number at the start of a line.
Decimal and thousands separators (3,5 ; 1.000) are not followed by a space, so never boundaries. Line
breaks: a blank line always ends a sentence; a single line break ends one unless the next line starts
in lower case (a wrapped line), so headings and "- " list items are their own sentences.

Chunks: consecutive sentences while their token count fits `chunk_size_tokens` (tokens of the embedding
model, or the approximate counter of index.embedding without a model); the next chunk starts with the
last whole sentences of the previous one that fit `chunk_overlap_tokens`. A chunk does not cross a
section (heading / page) boundary unless it is still tiny. A sentence longer than the budget is cut on
token boundaries. Offsets are exact: document.text[chunk.start:chunk.end] == chunk.text.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.embedding import approx_token_spans
from index.records import Chunk, Document, Section

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
_WORD_BEFORE = re.compile(r"([^\s(«\"“]+)$")


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int


def _is_abbreviation(text: str, dot: int, line_start: int) -> bool:
    """True when the '.' at `dot` closes an abbreviation, an initial or a leading list number."""
    match = _WORD_BEFORE.search(text, line_start, dot)
    if not match:
        return False
    word = match.group(1)
    lowered = word.lower().rstrip(".")
    if lowered in ABBREVIATIONS or lowered.split(".")[-1] in ABBREVIATIONS and "." in lowered:
        return True
    if len(word) == 1 and word.isalpha() and word.isupper():
        return True  # initial: "J. K. Rowling"
    if "." in word and all(len(p) <= 2 for p in word.split(".") if p):
        return True  # "p.ex", "J.-C", "U.S"
    return bool(word.isdigit() and len(word) <= 3 and not text[line_start : match.start()].strip())


def _starts_sentence(text: str, pos: int) -> bool:
    """Does a sentence plausibly start at the first non-space character from `pos`?"""
    n = len(text)
    while pos < n and text[pos] in " \t\u00a0\u202f":
        pos += 1
    if pos >= n or text[pos] == "\n":
        return True
    ch = text[pos]
    return ch.isupper() or ch.isdigit() or ch in _OPENERS


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[Span]:
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


# -- token counting -------------------------------------------------------------------------------------
CountBatch = Callable[[Sequence[str]], list[int]]
TokenSpans = Callable[[str], list[tuple[int, int]]]


def approx_count_batch(texts: Sequence[str]) -> list[int]:
    return [len(approx_token_spans(text)) for text in texts]


@dataclass(frozen=True, slots=True)
class ChunkingSettings:
    chunk_size_tokens: int = 256
    chunk_overlap_tokens: int = 76
    min_section_tokens: int = 24  # a smaller chunk is carried over a section boundary (lone headings)

    def __post_init__(self) -> None:
        if self.chunk_overlap_tokens >= self.chunk_size_tokens:
            raise ValueError(
                f"chunk_overlap_tokens ({self.chunk_overlap_tokens}) must be smaller than chunk_size_tokens "
                f"({self.chunk_size_tokens}); lower RAG_INDEX__CHUNK_OVERLAP_TOKENS."
            )


def chunk_id_for(doc_id: str, start: int, end: int, text: str) -> str:
    digest = hashlib.sha256(f"{doc_id}\x00{start}\x00{end}\x00{text}".encode()).hexdigest()
    return digest[:24]


def _section_of(sections: Sequence[Section], start: int, end: int) -> Section | None:
    """The section overlapping [start, end) the most."""
    best, best_overlap = None, 0
    for section in sections:
        overlap = min(end, section.end) - max(start, section.start)
        if overlap > best_overlap:
            best, best_overlap = section, overlap
    return best


def _split_long(text: str, span: Span, budget: int, token_spans: TokenSpans) -> list[Span]:
    """Cut an over-long sentence on token boundaries into pieces of at most `budget` tokens."""
    pieces: list[Span] = []
    tokens = token_spans(text[span.start : span.end])
    for lo in range(0, len(tokens), budget):
        window = tokens[lo : lo + budget]
        a = span.start + window[0][0]
        b = span.start + (tokens[lo + budget][0] if lo + budget < len(tokens) else span.end - span.start)
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            pieces.append(Span(a, b))
    return pieces or [span]


def chunk_document(
    document: Document,
    settings: ChunkingSettings | None = None,
    *,
    count_batch: CountBatch = approx_count_batch,
    token_spans: TokenSpans = approx_token_spans,
) -> list[Chunk]:
    """Chunks of one document (see the module docstring for the rules)."""
    settings = settings or ChunkingSettings()
    text = document.text
    sections = document.sections or [Section(0, len(text))]
    budget = settings.chunk_size_tokens
    # Sentences, each tagged with its section; gaps between sections (e.g. page separators) are skipped.
    sentences: list[Span] = []
    section_of: list[int] = []
    for number, section in enumerate(sections):
        for span in split_sentences(text, section.start, section.end):
            sentences.append(span)
            section_of.append(number)
    counts = count_batch([text[s.start : s.end] for s in sentences])
    units: list[tuple[Span, int, int]] = []  # (span, tokens, section number)
    for span, count, number in zip(sentences, counts, section_of, strict=True):
        if count <= budget:
            units.append((span, count, number))
            continue
        pieces = _split_long(text, span, budget, token_spans)
        for piece, piece_count in zip(
            pieces, count_batch([text[p.start : p.end] for p in pieces]), strict=True
        ):
            units.append((piece, piece_count, number))

    groups: list[tuple[int, int]] = []  # [first, last] unit indices of each chunk
    first = 0
    while first < len(units):
        total = units[first][1]
        last = first
        while last + 1 < len(units):
            nxt_tokens, nxt_section = units[last + 1][1], units[last + 1][2]
            if total + nxt_tokens > budget:
                break
            if nxt_section != units[last][2] and total >= settings.min_section_tokens:
                break
            total += nxt_tokens
            last += 1
        groups.append((first, last))
        if last + 1 >= len(units):
            break
        # Overlap: the last whole sentences of this chunk, within budget, same section as what follows.
        nxt = last + 1
        overlap_total = 0
        while (
            nxt - 1 > first
            and units[nxt - 1][2] == units[last + 1][2]
            and overlap_total + units[nxt - 1][1] <= settings.chunk_overlap_tokens
        ):
            nxt -= 1
            overlap_total += units[nxt][1]
        first = nxt

    chunks: list[Chunk] = []
    for ordinal, (lo, hi) in enumerate(groups):
        start, end = units[lo][0].start, units[hi][0].end
        piece = text[start:end]
        section = _section_of(sections, start, end)
        chunks.append(
            Chunk(
                chunk_id=chunk_id_for(document.doc_id, start, end, piece),
                doc_id=document.doc_id,
                source=document.source,
                title=document.title,
                text=piece,
                start=start,
                end=end,
                ordinal=ordinal,
                heading_path=section.heading_path if section else (),
                page=section.page if section else None,
            )
        )
    return chunks
