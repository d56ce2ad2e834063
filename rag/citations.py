"""Parse the `[n]` markers of an answer and verify each against the passage it names.

- Markers: the grammar of `rag.markers` (`[1]`, `[1, 3]`, `[1][3]`, `[1-3]` read as 1, 2, 3).
- Claims: the answer is split into sentences (quoted spans kept whole); a claim's markers are the ones
  inside or right after it.
- Verification: for a claim citing passage n, the best supporting window of sentences of that passage is
  found by IDF-weighted lexical coverage of the claim's content words (stems of the document's language,
  with cross-lingual expansion when the answer and the document differ in language); when an embedder is
  given, a window may instead score (1 - DENSE_SHARE) * its coverage + DENSE_SHARE * cosine, if higher. The window's character
  offsets into the document are kept for highlighting, with its support score (0..1).
- Outcome: a support below `support_threshold` -> the marker is listed in `CitationReport.unsupported`
  (the citation is kept, flagged `supported=False`); a marker naming no passage -> dropped and counted in
  `CitationReport.dropped_markers`; a claim without any marker -> `CitationReport.uncited_sentences`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.sentences import split_sentences
from rag.evidence import EvidenceScorer, Window, content_words, sentence_windows
from rag.markers import MARKER_RUN, parse_markers, strip_markers
from rag.prompts import EXTRACTIVE_LEAD_INS
from rag.protocols import TextEmbedder
from rag.records import Citation, CitationReport, Passage

DENSE_SHARE = 0.3  # weight of the embedding cosine in a citation's support (hybrid mode only)


@dataclass(frozen=True, slots=True)
class Claim:
    text: str  # the sentence as written, markers included
    markers: list[int]


def split_claims(answer: str) -> list[Claim]:
    """Answer sentences with their markers. A marker run opening a sentence belongs to the previous one
    ("… sommets. [2] Ensuite …" cites [2] for the first sentence)."""
    spans = split_sentences(answer, protect_quotes=True)
    claims: list[Claim] = []
    for span in spans:
        text = answer[span.start : span.end]
        leading = MARKER_RUN.match(text)
        if leading and claims:
            previous = claims[-1]
            run = leading.group(0).strip()
            claims[-1] = Claim(f"{previous.text} {run}", previous.markers + parse_markers(run))
            text = text[leading.end() :].strip()
        if not text:
            continue
        claims.append(Claim(text, parse_markers(text)))
    return claims


def _is_lead_in_only(text: str) -> bool:
    bare = strip_markers(text).strip().rstrip(":").strip()
    return not bare or any(bare == lead.rstrip(":").strip() for lead in EXTRACTIVE_LEAD_INS.values())


class CitationVerifier:
    """Checks the claims of an answer against the passages they cite."""

    def __init__(
        self,
        scorer: EvidenceScorer,
        language_of: Callable[[str], str],
        chunk_span: Callable[[str], tuple[int, int]] | None = None,
        *,
        embedder: TextEmbedder | None = None,
        support_threshold: float = 0.5,
    ) -> None:
        self.scorer = scorer
        self.language_of = language_of
        self.chunk_span = chunk_span
        self.embedder = embedder
        self.support_threshold = support_threshold

    def _best_window(self, claim: str, answer_language: str, passage: Passage) -> tuple[Window | None, float]:
        doc_language = self.language_of(passage.doc_id)
        groups = self.scorer.term_groups(claim, answer_language, doc_language)
        windows = sentence_windows(self.scorer, passage.text, passage.start, doc_language, with_context=False)
        # Pairs of adjacent sentences too: a claim often condenses two of them.
        pairs = [
            Window(
                a.start,
                b.end,
                passage.text[a.start - passage.start : b.end - passage.start],
                a.stems | b.stems,
            )
            for a, b in zip(windows, windows[1:], strict=False)
        ]
        best: Window | None = None
        best_score = 0.0
        for window in [*windows, *pairs]:
            # A pair must do better than its best sentence by a margin, else the tighter span wins.
            score = EvidenceScorer.coverage(groups, window.stems) - (0.02 if window in pairs else 0.0)
            if score > best_score:
                best, best_score = window, score
        if self.embedder is not None and windows:
            # The embedding can lift a paraphrase (or a claim in another language) by at most DENSE_SHARE:
            # raw cosines are not comparable across models, so they never decide support alone.
            dense_best, cosine = self._dense_best(claim, windows)
            dense_best_stems = EvidenceScorer.coverage(groups, dense_best.stems)
            blended = (1 - DENSE_SHARE) * dense_best_stems + DENSE_SHARE * max(0.0, cosine)
            if blended > best_score:
                best, best_score = dense_best, blended
        if best is None and windows:
            best = windows[0]
        return best, max(0.0, min(1.0, best_score))

    def _dense_best(self, claim: str, windows: Sequence[Window]) -> tuple[Window, float]:
        import numpy as np

        query = np.asarray(self.embedder.embed_query(claim), dtype=np.float32)
        vectors = np.asarray(self.embedder.embed_passages([w.text for w in windows], show_progress=False))
        cosines = vectors @ query
        index = int(np.argmax(cosines))
        return windows[index], float(cosines[index])

    def _chunk_of(self, passage: Passage, start: int) -> str:
        if self.chunk_span is not None:
            for chunk_id in passage.chunk_ids:
                chunk_start, chunk_end = self.chunk_span(chunk_id)
                if chunk_start <= start < chunk_end:
                    return chunk_id
        return passage.chunk_ids[0] if passage.chunk_ids else ""

    def verify(
        self, answer: str, language: str, passages: Sequence[Passage]
    ) -> tuple[list[Citation], CitationReport]:
        by_number = {p.number: p for p in passages}
        citations: list[Citation] = []
        report = CitationReport()
        for claim in split_claims(answer):
            if not claim.markers:
                if content_words(claim.text, language) and not _is_lead_in_only(claim.text):
                    report.uncited_sentences.append(claim.text)
                continue
            bare = strip_markers(claim.text)
            for marker in claim.markers:
                passage = by_number.get(marker)
                if passage is None:
                    report.dropped_markers.append(marker)
                    continue
                window, support = self._best_window(bare, language, passage)
                if window is None:
                    start, end, quote = passage.start, passage.end, passage.text
                else:
                    start, end, quote = window.start, window.end, window.text
                supported = support >= self.support_threshold
                if not supported and marker not in report.unsupported:
                    report.unsupported.append(marker)
                citations.append(
                    Citation(
                        marker=marker,
                        chunk_id=self._chunk_of(passage, start),
                        doc_id=passage.doc_id,
                        source=passage.source,
                        sentence=claim.text,
                        quote=quote,
                        start=start,
                        end=end,
                        support=round(support, 4),
                        supported=supported,
                    )
                )
        return citations, report
