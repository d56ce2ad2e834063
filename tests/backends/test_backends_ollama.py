"""The ollama backend against a fake Ollama server (POST /api/chat, NDJSON stream) on 127.0.0.1."""

from __future__ import annotations

import pytest
from backend_fakes import ANSWER_PIECES, BROKEN_MODEL, MISSING_MODEL, llm_settings, make_request

from rag.backends import make_generator
from rag.backends.ollama import DEFAULT_OLLAMA_URL
from rag.errors import BackendError
from rag.prompts import condense_prompt


def _generator(url: str | None, model: str | None = "llama3.2:1b"):
    return make_generator(
        llm_settings(backend="ollama", base_url=url, model=model, temperature=0.3, max_tokens=42)
    )


def test_streams_pieces_with_the_expected_request(ollama_server) -> None:
    pieces = list(_generator(ollama_server.url).stream(make_request()))
    assert [p for p in pieces if p] == ANSWER_PIECES

    request = ollama_server.last
    assert request.path == "/api/chat"
    body = request.body
    assert body["model"] == "llama3.2:1b"
    assert body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "[2] Lyon" in body["messages"][1]["content"]
    assert body["options"]["temperature"] == 0.3
    assert body["options"]["num_predict"] == 42
    assert body["options"]["num_ctx"] >= 8192


def test_condense(ollama_server) -> None:
    rewritten = _generator(ollama_server.url).condense("And its population?", "user: What is Paris?", "en")
    assert rewritten == "Quelle est la population de Paris ?"
    (message,) = ollama_server.last.body["messages"]
    assert message["content"] == condense_prompt("And its population?", "user: What is Paris?", "en")


def test_default_address_and_model() -> None:
    generator = _generator(None, model=None)
    assert generator.target.address == DEFAULT_OLLAMA_URL
    assert generator.target.model


def test_unreachable_server(closed_port_url) -> None:
    with pytest.raises(BackendError) as caught:
        list(_generator(closed_port_url).stream(make_request()))
    message = str(caught.value)
    assert "ollama" in message and closed_port_url in message and "llm.base_url" in message


def test_missing_model_says_how_to_pull_it(ollama_server) -> None:
    with pytest.raises(BackendError) as caught:
        list(_generator(ollama_server.url, model=MISSING_MODEL).stream(make_request()))
    message = str(caught.value)
    assert "llm.model" in message and f"ollama pull {MISSING_MODEL}" in message


def test_error_mid_stream_is_converted(ollama_server) -> None:
    received: list[str] = []
    with pytest.raises(BackendError) as caught:
        for piece in _generator(ollama_server.url, model=BROKEN_MODEL).stream(make_request()):
            received.append(piece)
    assert "".join(received) == "".join(ANSWER_PIECES[:2])
    assert "mid-answer" in str(caught.value)
