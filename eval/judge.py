"""Optional LLM-judged answer metrics for `rag eval --judge [BACKEND]`.

An LLM backend (ollama, openai or hf, built with `rag.backends.make_generator`) reads each answered
question (not the abstentions) and gives two scores between 0 and 1:

- **faithfulness**: is every claim of the answer supported by the passages the generator was shown?
  1.0 = every claim is stated in or directly follows from the passages; 0.0 = the answer's main claim is
  unsupported or contradicted. It checks grounding, not truth: a true fact absent from the passages lowers
  it. `[n]` citation markers are left in the answer and the passages are numbered the same way.
- **correctness**: does the answer agree with the reference answer(s) of the dataset? 1.0 = same meaning
  (wording, length and extra supported detail do not matter); 0.0 = it contradicts them or misses the
  point. Only judged when the question has reference answers.

Each judgement is one short strict prompt asking for a JSON object `{"score": 0.8, "reason": "..."}`.
The reply is parsed leniently (`parse_judgement`): the first JSON object with a `score`, else a number
labelled "score", else a fraction like `4/5`, else the reply's only number. Scores outside 0..1, or
replies with none of these, are *unparsable*: they count in `unparsable` and not in the means.

Aggregates (`judge_summary`, per dataset): `faithfulness` and `correctness` are the means of the parsed
scores; `judged_faithfulness` / `judged_correctness` count them; `unparsable` counts replies without a
usable score. A `BackendError` (server down, model missing) stops the judging for the rest of the run:
the other metrics are still computed, the questions left are not judged, and the report says so.

LLM scores depend on the judge model and are not deterministic; compare runs judged by the same model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eval import metrics as m


def _llm_backends() -> tuple[str, ...]:
    from rag.backends import BACKENDS

    return tuple(name for name in BACKENDS if name != "extractive")


LLM_BACKENDS = _llm_backends()
NEEDS_LLM = f"--judge needs an LLM backend ({', '.join(LLM_BACKENDS)}): set llm.backend/--judge NAME"
KINDS = ("faithfulness", "correctness")

# Statuses of one judgement: a score was read; the reply had none; the judge was stopped or not applicable.
OK, UNPARSABLE, SKIPPED = "ok", "unparsable", "skipped"

_SYSTEM = (
    "You are a strict evaluator of a question-answering system. The texts may be in French, English or "
    "another language: judge the meaning, not the wording. Reply with one JSON object and nothing else: "
    '{"score": <number from 0 to 1>, "reason": "<one short sentence>"}'
)

_FAITHFULNESS = """Task: judge FAITHFULNESS. Is every claim in the ANSWER supported by the PASSAGES?
Use only the passages, not your own knowledge. Markers like [1] in the answer refer to the numbered passages.
Score 1 if every claim is stated in or directly follows from the passages; 0 if the main claim is
unsupported or contradicted; in between, the share of claims that are supported.

QUESTION: {question}

PASSAGES:
{passages}

ANSWER: {answer}

Reply with the JSON object only."""

_CORRECTNESS = """Task: judge CORRECTNESS. Does the ANSWER agree with the REFERENCE answer?
Score 1 if it gives the same information as the reference (other wording, more supported detail or a
longer answer are fine); 0 if it contradicts the reference or does not answer; in between, if it is
partly right or incomplete.

QUESTION: {question}

REFERENCE: {references}

ANSWER: {answer}

Reply with the JSON object only."""


class JudgeError(ValueError):
    """The judge cannot be set up (no LLM backend, bad backend name or configuration)."""


@dataclass(slots=True)
class Judgement:
    score: float | None
    reason: str = ""
    status: str = OK  # OK | UNPARSABLE | SKIPPED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- parsing -----------------------------------------------------------------------------------------

_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_LABELLED = re.compile(rf"score\W{{0,4}}({_NUMBER})(?:\s*/\s*({_NUMBER}))?", re.I)
_FRACTION = re.compile(rf"({_NUMBER})\s*/\s*({_NUMBER})")
_ANY_NUMBER = re.compile(_NUMBER)


def _in_range(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if 0.0 <= number <= 1.0 else None


def _ratio(numerator: str, denominator: str | None) -> float | None:
    if denominator is None:
        return _in_range(numerator)
    top, bottom = float(numerator), float(denominator)
    return _in_range(top / bottom) if bottom > 0 else None


def _first_json_object(text: str) -> dict[str, Any] | None:
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def parse_judgement(text: str) -> Judgement:
    """Read a score in 0..1 (and a reason) from a judge's reply; see the module docstring for the order."""
    obj = _first_json_object(text)
    if obj is not None:
        fields = {str(k).lower(): v for k, v in obj.items()}
        if "score" in fields:
            reason = str(fields.get("reason") or "").strip()
            score = _in_range(fields["score"])
            return Judgement(score, reason, OK if score is not None else UNPARSABLE)
    labelled = _LABELLED.search(text)
    if labelled:
        score = _ratio(labelled.group(1), labelled.group(2))
        return Judgement(score, "", OK if score is not None else UNPARSABLE)
    fractions = _FRACTION.findall(text)
    if len(fractions) == 1:
        score = _ratio(*fractions[0])
        return Judgement(score, "", OK if score is not None else UNPARSABLE)
    numbers = _ANY_NUMBER.findall(text)
    if len(numbers) == 1:
        score = _in_range(numbers[0])
        return Judgement(score, "", OK if score is not None else UNPARSABLE)
    return Judgement(None, "", UNPARSABLE)


# --- the judge ---------------------------------------------------------------------------------------


def _passages_text(passages: Sequence[Any]) -> str:
    return "\n\n".join(f"[{p.number}] {p.text.strip()}" for p in passages) or "(no passages)"


class LLMJudge:
    """Asks an LLM generator for the faithfulness and correctness of answers; stops at the first
    `BackendError` (then `stopped` holds its message and every later judgement is SKIPPED)."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.name = str(getattr(generator, "name", "llm"))
        self.stopped: str | None = None
        self.replies = 0

    def _ask(self, question: str, prompt: str, passages: Sequence[Any]) -> Judgement:
        from langchain_core.messages import HumanMessage, SystemMessage

        from rag import BackendError
        from rag.backends import GenerationRequest

        if self.stopped is not None:
            return Judgement(None, "", SKIPPED)
        request = GenerationRequest(
            question=question,
            language="en",
            passages=list(passages),
            messages=[SystemMessage(_SYSTEM), HumanMessage(prompt)],
        )
        try:
            reply = "".join(self.generator.stream(request))
        except BackendError as exc:
            self.stopped = str(exc)
            return Judgement(None, "", SKIPPED)
        self.replies += 1
        return parse_judgement(reply)

    def faithfulness(self, question: str, answer: str, passages: Sequence[Any]) -> Judgement:
        prompt = _FAITHFULNESS.format(question=question, passages=_passages_text(passages), answer=answer)
        return self._ask(question, prompt, passages)

    def correctness(self, question: str, answer: str, references: Sequence[str]) -> Judgement:
        if not references:
            return Judgement(None, "no reference answer", SKIPPED)
        joined = " | ".join(r.strip() for r in references)
        return self._ask(
            question, _CORRECTNESS.format(question=question, references=joined, answer=answer), []
        )

    def judge(
        self, question: str, answer: str, passages: Sequence[Any], references: Sequence[str]
    ) -> dict[str, Judgement]:
        """Both judgements of one answered question."""
        return {
            "faithfulness": self.faithfulness(question, answer, passages),
            "correctness": self.correctness(question, answer, references),
        }


def make_judge(settings: Any, backend: str | None = None) -> LLMJudge:
    """The judge over `backend` (default `settings.llm.backend`); `JudgeError` when that cannot judge."""
    from rag import BackendError
    from rag.backends import make_generator

    name = (backend or settings.llm.backend or "").strip().lower()
    if name not in LLM_BACKENDS:
        # extractive copies sentences and cannot score; an unknown name gets the same list of choices.
        raise JudgeError(f"{NEEDS_LLM} (got {name or 'nothing'!r}).")
    try:
        generator = make_generator(settings, name)
    except BackendError as exc:
        raise JudgeError(f"--judge {name}: {exc}") from exc
    if not getattr(generator, "is_llm", True):
        raise JudgeError(f"{NEEDS_LLM} (backend {name!r} is not an LLM).")
    return LLMJudge(generator)


# --- aggregation -------------------------------------------------------------------------------------


def judge_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Means and counts over the records' judgements; None when no record was judged (judge off)."""
    judged = [r["judge"] for r in records if r.get("judge")]
    if not judged:
        return None
    summary: dict[str, Any] = {}
    for kind in KINDS:
        results = [j[kind] for j in judged if kind in j]
        summary[kind] = m.mean(j["score"] for j in results if j["status"] == OK)
        summary[f"judged_{kind}"] = sum(j["status"] == OK for j in results)
    summary["unparsable"] = sum(
        j[kind]["status"] == UNPARSABLE for j in judged for kind in KINDS if kind in j
    )
    return summary
