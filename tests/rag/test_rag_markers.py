"""The one citation-marker grammar (rag.markers): what the chain, the verifier, the evidence and the chat read."""

from __future__ import annotations

import pytest

from rag.markers import blank_markers, find_markers, parse_markers, remove_marker_numbers, strip_markers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a [1].", [1]),
        ("a [1, 3] b [2]", [1, 3, 2]),
        ("a [1][3].", [1, 3]),
        ("a [2-4]", [2, 3, 4]),
        ("a [2–4]", [2, 3, 4]),
        ("a [1; 2] [1]", [1, 2]),
        ("a [ 1 , 2 ]", [1, 2]),
        ("a [1-2000]", [1, 2000]),  # too wide to be a range: the two numbers only
        ("no marker [x] [] (1) [1,] [a1]", []),
    ],
)
def test_parse_markers(text: str, expected: list[int]) -> None:
    assert parse_markers(text) == expected


def test_find_markers_gives_offsets_and_numbers() -> None:
    text = "Un [1]. Deux [2-3][5]."
    markers = list(find_markers(text))
    assert [text[m.start : m.end] for m in markers] == ["[1]", "[2-3]", "[5]"]
    assert [m.numbers for m in markers] == [[1], [2, 3], [5]]


def test_strip_blank_and_remove() -> None:
    assert strip_markers("Vrai [1][2] .") == "Vrai."
    assert blank_markers("a[1-2]b") == "a b"
    assert remove_marker_numbers("A [1, 9]. B [9] .", {9}) == "A [1]. B."
    assert remove_marker_numbers("A [2-4].", {3}) == "A [2, 4]."
    assert remove_marker_numbers("A [9].", set()) == "A [9]."
