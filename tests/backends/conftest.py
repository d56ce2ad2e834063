"""Fixtures of the backend tests: fake servers on 127.0.0.1 and a tiny HF model (see backend_fakes)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from backend_fakes import (
    API_KEY,
    API_KEY_ENV,
    FakeServer,
    OllamaHandler,
    OpenAIHandler,
    build_tiny_model,
    serve,
)


@pytest.fixture
def openai_server() -> Iterator[FakeServer]:
    yield from serve(OpenAIHandler, "/v1")


@pytest.fixture
def ollama_server() -> Iterator[FakeServer]:
    yield from serve(OllamaHandler, "")


@pytest.fixture
def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens (the port was just released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(API_KEY_ENV, API_KEY)
    return API_KEY


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def tiny_model_dir_without_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gpt2-plain"), chat_template=False)
