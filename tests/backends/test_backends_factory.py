"""make_generator / available_backends: choosing a backend from the settings, and config errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
from backend_fakes import API_KEY_ENV, llm_settings

from rag.backends import BACKENDS, available_backends, make_generator
from rag.backends.chat_model import ChatModelGenerator
from rag.errors import BackendError
from rag.settings import Settings


def test_unknown_backend_lists_valid_ones_and_the_setting() -> None:
    with pytest.raises(BackendError) as caught:
        make_generator(Settings(), backend="gpt-magic")
    message = str(caught.value)
    assert "'gpt-magic'" in message
    for name in BACKENDS:
        assert name in message
    assert "llm.backend" in message and "RAG_LLM__BACKEND" in message


def test_backend_argument_overrides_the_setting(openai_server, api_key) -> None:
    settings = llm_settings(backend="ollama", base_url=openai_server.url, model="m")
    generator = make_generator(settings, backend="openai")
    assert isinstance(generator, ChatModelGenerator)
    assert generator.name == "openai"
    assert make_generator(settings).name == "ollama"


def test_available_backends() -> None:
    names = available_backends(Settings())
    assert names[0] == "extractive"
    assert {"openai", "ollama"} <= set(names)  # both client packages are installed here
    assert "hf" in available_backends(Settings(llm={"model": "/some/local/folder"}))
    assert set(available_backends(Settings(llm={"model": "x"}))) <= set(BACKENDS)


def test_importing_backends_loads_no_heavy_library() -> None:
    code = (
        "import sys, rag.backends as b; from rag.settings import Settings; "
        "b.available_backends(Settings()); "
        "print(sorted(m for m in ('torch', 'transformers', 'openai', 'ollama', 'langchain_openai') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_openai_without_key_for_the_official_api_names_the_env_var(monkeypatch) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    with pytest.raises(BackendError) as caught:
        make_generator(llm_settings(backend="openai", model="gpt-4o-mini"))
    message = str(caught.value)
    assert API_KEY_ENV in message and "llm.api_key_env" in message and "llm.base_url" in message


def test_openai_local_server_needs_no_key(monkeypatch, openai_server) -> None:
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    generator = make_generator(llm_settings(backend="openai", base_url=openai_server.url, model="m"))
    assert generator.name == "openai"


@pytest.mark.parametrize("backend", ["openai", "ollama"])
@pytest.mark.parametrize("base_url", ["localhost:8000", "ftp://127.0.0.1/v1", "http://"])
def test_bad_base_url_names_the_setting(backend, base_url, api_key) -> None:
    with pytest.raises(BackendError) as caught:
        make_generator(llm_settings(backend=backend, base_url=base_url, model="m"))
    assert "llm.base_url" in str(caught.value) and repr(base_url) in str(caught.value)
