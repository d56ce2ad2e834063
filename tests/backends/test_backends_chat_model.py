"""ChatModelGenerator's pure parts: thinking-block filter, reply cleaning, exception -> BackendError."""

from __future__ import annotations

import socket

import httpx
import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from rag.backends.base import GenerationRequest
from rag.backends.chat_model import (
    BackendTarget,
    ChatModelGenerator,
    ThinkingFilter,
    clean_condensed,
    describe_failure,
)
from rag.errors import BackendError

TARGET = BackendTarget(
    backend="openai", model="m", address="http://10.0.0.9:8000/v1", api_key_env="MY_KEY", timeout_s=7
)


def _filtered(pieces: list[str]) -> str:
    thoughts = ThinkingFilter()
    return "".join(thoughts.feed(p) for p in pieces) + thoughts.flush()


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["<think>plan</think>Paris [1]."], "Paris [1]."),
        (["<th", "ink>pl", "an</thi", "nk>\n\nParis", " [1]."], "Paris [1]."),
        (["Paris ", "<think> is kept mid-answer"], "Paris <think> is kept mid-answer"),
        (["<", "b>bold</b>"], "<b>bold</b>"),
        (["<thi"], "<thi"),
        (["<think>never closed"], ""),
    ],
)
def test_thinking_filter(pieces: list[str], expected: str) -> None:
    assert _filtered(pieces) == expected


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            "Question autonome : « Quelle est la population de Paris ? »",
            "Quelle est la population de Paris ?",
        ),
        ('"What is the population of Paris?"\nBecause the user asked...', "What is the population of Paris?"),
        ("<think>hmm</think>\nWie alt ist er?", "Wie alt ist er?"),
        ("   ", ""),
    ],
)
def test_clean_condensed(reply: str, expected: str) -> None:
    assert clean_condensed(reply) == expected


def test_streams_a_langchain_chat_model_without_thinking() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("<think>x</think>Paris est la capitale [1].")]))
    request = GenerationRequest(question="q", language="fr", passages=[], messages=[AIMessage("hi")])
    pieces = list(ChatModelGenerator(model, "fake").stream(request))
    assert len(pieces) > 1
    assert "".join(pieces) == "Paris est la capitale [1]."


def test_condense_falls_back_to_the_question_on_an_empty_reply() -> None:
    model = GenericFakeChatModel(messages=iter([AIMessage("<think>only thoughts</think>")]))
    assert ChatModelGenerator(model, "fake").condense("Et lui ?", "User: Qui ?", "fr") == "Et lui ?"


def test_any_failure_becomes_a_backend_error() -> None:
    class Broken(GenericFakeChatModel):
        def _stream(self, *args, **kwargs):
            raise RuntimeError("boom")

    request = GenerationRequest(question="q", language="fr", passages=[], messages=[AIMessage("hi")])
    with pytest.raises(BackendError, match="fake.*boom"):
        list(ChatModelGenerator(Broken(messages=iter([])), "fake").stream(request))


def _raised_from(outer: Exception, inner: BaseException) -> Exception:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise outer from exc
    except Exception as wrapped:
        return wrapped


def test_timeout_names_timeout_setting() -> None:
    error = describe_failure(_raised_from(RuntimeError("x"), httpx.ReadTimeout("read timed out")), TARGET)
    assert "7 s" in str(error) and "llm.timeout_s" in str(error) and "RAG_LLM__TIMEOUT_S" in str(error)


def test_dns_failure_names_base_url() -> None:
    inner = socket.gaierror(-2, "Name or service not known")
    error = describe_failure(_raised_from(httpx.ConnectError("x"), inner), TARGET)
    assert "could not be resolved" in str(error) and "llm.base_url" in str(error)


def test_status_error_without_key_env_still_explains() -> None:
    response = httpx.Response(403, request=httpx.Request("POST", "http://h/v1"), text="forbidden")
    error = describe_failure(
        httpx.HTTPStatusError("403", request=response.request, response=response), TARGET
    )
    assert "HTTP 403" in str(error) and "MY_KEY" in str(error)
