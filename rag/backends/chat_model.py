"""Any LangChain chat model as an answer `Generator`: streaming, condensing, and errors for people.

The ollama, openai and hf backends are all a `BaseChatModel` wrapped by `ChatModelGenerator`, so the
chain sees one behaviour whichever model answers. What differs between them is how they fail; the
`describe_failure` function turns a client exception (openai, ollama, httpx, socket) into a
`BackendError` that names the backend, the address and model, what happened, and the setting to
change. It inspects exception types by name so that this module never imports a client library.
API keys are never part of a message: only the name of the environment variable that holds one.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langchain_core.messages import BaseMessage, HumanMessage

from rag.backends.base import GenerationRequest, Generator
from rag.errors import BackendError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


@dataclass(frozen=True, slots=True)
class BackendTarget:
    """What an error message needs to say where a backend was talking to (never a secret)."""

    backend: str
    model: str | None = None
    address: str | None = None
    api_key_env: str | None = None  # the *name* of the environment variable, for key errors
    timeout_s: float | None = None

    def where(self) -> str:
        parts = []
        if self.model:
            parts.append(f"model {self.model!r}")
        if self.address:
            parts.append(f"at {self.address}")
        return " ".join(parts) or "(no model or address configured)"


class ChatModelGenerator(Generator):
    """Streams the answer of a LangChain chat model; condenses follow-up questions with it."""

    is_llm = True

    def __init__(self, chat_model: BaseChatModel, name: str, *, target: BackendTarget | None = None) -> None:
        self.chat_model = chat_model
        self.name = name
        self.target = target or BackendTarget(backend=name)

    def stream(self, request: GenerationRequest) -> Iterator[str]:
        if not request.messages:
            raise ValueError("GenerationRequest.messages is empty: the chain must build the prompt messages.")
        yield from self._stream_text(request.messages)

    def condense(self, question: str, history_text: str, language: str) -> str:
        messages = condense_messages(question, history_text, language)
        rewritten = "".join(self._stream_text(messages, mid_answer=False))
        return clean_condensed(rewritten) or question

    def _stream_text(self, messages: list[BaseMessage], *, mid_answer: bool = True) -> Iterator[str]:
        thoughts = ThinkingFilter()
        started = False
        try:
            for chunk in self.chat_model.stream(messages):
                started = True
                piece = thoughts.feed(str(chunk.text))
                if piece:
                    yield piece
            tail = thoughts.flush()
            if tail:
                yield tail
        except BackendError:
            raise
        except Exception as exc:
            raise describe_failure(exc, self.target, mid_answer=mid_answer and started) from exc


def condense_messages(question: str, history_text: str, language: str) -> list[BaseMessage]:
    # The wording lives with every other prompt in rag.prompts (one place per language).
    from rag.prompts import condense_prompt

    return [HumanMessage(condense_prompt(question, history_text.strip(), language))]


_LABEL = re.compile(
    r"^\s*(standalone question|rewritten question|question autonome|eigenständige frage|question|frage)\s*:\s*",
    re.I,
)


def clean_condensed(text: str) -> str:
    """Keep the first line of a model's rewrite, without labels or quotes models like to add."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = _LABEL.sub("", lines[0]).strip()
    if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'«`":
        line = line[1:-1].strip()
    return line.strip("«» ").strip()


class ThinkingFilter:
    """Drops a leading `<think>...</think>` block that reasoning models (deepseek-r1, qwen3) write.

    The tags may be split over several streamed pieces, so the start of the stream is held back
    until it is clear whether it opens such a block. Text after the block streams unchanged.
    """

    OPEN, CLOSE = "<think>", "</think>"

    def __init__(self) -> None:
        self._buffer = ""
        self._state = "start"  # start -> (thinking ->) text

    def feed(self, piece: str) -> str:
        if self._state == "text":
            return piece
        self._buffer += piece
        if self._state == "start":
            head = self._buffer.lstrip()
            if head.startswith(self.OPEN):
                self._state = "thinking"
                self._buffer = head[len(self.OPEN) :]
            elif self.OPEN.startswith(head):
                return ""  # could still become "<think>": wait for more
            else:
                self._state = "text"
                out, self._buffer = self._buffer, ""
                return out
        end = self._buffer.find(self.CLOSE)
        if end < 0:
            return ""
        self._state = "text"
        out, self._buffer = self._buffer[end + len(self.CLOSE) :].lstrip(), ""
        return out

    def flush(self) -> str:
        # An unterminated thinking block is dropped; held-back text that was not one is kept.
        out = self._buffer if self._state == "start" else ""
        self._buffer = ""
        return out


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and everything it was raised from or during (also with `from None`)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _names(exc: BaseException) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__}


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if isinstance(code, int) and code > 0:
        return code
    response = getattr(exc, "response", None)
    code = getattr(response, "status_code", None)
    return code if isinstance(code, int) and code > 0 else None


def _server_message(exc: BaseException) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return str(message)
    error = getattr(exc, "error", None)
    if isinstance(error, str) and error:
        return error
    return str(exc)


def describe_failure(exc: BaseException, target: BackendTarget, *, mid_answer: bool = False) -> BackendError:
    """Turn a client library's exception into a `BackendError` a person can act on."""
    name = target.backend
    head = f"The {name} backend ({target.where()})"
    if mid_answer:
        head += " failed mid-answer:"
    base_url_setting = "llm.base_url (env RAG_LLM__BASE_URL)"
    model_setting = "llm.model (env RAG_LLM__MODEL)"
    key_hint = (
        f"the environment variable {target.api_key_env} (its name is set by llm.api_key_env / RAG_LLM__API_KEY_ENV)"
        if target.api_key_env
        else "the server's API key"
    )
    chain = _chain(exc)

    for item in chain:
        code = _status_code(item)
        if code is None:
            continue
        detail = _server_message(item)
        if code in (401, 403):
            return BackendError(
                f"{head} rejected the API key (HTTP {code}: {detail}). Put a valid key in {key_hint}, "
                f"or check that {base_url_setting} points at the right server."
            )
        if code == 404:
            return BackendError(
                f"{head}: the server answered 404 Not Found ({detail}). {_not_found_hint(target, detail)}"
            )
        if code == 429:
            return BackendError(
                f"{head} is rate-limited or out of quota (HTTP 429: {detail}). Wait and retry."
            )
        return BackendError(
            f"{head} answered HTTP {code}: {detail}. Check {model_setting} and {base_url_setting}."
        )

    for item in chain:
        names = _names(item)
        if isinstance(item, socket.gaierror) or "Name or service not known" in str(item):
            return BackendError(
                f"{head}: the host name could not be resolved ({item}). Check {base_url_setting} for a typo."
            )
        if names & {"TimeoutException", "APITimeoutError", "TimeoutError", "ReadTimeout", "ConnectTimeout"}:
            seconds = f" within {target.timeout_s:g} s" if target.timeout_s else ""
            return BackendError(
                f"{head} did not answer{seconds}. The server may be overloaded or still loading the model; "
                f"raise llm.timeout_s (env RAG_LLM__TIMEOUT_S) or check {base_url_setting}."
            )
        if names & {"UnsupportedProtocol", "InvalidURL", "LocalProtocolError"}:
            return BackendError(
                f"{head}: the address is not a valid URL ({item}). Set {base_url_setting} "
                f"to e.g. http://127.0.0.1:8000/v1."
            )

    for item in chain:
        names = _names(item)
        if isinstance(item, ConnectionError) or names & {
            "ConnectError",
            "APIConnectionError",
            "RemoteProtocolError",
            "ReadError",
        }:
            if mid_answer:
                return BackendError(
                    f"{head} the server closed the connection before the answer was complete "
                    f"({chain[-1]}). Check the server's log and retry."
                )
            reason = "connection refused" if _refused(chain) else f"connection failed: {item}"
            return BackendError(
                f"{head}: could not reach the server ({reason}). Is it running? Start it, or set "
                f"{base_url_setting} to its address."
            )

    return BackendError(f"{head} failed: {type(exc).__name__}: {exc}")


def _not_found_hint(target: BackendTarget, detail: str) -> str:
    model_setting = "llm.model (env RAG_LLM__MODEL)"
    base_url_setting = "llm.base_url (env RAG_LLM__BASE_URL)"
    model_fix = f"set {model_setting} to a model the server serves"
    if target.backend == "ollama":
        model_fix += f" (run `ollama pull {target.model}`, or pick one from `ollama list`)"
    if target.backend == "openai":
        address_fix = f"check {base_url_setting}: OpenAI-compatible servers usually answer under /v1"
    else:
        address_fix = f"check {base_url_setting}"
    if "model" in detail.lower():
        return f"The model does not exist there: {model_fix}. If it does, {address_fix}."
    return f"The address may be wrong: {address_fix}. If it is right, {model_fix}."


def _refused(chain: list[BaseException]) -> bool:
    return any(isinstance(item, ConnectionRefusedError) or "refused" in str(item).lower() for item in chain)
