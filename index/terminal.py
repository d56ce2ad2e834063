"""Text made safe to print on a terminal: file names and document texts are data from strangers.

A file named `a\\x1b]0;title\\x07.txt`, or a document holding ANSI escape sequences, would otherwise retitle,
clear or recolour the user's terminal when `rag ask` or `rag index` prints it; bidirectional overrides
(U+202E) would show a name reversed. `printable` drops C0 controls (except newline and tab), DEL, the C1
controls (U+0080-U+009F: U+009B is a one-byte CSI on some terminals) and the bidi embedding/override/isolate
characters, and removes whole ESC sequences so that no `[2J` debris is left behind. It never touches what is
stored: only what is shown.
"""

from __future__ import annotations

import json
import re
from typing import Any

# An ESC sequence (CSI ... final byte, OSC ... BEL/ST, or ESC + one char), then any lone control character.
_ESCAPE_SEQUENCE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|.)?", re.DOTALL)
_C1_CSI = re.compile(r"\x9b[0-?]*[ -/]*[@-~]")
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_UNSAFE_IN_JSON = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """`text` as a string without terminal control sequences (newlines and tabs kept)."""
    text = str(text)
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _C1_CSI.sub("", text)
    return _UNPRINTABLE.sub("", text)


def printable_json(data: Any, **options: Any) -> str:
    """JSON of `data` that a terminal prints harmlessly: json already escapes C0 controls; C1 controls and
    bidi overrides are escaped too (\\u009b), so the data stays exact for a program reading it."""
    text = json.dumps(data, ensure_ascii=False, **options)
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
