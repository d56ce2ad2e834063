"""The one interface every answer generator implements.

A generator turns a request (the question, its language, numbered passages and the prompt messages
built from them) into a stream of text pieces that contain `[n]` markers. Parsing and verifying the
markers is not its job (see `rag.citations`), so every backend is checked the same way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import BaseMessage

from rag.records import Passage


@dataclass(slots=True)
class GenerationRequest:
    question: str  # the standalone (condensed) question
    language: str  # ISO 639-1 code the answer must be written in
    passages: Sequence[Passage]
    messages: list[BaseMessage] = field(default_factory=list)  # system + user prompt with numbered passages
    #: The evidence step's scores of the passages' sentence windows (rag.evidence.Evidence), when the chain
    #: computed them; the extractive generator reads them instead of scoring again.
    evidence: Any = None


class Generator(ABC):
    """Produces the answer text, streamed."""

    name: str = "generator"
    #: True when the generator writes free text (an LLM); False for the deterministic extractive one.
    is_llm: bool = True

    @abstractmethod
    def stream(self, request: GenerationRequest) -> Iterator[str]:
        """Yield pieces of the answer as they are produced. Raise `rag.errors.BackendError` on failure."""

    def condense(self, question: str, history_text: str, language: str) -> str:
        """Rewrite a follow-up question as a standalone one. Generators without an LLM override this."""
        raise NotImplementedError
