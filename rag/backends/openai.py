"""The `openai` backend: any OpenAI-compatible chat server (OpenAI, vLLM, llama.cpp server, LM Studio).

Talks the Chat Completions API through `langchain_openai.ChatOpenAI`. The API key is read from the
environment variable *named* by `llm.api_key_env`; local servers that need no key get a placeholder.
"""

from __future__ import annotations

import os
from urllib.parse import urlparse

from rag.backends.chat_model import BackendTarget, ChatModelGenerator
from rag.errors import BackendError
from rag.settings import Settings

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
OFFICIAL_BASE_URL = "https://api.openai.com/v1"
# Local servers ignore the key, but the client refuses to start without one.
PLACEHOLDER_API_KEY = "not-needed"
# One retry absorbs a transient 429/503 without making a dead server slow to report.
MAX_RETRIES = 1


def check_base_url(base_url: str, backend: str) -> str:
    """Return the URL without a trailing slash, or raise a `BackendError` naming llm.base_url."""
    parsed = urlparse(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BackendError(
            f"The {backend} backend: llm.base_url {base_url!r} is not an http(s) address. Set llm.base_url "
            f"(env RAG_LLM__BASE_URL) to e.g. http://127.0.0.1:8000/v1."
        )
    return base_url.rstrip("/")


def make_openai_generator(settings: Settings) -> ChatModelGenerator:
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise BackendError(
            "The openai backend needs the langchain-openai package: pip install 'rag-fr[llm]' "
            "(or choose another llm.backend)."
        ) from exc

    llm = settings.llm
    base_url = check_base_url(llm.base_url, "openai") if llm.base_url else None
    model = llm.model or DEFAULT_OPENAI_MODEL
    api_key = os.environ.get(llm.api_key_env, "").strip()
    if not api_key:
        if base_url is None:
            raise BackendError(
                f"The openai backend talks to {OFFICIAL_BASE_URL} but the environment variable "
                f"{llm.api_key_env} holding the API key is not set. Set it (the variable's name is "
                f"llm.api_key_env / RAG_LLM__API_KEY_ENV), or set llm.base_url (RAG_LLM__BASE_URL) to a local "
                f"OpenAI-compatible server."
            )
        api_key = PLACEHOLDER_API_KEY
    chat_model = ChatOpenAI(
        model=model,
        base_url=base_url,
        api_key=api_key,
        streaming=True,
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        timeout=llm.timeout_s,
        max_retries=MAX_RETRIES,
        # Local servers implement Chat Completions, not the Responses API some model names would select.
        use_responses_api=False,
    )
    target = BackendTarget(
        backend="openai",
        model=model,
        address=base_url or OFFICIAL_BASE_URL,
        api_key_env=llm.api_key_env,
        timeout_s=llm.timeout_s,
    )
    return ChatModelGenerator(chat_model, "openai", target=target)
