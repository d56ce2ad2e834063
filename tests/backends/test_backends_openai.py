"""The openai backend against a fake OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import pytest
from backend_fakes import (
    ANSWER_PIECES,
    API_KEY,
    API_KEY_ENV,
    BROKEN_MODEL,
    MISSING_MODEL,
    llm_settings,
    make_request,
)

from rag.backends import make_generator
from rag.errors import BackendError
from rag.prompts import condense_prompt


def _generator(url: str, model: str = "local-model", **llm):
    return make_generator(
        llm_settings(backend="openai", base_url=url, model=model, temperature=0.2, max_tokens=77, **llm)
    )


def test_streams_pieces_in_order_with_the_expected_request(openai_server, api_key) -> None:
    pieces = list(_generator(openai_server.url).stream(make_request()))
    assert [p for p in pieces if p] == ANSWER_PIECES

    request = openai_server.last
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = request.body
    assert body["model"] == "local-model"
    assert body["stream"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "[1] France" in body["messages"][1]["content"]
    assert body["temperature"] == 0.2
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 77


def test_non_streaming_call(openai_server, api_key) -> None:
    chat_model = _generator(openai_server.url).chat_model
    message = chat_model.invoke(make_request().messages, stream=False)
    assert message.content == "".join(ANSWER_PIECES)
    assert not openai_server.last.body.get("stream")


def test_condense_sends_the_condense_prompt_and_cleans_the_reply(openai_server, api_key) -> None:
    history = "User: Quelle est la capitale de la France ?\nAssistant: Paris [1]."
    rewritten = _generator(openai_server.url).condense("Et sa population ?", history, "fr")
    assert rewritten == "Quelle est la population de Paris ?"  # label and quotes of the reply removed
    assert openai_server.last.body["messages"] == [
        {"role": "user", "content": condense_prompt("Et sa population ?", history, "fr")}
    ]


def test_unreachable_server_names_the_address_and_base_url(closed_port_url, api_key) -> None:
    generator = _generator(closed_port_url + "/v1")
    with pytest.raises(BackendError) as caught:
        list(generator.stream(make_request()))
    message = str(caught.value)
    assert "openai" in message and closed_port_url in message
    assert "llm.base_url" in message and "refused" in message


def test_wrong_key_names_the_env_var_never_the_key(openai_server, monkeypatch) -> None:
    monkeypatch.setenv(API_KEY_ENV, "sk-wrong-secret-key")
    with pytest.raises(BackendError) as caught:
        list(_generator(openai_server.url).stream(make_request()))
    message = str(caught.value)
    assert "401" in message and API_KEY_ENV in message
    assert "sk-wrong-secret-key" not in message


def test_unknown_model_names_llm_model(openai_server, api_key) -> None:
    with pytest.raises(BackendError) as caught:
        list(_generator(openai_server.url, model=MISSING_MODEL).stream(make_request()))
    message = str(caught.value)
    assert "llm.model" in message and MISSING_MODEL in message and "404" in message


def test_wrong_path_in_base_url_points_at_base_url(openai_server, api_key) -> None:
    wrong = openai_server.url.removesuffix("/v1")  # forgot the /v1
    with pytest.raises(BackendError) as caught:
        list(_generator(wrong).stream(make_request()))
    assert "llm.base_url" in str(caught.value) and "/v1" in str(caught.value)


def test_error_mid_stream_is_converted_after_the_first_pieces(openai_server, api_key) -> None:
    received: list[str] = []
    with pytest.raises(BackendError) as caught:
        for piece in _generator(openai_server.url, model=BROKEN_MODEL).stream(make_request()):
            received.append(piece)
    assert "".join(received) == "".join(ANSWER_PIECES[:2])
    assert "mid-answer" in str(caught.value)
