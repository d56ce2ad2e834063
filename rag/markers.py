"""The citation-marker grammar: the one place that says what `[n]` markers look like and what they mean.

A marker is a bracketed list of passage numbers: `[1]`, `[1, 3]`, `[1; 3]`, and ranges `[1-3]` / `[1–3]`
(read as 1, 2, 3; a range wider than MAX_RANGE is not expanded: "[1-2000]" is not a citation). Adjacent
markers `[1][3]` are two markers; a run of them belongs to the sentence before it.

The chain (dropping invalid numbers), the citation verifier (parsing claims), the evidence scorer
(ignoring markers as words) and the chat (linking markers to source cards) all use this module; no other
module defines a marker pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

_GROUP_BODY = r"\s*\d+\s*(?:(?:,|;|-|–)\s*\d+\s*)*"
MARKER = re.compile(rf"\[({_GROUP_BODY})\]")
"""One marker; group 1 is what is between the brackets."""
MARKER_RUN = re.compile(rf"(?:\s*\[{_GROUP_BODY}\])+")
"""One or more adjacent markers, with the whitespace before each."""
MAX_RANGE = 50


@dataclass(frozen=True, slots=True)
class Marker:
    """A marker found in a text: `text[start:end]` is the marker, `numbers` the passages it names."""

    start: int
    end: int
    numbers: list[int]


def marker_numbers(body: str) -> list[int]:
    """The passage numbers of one marker's body ("1-3, 5" -> [1, 2, 3, 5]), in order, without duplicates."""
    numbers: list[int] = []
    for part in re.split(r"[,;]", body):
        bounds = [int(x) for x in re.split(r"[-–]", part) if x.strip()]
        if len(bounds) == 2 and 0 <= bounds[1] - bounds[0] <= MAX_RANGE:
            values = list(range(bounds[0], bounds[1] + 1))
        else:
            values = bounds
        numbers.extend(v for v in values if v not in numbers)
    return numbers


def find_markers(text: str) -> Iterator[Marker]:
    """Every marker of `text`, in order."""
    for match in MARKER.finditer(text):
        yield Marker(match.start(), match.end(), marker_numbers(match.group(1)))


def parse_markers(text: str) -> list[int]:
    """All passage numbers cited in `text`, in order of appearance, without duplicates."""
    numbers: list[int] = []
    for marker in find_markers(text):
        numbers.extend(n for n in marker.numbers if n not in numbers)
    return numbers


def strip_markers(text: str) -> str:
    """`text` without its markers (and without the space they leave before punctuation)."""
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER_RUN.sub("", text)).strip()


def blank_markers(text: str, *, keep_offsets: bool = False) -> str:
    """`text` with each marker replaced by a space (offsets of words change; for word extraction), or by as
    many spaces as it has characters (`keep_offsets`: every word stays where it was)."""
    return MARKER.sub(lambda m: " " * len(m.group(0)), text) if keep_offsets else MARKER.sub(" ", text)


def remove_marker_numbers(text: str, invalid: set[int]) -> str:
    """Drop the numbers in `invalid` from the markers of `text` (a marker left empty disappears)."""
    if not invalid:
        return text

    def keep(match: re.Match[str]) -> str:
        numbers = [n for n in marker_numbers(match.group(1)) if n not in invalid]
        return "" if not numbers else "[" + ", ".join(str(n) for n in numbers) + "]"

    cleaned = MARKER.sub(keep, text)
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)
