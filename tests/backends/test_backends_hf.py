"""The hf backend over a tiny random GPT-2 saved to a folder and loaded through the real path."""

from __future__ import annotations

import threading
import time

import pytest
from backend_fakes import llm_settings, make_request
from langchain_core.messages import HumanMessage, SystemMessage

from rag.backends import make_generator
from rag.backends.hf import HuggingFaceChatModel
from rag.errors import BackendError


def _generator(folder, max_tokens: int = 24):
    return make_generator(llm_settings(backend="hf", model=str(folder), max_tokens=max_tokens))


def test_streams_token_by_token_and_matches_the_non_streaming_answer(tiny_model_dir) -> None:
    generator = _generator(tiny_model_dir, max_tokens=24)
    pieces = list(generator.stream(make_request()))
    assert all(isinstance(p, str) for p in pieces)
    assert len(pieces) > 1  # real streaming, not one final block
    streamed = "".join(pieces)
    # Greedy decoding over a character vocabulary without EOS: exactly max_tokens characters.
    assert len(streamed) == 24
    assert generator.chat_model.invoke(make_request().messages).content == streamed
    assert "".join(generator.stream(make_request())) == streamed  # deterministic


def test_max_tokens_is_respected(tiny_model_dir) -> None:
    short = "".join(_generator(tiny_model_dir, max_tokens=5).stream(make_request()))
    longer = "".join(_generator(tiny_model_dir, max_tokens=40).stream(make_request()))
    assert len(short) == 5 and len(longer) == 40
    assert longer.startswith(short)


def test_prompt_uses_the_chat_template(tiny_model_dir) -> None:
    model = HuggingFaceChatModel(model_name=str(tiny_model_dir))
    prompt = model.build_prompt([SystemMessage("be brief"), HumanMessage("hello")])
    assert prompt == "<s><|system|>be brief<|end|><|user|>hello<|end|><|assistant|>"


def test_plain_prompt_without_a_chat_template(tiny_model_dir_without_template) -> None:
    generator = _generator(tiny_model_dir_without_template, max_tokens=8)
    prompt = generator.chat_model.build_prompt([SystemMessage("be brief"), HumanMessage("hello")])
    assert prompt == "system: be brief\nuser: hello\nassistant:"
    assert len("".join(generator.stream(make_request()))) == 8


def test_model_is_loaded_once_and_lazily(tiny_model_dir) -> None:
    generator = _generator(tiny_model_dir, max_tokens=3)
    chat_model = generator.chat_model
    assert chat_model._model is None  # nothing loaded by make_generator
    list(generator.stream(make_request()))
    loaded = chat_model._model
    assert loaded is not None
    generator.condense("and him", "User: who is paris", "en")
    assert chat_model._model is loaded


def test_condense_returns_text(tiny_model_dir) -> None:
    rewritten = _generator(tiny_model_dir, max_tokens=12).condense("et lui ?", "User: qui est paris", "fr")
    assert isinstance(rewritten, str) and rewritten.strip()


def test_leaving_the_stream_early_stops_generation(tiny_model_dir) -> None:
    generator = _generator(tiny_model_dir, max_tokens=3000)
    request = make_request()
    request.messages = [HumanMessage("hi")]  # keep prompt + 3000 new tokens within the model's positions
    stream = generator.stream(request)
    first = [next(stream) for _ in range(3)]
    assert all(first)
    started = time.perf_counter()
    stream.close()
    assert time.perf_counter() - started < 2.0  # the worker was cancelled, not waited for to 3000 tokens
    assert not [t for t in threading.enumerate() if t.name == "hf-generate"]


def test_missing_folder_names_the_setting(tmp_path) -> None:
    generator = _generator(tmp_path / "no-such-model")
    with pytest.raises(BackendError) as caught:
        list(generator.stream(make_request()))
    message = str(caught.value)
    assert "no-such-model" in message and "llm.model" in message and "RAG_LLM__MODEL" in message


def test_unloadable_hub_name_offline_names_the_setting(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    generator = make_generator(llm_settings(backend="hf", model="nobody/not-a-cached-model"))
    with pytest.raises(BackendError) as caught:
        generator.condense("q", "", "en")
    message = str(caught.value)
    assert "nobody/not-a-cached-model" in message and "llm.model" in message and "local cache" in message
