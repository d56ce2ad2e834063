"""One contract, every generator: extractive, openai and ollama (fake servers), hf (tiny local model)."""

from __future__ import annotations

import pytest
from backend_fakes import ANSWER_PIECES, llm_settings, make_request, tiny_model_reply

from rag.backends import Generator, make_generator
from rag.backends.chat_model import clean_condensed, condense_messages

BACKEND_NAMES = ["extractive", "openai", "ollama", "hf"]


@pytest.fixture(params=BACKEND_NAMES)
def generator(request: pytest.FixtureRequest) -> Generator:
    name = request.param
    if name == "extractive":
        return make_generator(llm_settings(backend="extractive"))
    if name == "openai":
        server = request.getfixturevalue("openai_server")
        request.getfixturevalue("api_key")
        return make_generator(llm_settings(backend="openai", base_url=server.url, model="m"))
    if name == "ollama":
        server = request.getfixturevalue("ollama_server")
        return make_generator(llm_settings(backend="ollama", base_url=server.url, model="m"))
    folder = request.getfixturevalue("tiny_model_dir")
    return make_generator(llm_settings(backend="hf", model=str(folder), max_tokens=16))


def test_is_a_generator_with_its_backend_name(generator: Generator, request: pytest.FixtureRequest) -> None:
    assert isinstance(generator, Generator)
    assert generator.name == request.node.callspec.params["generator"]
    assert generator.is_llm is (generator.name != "extractive")


def test_stream_yields_the_answer_in_pieces(generator: Generator, request: pytest.FixtureRequest) -> None:
    """Each backend streams its own answer to this request, in several pieces, unchanged (nothing added or
    lost)."""
    asked = make_request()
    pieces = list(generator.stream(asked))
    assert len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    text = "".join(pieces)
    if generator.name == "extractive":  # quotes the passage that answers, with its marker
        assert (
            text.startswith("D’après les documents") and "« Paris est la capitale de la France. » [1]" in text
        )
    elif generator.name == "hf":  # the tiny model's greedy reply to the request's messages, 16 tokens
        folder = request.getfixturevalue("tiny_model_dir")
        assert len(text) == 16 and text == tiny_model_reply(folder, asked.messages, 16)
    else:  # the fake server's reply, piece by piece, to the request's messages
        assert pieces == ANSWER_PIECES
        server = request.getfixturevalue(f"{generator.name}_server")
        sent = [(m["role"], m["content"]) for m in server.last.body["messages"]]
        assert sent == [("system", asked.messages[0].content), ("user", asked.messages[1].content)]


def test_condense_returns_a_standalone_question(generator: Generator, request: pytest.FixtureRequest) -> None:
    history = "User: Quelle est la capitale de la France ?\nAssistant: Paris [1]."
    rewritten = generator.condense("Et sa population ?", history, "fr")
    messages = condense_messages("Et sa population ?", history, "fr")
    if generator.name == "extractive":  # the follow-up plus the content words of the last question
        assert rewritten == "Et sa population ? (capitale France)"
    elif generator.name == "hf":  # the tiny model's reply to the condense prompt, cleaned
        expected = clean_condensed(tiny_model_reply(request.getfixturevalue("tiny_model_dir"), messages, 16))
        assert rewritten == (expected or "Et sa population ?")
    else:  # the LLM's reply to the condense prompt, stripped of its "Standalone question: « … »" wrapping
        assert rewritten == "Quelle est la population de Paris ?"
        sent = request.getfixturevalue(f"{generator.name}_server").last.body["messages"]
        assert [m["content"] for m in sent] == [m.content for m in messages]
