"""Parse the `[n]` markers of an answer and verify each against the passage it names.

- Markers: the grammar of `rag.markers` (`[1]`, `[1, 3]`, `[1][3]`, `[1-3]` read as 1, 2, 3).
- Claims: the answer is split into sentences (quoted spans kept whole); a claim's markers are the ones
  inside or right after it.
- Verification: for a claim citing passage n, the best supporting window of sentences of that passage is
  found by IDF-weighted lexical coverage of the claim's content words (stems of the document's language,
  with cross-lingual expansion when the answer and the document differ in language). The windows and their
  scores against the question come from the answer's evidence step (`rag.evidence`): a window that holds the
  claim's words but does not itself answer the question (`rag.abstention.answers_question`: the abstention
  gate applied to that window alone, lexical and, in hybrid mode, semantic; or, in hybrid mode, the window
  closest to the question by meaning, `answers_by_meaning`) supports nothing. No model is
  called. The window's character offsets into the document are kept for highlighting, with its support
  score (0..1).
- Outcome: a support below `support_threshold` -> the marker is listed in `CitationReport.unsupported`
  (the citation is kept, flagged `supported=False`); a marker naming no passage -> dropped and counted in
  `CitationReport.dropped_markers`; a claim without any marker -> `CitationReport.uncited_sentences`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from index.sentences import split_sentences
from rag.abstention import HybridGate, answers_question
from rag.evidence import Evidence, EvidenceScorer, ScoredWindow, Window, collect_evidence, content_words
from rag.markers import MARKER_RUN, parse_markers, strip_markers
from rag.prompts import EXTRACTIVE_LEAD_INS
from rag.records import Citation, CitationReport, Passage

#: The support a citation keeps at most when its window does not answer the question: below any threshold
#: worth using, so the citation is flagged "not supported" however many words it shares with the claim.
OFF_QUESTION_SUPPORT = 0.25


def answers_by_meaning(item: ScoredWindow, evidence: Evidence) -> bool:
    """Hybrid mode: the window is the closest of the answer's windows to the question by meaning (best
    cosine) and holds the kind of answer asked for. Such a window answers the question even when it shares
    no word with it ("How much is OpenAI valued at?" -> « 80 milliards de dollars. C'est la valorisation… »,
    where no glossary entry links "valued" to « valorisation »). On PIAF dev (`python -m
    eval.benchmarks.calibrate_hybrid --model DIR`) it holds the gold answer more often than a window that
    passes the lexical test (fr 0.57, en 0.61, de 0.50 against 0.29, 0.26, 0.27)."""
    return evidence.hybrid and item.cosine is not None and item.typed and item.cosine_gap <= 0.0


_QUOTE = re.compile(r"«\s*(.+?)\s*»|“(.+?)”")


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
        support_threshold: float = 0.5,
        gate: HybridGate | None = None,
    ) -> None:
        self.gate = gate  # the embedding model's abstention gate (hybrid mode), see rag.abstention
        self.scorer = scorer
        self.language_of = language_of
        self.chunk_span = chunk_span
        self.support_threshold = support_threshold

    def _windows(self, passage: Passage, evidence: Evidence | None) -> list[ScoredWindow]:
        if evidence is not None:
            found = evidence.of_passage(passage.number)
            if found:
                return found
        return list(
            collect_evidence(
                "", self.language_of(passage.doc_id), [passage], self.scorer, self.language_of
            ).windows
        )

    def _best_window(
        self, claim: str, answer_language: str, passage: Passage, evidence: Evidence | None
    ) -> tuple[Window | None, float, ScoredWindow | None]:
        """The window (or pair of adjacent windows) of `passage` that best supports `claim`, its support
        (IDF-weighted coverage of the claim's words, 0..1) and the evidence of its last window."""
        doc_language = self.language_of(passage.doc_id)
        # A quote in the claim (« … ») is the document's own words, in its language: read as such, whatever
        # the answer's language (a French quote read as German turns « par », « sur » into content words).
        quoted = " ".join(m.group(1) or m.group(2) for m in _QUOTE.finditer(claim))
        groups = self.scorer.term_groups(_QUOTE.sub(" ", claim), answer_language, doc_language)
        if quoted:
            groups += self.scorer.term_groups(quoted, doc_language, doc_language)
        scored = self._windows(passage, evidence)
        candidates: list[tuple[Window, ScoredWindow, float]] = [(w.window, w, 0.0) for w in scored]
        # Pairs of adjacent windows too: a claim often condenses two sentences. A pair must do better than
        # its best sentence by a margin, else the tighter span wins.
        for a, b in zip(scored, scored[1:], strict=False):
            if b.window.start < a.window.end:  # b's window already holds a's sentence
                continue
            text = passage.text[a.window.start - passage.start : b.window.end - passage.start]
            pair = Window(a.window.start, b.window.end, text, a.window.stems | b.window.stems)
            candidates.append((pair, max(a, b, key=lambda w: w.answer_score), 0.02))
        best: tuple[Window | None, float, ScoredWindow | None] = (None, 0.0, None)
        for window, item, margin in candidates:
            score = EvidenceScorer.coverage(groups, window.stems) - margin
            if score > best[1]:
                best = (window, score, item)
        if best[0] is None and scored:
            best = (scored[0].window, 0.0, scored[0])
        window, support, item = best
        return window, max(0.0, min(1.0, support)), item

    def _chunk_of(self, passage: Passage, start: int) -> str:
        if self.chunk_span is not None:
            for chunk_id in passage.chunk_ids:
                chunk_start, chunk_end = self.chunk_span(chunk_id)
                if chunk_start <= start < chunk_end:
                    return chunk_id
        return passage.chunk_ids[0] if passage.chunk_ids else ""

    def verify(
        self, answer: str, language: str, passages: Sequence[Passage], evidence: Evidence | None = None
    ) -> tuple[list[Citation], CitationReport]:
        """Check every claim's markers against the passages. `evidence`: the answer's evidence step (the
        question's scores of every window); with it, a window that supports a claim's words but does not
        answer the question (`answers_question`) is not counted as support."""
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
                window, support, item = self._best_window(bare, language, passage, evidence)
                if (
                    evidence is not None
                    and item is not None
                    and not answers_question(item, evidence, self.gate)
                    and not answers_by_meaning(item, evidence)
                ):
                    support = min(support, OFF_QUESTION_SUPPORT)
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
