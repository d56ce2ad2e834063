"""The `ollama` backend: a model served by a local (or remote) Ollama server, via `ChatOllama`."""

from __future__ import annotations

from rag.backends.chat_model import BackendTarget, ChatModelGenerator
from rag.backends.openai import check_base_url
from rag.errors import BackendError
from rag.settings import Settings

DEFAULT_OLLAMA_MODEL = "llama3.2"
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"
# Ollama's default context window (2048-4096 tokens depending on the version) silently truncates a
# prompt holding several passages; ask for a window that fits top_k passages plus the answer.
OLLAMA_NUM_CTX = 8192


def make_ollama_generator(settings: Settings) -> ChatModelGenerator:
    try:
        from langchain_ollama import ChatOllama
    except ImportError as exc:
        raise BackendError(
            "The ollama backend needs the langchain-ollama package: pip install 'rag-fr[llm]' "
            "(or choose another llm.backend)."
        ) from exc

    llm = settings.llm
    base_url = check_base_url(llm.base_url or DEFAULT_OLLAMA_URL, "ollama")
    model = llm.model or DEFAULT_OLLAMA_MODEL
    chat_model = ChatOllama(
        model=model,
        base_url=base_url,
        temperature=llm.temperature,
        num_predict=llm.max_tokens,
        num_ctx=OLLAMA_NUM_CTX,
        client_kwargs={"timeout": llm.timeout_s},
    )
    target = BackendTarget(backend="ollama", model=model, address=base_url, timeout_s=llm.timeout_s)
    return ChatModelGenerator(chat_model, "ollama", target=target)
