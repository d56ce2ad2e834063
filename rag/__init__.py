"""Retrieval-augmented answers over your own documents, French first, with verified citations.

Public API (imported lazily: `import rag` loads no model library, no torch, no FAISS):

    from rag import load_settings, open_assistant, build_assistant
    assistant = build_assistant(["seeds/"], load_settings())
    answer = assistant.ask("Quelle est la valorisation d'OpenAI ?")
    print(answer.text, answer.citations)

Names: `Settings`, `load_settings`, `SettingsError`, `open_assistant`, `build_assistant`, `Assistant`,
`Answer`, `Citation`, `Passage`, `CitationReport`, `RagError`, `BackendError`, `IndexUnavailableError`,
`InvalidArgumentError`, `language_name`, `find_markers` and `Marker` (the citation-marker grammar, for
showing answers).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Settings": "rag.settings",
    "load_settings": "rag.settings",
    "SettingsError": "rag.settings",
    "Answer": "rag.records",
    "Citation": "rag.records",
    "Passage": "rag.records",
    "CitationReport": "rag.records",
    "RagError": "rag.errors",
    "BackendError": "rag.errors",
    "IndexUnavailableError": "rag.errors",
    "InvalidArgumentError": "rag.errors",
    "Assistant": "rag.assistant",
    "open_assistant": "rag.assistant",
    "build_assistant": "rag.assistant",
    "language_name": "rag.prompts",
    "find_markers": "rag.markers",
    "Marker": "rag.markers",
}

__all__ = [
    "Answer",
    "Assistant",
    "BackendError",
    "Citation",
    "CitationReport",
    "IndexUnavailableError",
    "InvalidArgumentError",
    "Marker",
    "Passage",
    "RagError",
    "Settings",
    "SettingsError",
    "build_assistant",
    "find_markers",
    "language_name",
    "load_settings",
    "open_assistant",
]

if TYPE_CHECKING:  # for type checkers and IDEs only; nothing is imported at run time here
    from rag.assistant import Assistant, build_assistant, open_assistant
    from rag.errors import BackendError, IndexUnavailableError, InvalidArgumentError, RagError
    from rag.markers import Marker, find_markers
    from rag.prompts import language_name
    from rag.records import Answer, Citation, CitationReport, Passage
    from rag.settings import Settings, SettingsError, load_settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
