"""Metrics of the evaluation suite: pure functions over offsets and strings, each defined in its docstring.

Retrieval is judged by character offsets: a retrieved passage is a `Span` (document, start, end) and the
evidence is a span of the same document (see `eval.datasets.Evidence`). Nothing here searches the answer
text for the evidence, so a passage that happens to repeat the words elsewhere does not count.

The functions take plain values so that each can be checked on a hand-computed example
(tests/eval/test_metrics.py). Aggregation over questions is a plain mean unless a docstring says otherwise.
"""

from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eval.datasets import Evidence


@dataclass(frozen=True, slots=True)
class Span:
    """A retrieved or cited passage, in the coordinates of its document's text."""

    doc: str
    start: int
    end: int


# --- retrieval ---------------------------------------------------------------------------------------


def covers(spans: Iterable[Span], evidence: Evidence) -> bool:
    """True when `spans` cover `evidence`.

    A quote is covered when it lies inside one span of its document (start <= quote.start and quote.end <=
    end), or inside the union of two spans of that document that touch or overlap (adjacent chunks: the
    first starts at or before the quote, the second ends at or after it, and the second starts no later than
    the first ends). Whole-document evidence (PIAF) is covered by any span of that document.
    """
    same_doc = [s for s in spans if s.doc == evidence.doc]
    if evidence.whole_document:
        return bool(same_doc)
    for first in same_doc:
        if first.start > evidence.start:
            continue
        if first.end >= evidence.end:
            return True
        for second in same_doc:
            if second.start <= first.end and second.end >= evidence.end and second.start >= first.start:
                return True
    return False


def evidence_ranks(ranked: Sequence[Span], evidence: Sequence[Evidence]) -> list[int | None]:
    """For each evidence item, the smallest k such that the top-k spans cover it (1-based); None if never.

    When a quote needs two adjacent passages, its rank is the rank of the later of the two.
    """
    ranks: list[int | None] = []
    for item in evidence:
        rank = None
        for k in range(1, len(ranked) + 1):
            if covers(ranked[:k], item):
                rank = k
                break
        ranks.append(rank)
    return ranks


def hit_at_k(ranks: Sequence[int | None], k: int) -> float:
    """1.0 when at least one evidence item is covered by the top-k passages, else 0.0."""
    return 1.0 if any(r is not None and r <= k for r in ranks) else 0.0


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Fraction of the evidence items covered by the top-k passages (0.0 when there is no evidence)."""
    if not ranks:
        return 0.0
    return sum(1 for r in ranks if r is not None and r <= k) / len(ranks)


def reciprocal_rank(ranks: Sequence[int | None]) -> float:
    """1 / (rank of the first passage that covers any evidence item); 0.0 if none does. MRR is its mean."""
    found = [r for r in ranks if r is not None]
    return 1.0 / min(found) if found else 0.0


def ndcg_at_k(ranks: Sequence[int | None], k: int = 10) -> float:
    """nDCG@k with the evidence items as the relevant units.

    Each evidence item found at rank r <= k gains 1 / log2(1 + r) (DCG). The ideal ranking puts all n items
    in the first passage, so IDCG = n and nDCG@k = (1/n) * sum over found items of 1 / log2(1 + r).
    With one evidence item (PIAF) this is the usual binary nDCG of the first relevant passage.
    """
    if not ranks:
        return 0.0
    gain = sum(1.0 / math.log2(1 + r) for r in ranks if r is not None and r <= k)
    return gain / len(ranks)


# --- answers -----------------------------------------------------------------------------------------

_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "`": "'", "´": "'"})
_ELIDED = re.compile(r"\b[ld]'")
_ARTICLES = re.compile(r"\b(?:le|la|les|un|une|des|du|de|a|an|the)\b")
_PUNCTUATION = re.compile("[" + re.escape(string.punctuation + "«»“”„…–—·¿¡") + "]")


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def normalize_answer(text: str) -> str:
    """SQuAD normalisation adapted to French.

    Lowercase; strip accents (é -> e); typographic apostrophes -> '; drop the elided articles l' and d'; drop
    the articles le, la, les, un, une, des, du, de and English a, an, the (after accent stripping, French
    "à" becomes "a" and is dropped too); punctuation -> space (so "peut-il" gives two tokens); collapse
    whitespace.
    """
    text = strip_accents(text.lower()).translate(_APOSTROPHES)
    text = _ELIDED.sub(" ", text)
    text = _PUNCTUATION.sub(" ", text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals one normalised reference, else 0.0."""
    normalized = normalize_answer(prediction)
    return 1.0 if any(normalized == normalize_answer(ref) for ref in references) else 0.0


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """Best SQuAD token F1 over the references.

    Tokens are the whitespace tokens of the normalised strings; overlap counts common tokens with
    multiplicity; precision = overlap / |prediction|, recall = overlap / |reference|, F1 their harmonic
    mean. Two empty strings give 1.0; one empty string gives 0.0.
    """
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for reference in references:
        ref_tokens = normalize_answer(reference).split()
        if not pred_tokens or not ref_tokens:
            best = max(best, float(pred_tokens == ref_tokens))
            continue
        overlap = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
        if overlap:
            precision, recall = overlap / len(pred_tokens), overlap / len(ref_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def answer_contained(prediction: str, references: Sequence[str]) -> float:
    """1.0 when a normalised reference occurs in the normalised prediction as whole tokens, else 0.0.

    Meant for short gold spans (PIAF): an extractive answer is a sentence that should hold the span.
    """
    padded = f" {normalize_answer(prediction)} "
    for reference in references:
        normalized = normalize_answer(reference)
        if normalized and f" {normalized} " in padded:
            return 1.0
    return 0.0


# --- citations ---------------------------------------------------------------------------------------

MIN_SUPPORT_OVERLAP = 30  # characters; or half the quote, whichever is smaller


def holds_evidence(span: Span, evidence: Evidence) -> bool:
    """True when `span` holds part of `evidence` worth citing.

    Same document, and the overlap of the two character ranges is at least min(30, half the quote's length)
    characters (so a passage that holds only the last word of a long quote does not count). Whole-document
    evidence: any span of the document.
    """
    if span.doc != evidence.doc:
        return False
    if evidence.whole_document:
        return True
    overlap = min(span.end, evidence.end) - max(span.start, evidence.start)
    needed = max(1, min(MIN_SUPPORT_OVERLAP, (evidence.end - evidence.start) // 2))
    return overlap >= needed


def citation_precision(cited: Sequence[Span], evidence: Sequence[Evidence]) -> float | None:
    """Fraction of the cited passages that hold evidence (`holds_evidence`); None when nothing is cited."""
    if not cited:
        return None
    return sum(1 for span in cited if any(holds_evidence(span, e) for e in evidence)) / len(cited)


def citation_recall(cited: Sequence[Span], evidence: Sequence[Evidence]) -> float | None:
    """Fraction of the evidence items covered (`covers`) by the cited passages; None without evidence."""
    if not evidence:
        return None
    return sum(1 for e in evidence if covers(cited, e)) / len(evidence)


# --- abstention --------------------------------------------------------------------------------------


def abstention_rates(outcomes: Iterable[tuple[bool, bool]]) -> dict[str, float | None]:
    """From (answerable, abstained) pairs.

    correct_abstention = abstained unanswerable / unanswerable questions;
    false_abstention = abstained answerable / answerable questions (None when a group is empty).
    """
    answerable = abstained_answerable = unanswerable = abstained_unanswerable = 0
    for is_answerable, abstained in outcomes:
        if is_answerable:
            answerable += 1
            abstained_answerable += abstained
        else:
            unanswerable += 1
            abstained_unanswerable += abstained
    return {
        "correct_abstention": abstained_unanswerable / unanswerable if unanswerable else None,
        "false_abstention": abstained_answerable / answerable if answerable else None,
        "unanswerable": unanswerable,
        "answerable": answerable,
    }


# --- cost --------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def latency_summary(timings: Iterable[dict[str, float]]) -> dict[str, dict[str, float | None]]:
    """Per stage: median and p95 in milliseconds, over the questions that report that stage."""
    per_stage: dict[str, list[float]] = {}
    for timing in timings:
        for stage, seconds in timing.items():
            per_stage.setdefault(stage, []).append(seconds * 1000.0)
    return {
        stage: {"median_ms": percentile(values, 50), "p95_ms": percentile(values, 95), "count": len(values)}
        for stage, values in sorted(per_stage.items())
    }


def throughput(questions: int, seconds: float) -> float | None:
    """Questions per second of wall time."""
    return questions / seconds if seconds > 0 else None


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
