"""The token gate benchmark's terms (`eval.benchmarks.token_gate`): read the question's content tokens only."""

from __future__ import annotations

import re

import numpy as np
import pytest

from eval.benchmarks.token_gate import terms_of, weighted_quantile
from rag.evidence import Evidence, QuestionTokens, ScoredWindow, Window
from rag.records import Passage


def test_the_weighted_quantile_is_the_lowest_value_reaching_the_share() -> None:
    values = np.array([0.9, 0.5, 0.7])
    assert weighted_quantile(values, np.array([1.0, 1.0, 1.0]), 0.1) == 0.5
    assert weighted_quantile(values, np.array([1.0, 1.0, 1.0]), 0.5) == 0.7
    assert weighted_quantile(values, np.array([1.0, 0.1, 0.1]), 0.25) == 0.9  # the low values weigh little


def test_the_terms_read_the_content_tokens_of_the_question_as_asked() -> None:
    question = "Combien pesait Zorg ?"
    query = f"{question} (Lyon)"
    offsets = tuple((m.start(), m.end()) for m in re.finditer(r"\w+", query))
    tokens = QuestionTokens(query, offsets, (1.0, 2.0, 3.0, 4.0), (1.0,) * 4)
    passage = Passage(1, ["c"], "z.txt", "/z.txt", "z", "x", 0, 1, 1.0)

    def window(start: int, cosines: tuple[float, ...]) -> ScoredWindow:
        return ScoredWindow(
            passage, 0, Window(start, start + 1, "x", frozenset()), 0.5, True, 0.8, frozenset(),
            token_cosines=cosines,
        )  # fmt: skip

    # Tokens: Combien (a question word), pesait, Zorg, Lyon (added from the conversation).
    evidence = Evidence(
        question, "fr", "number", (window(0, (0.1, 0.6, 0.9, 0.2)), window(2, (0.1, 0.7, 0.8, 0.1))), False,
        True, (), tokens,
    )  # fmt: skip
    terms = terms_of(evidence)
    assert terms["passages: min"] == pytest.approx(0.7)  # pesait's best; Combien and Lyon are not read
    assert terms["one window: best min"] == pytest.approx(0.7)
    assert terms["passages: IDF mean"] == pytest.approx((2 * 0.7 + 3 * 0.9) / 5)
