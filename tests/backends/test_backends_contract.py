"""One contract, every generator: extractive, openai and ollama (fake servers), hf (tiny local model)."""

from __future__ import annotations

import pytest
from backend_fakes import llm_settings, make_request

from rag.backends import Generator, make_generator

BACKEND_NAMES = ["extractive", "openai", "ollama", "hf"]


@pytest.fixture(params=BACKEND_NAMES)
def generator(request: pytest.FixtureRequest) -> Generator:
    name = request.param
    if name == "extractive":
        pytest.importorskip(
            "rag.backends.extractive", reason="helper RAG's extractive generator not written yet"
        )
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


def test_stream_yields_text_pieces(generator: Generator) -> None:
    pieces = list(generator.stream(make_request()))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert "".join(pieces).strip()


def test_condense_returns_a_question(generator: Generator) -> None:
    history = "User: Quelle est la capitale de la France ?\nAssistant: Paris [1]."
    rewritten = generator.condense("Et sa population ?", history, "fr")
    assert isinstance(rewritten, str) and rewritten.strip()
