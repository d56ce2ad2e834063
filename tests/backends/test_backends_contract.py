"""One contract, every generator: extractive, openai and ollama (fake servers), hf (tiny local model)."""

from __future__ import annotations

import pytest
from backend_fakes import ANSWER_PIECES, TINY_CHARS, llm_settings, make_request

from rag.backends import Generator, make_generator

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


def test_stream_yields_the_answer_in_pieces(generator: Generator) -> None:
    """Each backend streams its own answer, in several pieces, unchanged (nothing added or lost)."""
    pieces = list(generator.stream(make_request()))
    assert len(pieces) > 1 and all(isinstance(p, str) and p for p in pieces)
    text = "".join(pieces)
    if generator.name == "extractive":  # quotes the passage that answers, with its marker
        assert (
            text.startswith("D’après les documents") and "« Paris est la capitale de la France. » [1]" in text
        )
    elif generator.name == "hf":  # the tiny model: exactly max_tokens characters of its alphabet
        assert len(text) == 16 and set(text) <= set(TINY_CHARS)
    else:  # the fake server's reply, piece by piece
        assert pieces == ANSWER_PIECES


def test_condense_returns_a_standalone_question(generator: Generator) -> None:
    history = "User: Quelle est la capitale de la France ?\nAssistant: Paris [1]."
    rewritten = generator.condense("Et sa population ?", history, "fr")
    if generator.name == "extractive":  # the heuristic: the follow-up plus the subject of the last turn
        assert rewritten.startswith("Et sa population ?") and "France" in rewritten
    elif generator.name == "hf":
        assert len(rewritten) == 16 and set(rewritten) <= set(TINY_CHARS)
    else:  # the LLM's reply, stripped of its "Standalone question: « … »" wrapping
        assert rewritten == "Quelle est la population de Paris ?"
