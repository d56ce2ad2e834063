"""Split a document into sentences, then pack whole sentences into chunks of a token budget.

Sentences: `index.sentences.split_sentences` (the one sentence splitter of the project).

Chunks: consecutive sentences while their token count fits `chunk_size_tokens` (tokens of the embedding
model, or the approximate counter of index.embedding without a model); the next chunk starts with the
last whole sentences of the previous one that fit `chunk_overlap_tokens`. A chunk does not cross a
section (heading / page) boundary unless it is still tiny. A sentence longer than the budget is cut on
token boundaries. Offsets are exact: document.text[chunk.start:chunk.end] == chunk.text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.embedding import approx_token_spans
from index.records import Chunk, Document, Section
from index.sentences import Span, split_sentences

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
