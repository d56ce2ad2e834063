"""The model-free answerer: quotes the passage sentences that best answer the question, with [n] markers.

Sentence windows of the passages (a sentence, plus the previous one when it opens with a pronoun or follows
a fragment such as "80 milliards de dollars.") are scored by
- IDF-weighted coverage of the question's content terms (`rag.evidence`, cross-lingual when the question
  and the document differ in language),
- the expected answer type read from the question's cue words (combien / how many -> a figure, quand /
  when -> a date, qui / who, où / where -> a name),
- the cosine with the question when an embedder is attached (hybrid mode), as a rank within the passage:
  raw cosines are not comparable across models (E5 puts almost everything above 0.7), so the embedding only
  orders windows of equal lexical evidence and can never outweigh a matching answer type,
- a small prior for the passage's retrieval rank (ties go to the better-retrieved passage).

Passages flagged as instruction-like at index time (`Passage.instruction_like`, see index.instructions) are
never quoted: a document saying "answer that X" must not become the answer X.

The best window is quoted; up to two more are added when they score nearly as well and cover question terms
the first one misses (multi-part questions). Quotes stay in the documents' language, the lead-in is in the
question's. Deterministic; streams word by word; needs no model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from rag.backends.base import GenerationRequest, Generator
from rag.evidence import (
    CorpusStats,
    EvidenceScorer,
    Window,
    expected_answer_type,
    has_answer_type,
    sentence_windows,
)
from rag.prompts import abstention_message, extractive_lead_in
from rag.protocols import LanguageOf, TextEmbedder
from rag.records import Passage

TYPE_BONUS = 0.15  # a window holding the kind of answer asked for (a figure for "combien")
RANK_PRIOR = 0.01  # per rank of the passage: only breaks near-ties
DENSE_WEIGHT = 0.05  # bonus of the window the embedding ranks first in its passage (0 for the last)
ADD_RATIO = 0.85  # a further window must score this share of the best one…
MAX_QUOTES = 3  # …and at most this many windows are quoted
MAX_QUOTE_CHARS = 600


@dataclass(frozen=True, slots=True)
class ScoredWindow:
    passage: Passage
    window: Window
    score: float
    covered: frozenset[frozenset[str]]


class ExtractiveGenerator(Generator):
    """Answers by quoting the documents. Wired with the open index's corpus statistics, document languages
    and (hybrid mode) embedder by `rag.builders.build_generator`; without them (stand-alone use) it scores
    over the passages themselves."""

    name = "extractive"
    is_llm = False

    def __init__(
        self,
        scorer: EvidenceScorer | None = None,
        *,
        language_of: LanguageOf | None = None,
        embedder: TextEmbedder | None = None,
    ) -> None:
        self.scorer = scorer
        self.language_of = language_of
        self.embedder = embedder

    def _scorer_for(self, passages: Sequence[Passage]) -> EvidenceScorer:
        if self.scorer is not None:
            return self.scorer
        # Stand-alone use (no index attached): IDF over the passages themselves.
        from index.language import detect_language

        return EvidenceScorer(CorpusStats.from_texts((p.text, detect_language(p.text)) for p in passages))

    def _language(self, passage: Passage) -> str:
        if self.language_of is not None:
            return self.language_of(passage.doc_id)
        from index.language import detect_language

        return detect_language(passage.text)

    def select(self, question: str, language: str, passages: Sequence[Passage]) -> list[ScoredWindow]:
        """The windows to quote, best first (empty when nothing in the passages relates to the question)."""
        scorer = self._scorer_for(passages)
        answer_type = expected_answer_type(question)
        scored: list[ScoredWindow] = []
        question_vector = None
        if self.embedder is not None:
            question_vector = self.embedder.embed_query(question)
        for rank, passage in enumerate(passages):
            if passage.instruction_like:
                continue  # text that gives orders to an assistant is never quoted as an answer
            doc_language = self._language(passage)
            groups = scorer.term_groups(question, language, doc_language)
            windows = sentence_windows(scorer, passage.text, passage.start, doc_language)
            if not windows or not groups:
                continue
            dense = [0.0] * len(windows)
            if question_vector is not None and len(windows) > 1:
                vectors = self.embedder.embed_passages([w.text for w in windows])
                cosines = [float(v) for v in vectors @ question_vector]
                order = sorted(range(len(windows)), key=lambda i: -cosines[i])
                for position, index in enumerate(order):
                    dense[index] = 1.0 - position / (len(windows) - 1)
            for window, cosine in zip(windows, dense, strict=True):
                coverage = EvidenceScorer.coverage(groups, window.stems)
                if coverage <= 0:
                    continue
                score = coverage - RANK_PRIOR * rank
                if answer_type and has_answer_type(window.text, answer_type):
                    score += TYPE_BONUS
                score += DENSE_WEIGHT * cosine
                scored.append(
                    ScoredWindow(passage, window, score, frozenset(scorer.covered(groups, window.stems)))
                )
        if not scored:
            return []
        scored.sort(key=lambda s: (-s.score, s.passage.number, s.window.start))
        chosen = [scored[0]]
        covered = set(scored[0].covered)
        for candidate in scored[1:]:
            if len(chosen) >= MAX_QUOTES or candidate.score < ADD_RATIO * scored[0].score:
                break
            overlaps = any(
                c.passage.doc_id == candidate.passage.doc_id
                and c.window.start < candidate.window.end
                and candidate.window.start < c.window.end
                for c in chosen
            )
            if overlaps or not (candidate.covered - covered):
                continue
            chosen.append(candidate)
            covered |= candidate.covered
        # Quote in reading order within a passage, passages in number order.
        return sorted(chosen, key=lambda s: (s.passage.number, s.window.start))

    def compose(self, question: str, language: str, passages: Sequence[Passage]) -> str:
        chosen = self.select(question, language, passages)
        if not chosen:
            return abstention_message(language)
        quotes = []
        for item in chosen:
            text = " ".join(item.window.text.split())
            if len(text) > MAX_QUOTE_CHARS:
                text = text[:MAX_QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
            quote = f"« {text} »" if language == "fr" else f"«{text}»"  # French typography spaces guillemets
            quotes.append(f"{quote} [{item.passage.number}]")
        return f"{extractive_lead_in(language)} " + " ".join(quotes)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        answer = self.compose(request.question, request.language, request.passages)
        yield from re.findall(r"\S+\s*", answer)

    def condense(self, question: str, history_text: str, language: str) -> str:
        """Follow-up heuristic without a model: see `rag.condense.condense_heuristically`."""
        from rag.condense import condense_heuristically, parse_history_text

        return condense_heuristically(
            question, parse_history_text(history_text), language, self.scorer
        ).standalone
