"""Answer generators and the one place that picks one from the settings.

`make_generator(settings, backend=None)` builds the generator named by `backend` or `llm.backend`:

- `extractive`: no LLM; answers with sentences taken from the passages (always available).
- `hf`: a local transformers causal LM (`llm.model`: hub name in the local cache or a folder).
- `openai`: any OpenAI-compatible server (`llm.base_url`, `llm.model`, key in env var `llm.api_key_env`).
- `ollama`: an Ollama server (`llm.base_url`, default http://127.0.0.1:11434, `llm.model`).

Each backend module is imported only when chosen, so `import rag.backends` loads no client library,
torch or transformers. Models load on first use, not here.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.util import find_spec
from typing import get_args

from rag.backends.base import GenerationRequest, Generator
from rag.errors import BackendError
from rag.settings import BackendName, Settings

__all__ = [
    "BACKENDS",
    "GenerationRequest",
    "Generator",
    "available_backends",
    "make_generator",
    "model_for",
]

BACKENDS: tuple[str, ...] = get_args(BackendName)


def _make_extractive(settings: Settings) -> Generator:
    from rag.backends.extractive import ExtractiveGenerator

    # Stand-alone: scores over the passages themselves. The assistant wires it to the index's statistics
    # (rag.builders.build_generator).
    return ExtractiveGenerator()


def _make_hf(settings: Settings) -> Generator:
    from rag.backends.hf import make_hf_generator

    return make_hf_generator(settings)


def _make_openai(settings: Settings) -> Generator:
    from rag.backends.openai import make_openai_generator

    return make_openai_generator(settings)


def _make_ollama(settings: Settings) -> Generator:
    from rag.backends.ollama import make_ollama_generator

    return make_ollama_generator(settings)


_FACTORIES: dict[str, Callable[[Settings], Generator]] = {
    "extractive": _make_extractive,
    "hf": _make_hf,
    "openai": _make_openai,
    "ollama": _make_ollama,
}


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _hf_model_available(settings: Settings) -> bool:
    """A configured model counts (loading it tells what is wrong); the default only if already cached."""
    if settings.llm.model:
        return True
    from rag.backends.hf import DEFAULT_HF_MODEL

    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(DEFAULT_HF_MODEL, "config.json"), str)
    except Exception:
        return False


def available_backends(settings: Settings) -> list[str]:
    """Backends that can be chosen here: their packages are installed (servers are not contacted)."""
    names = ["extractive"]
    if _installed("transformers") and _installed("torch") and _hf_model_available(settings):
        names.append("hf")
    if _installed("langchain_openai"):
        names.append("openai")
    if _installed("langchain_ollama"):
        names.append("ollama")
    return names


def model_for(settings: Settings, backend: str) -> str | None:
    """The model `backend` answers with: `llm.model`, else that backend's own default (None: no model)."""
    if backend == "extractive":
        return None
    if settings.llm.model:
        return settings.llm.model
    if backend == "hf":
        from rag.backends.hf import DEFAULT_HF_MODEL as default
    elif backend == "openai":
        from rag.backends.openai import DEFAULT_OPENAI_MODEL as default
    elif backend == "ollama":
        from rag.backends.ollama import DEFAULT_OLLAMA_MODEL as default
    else:
        return None
    return default


def make_generator(settings: Settings, backend: str | None = None) -> Generator:
    """Build the generator for `backend` (default: `settings.llm.backend`).

    Raises `BackendError` for an unknown name or a configuration that cannot work (for instance no API
    key for api.openai.com). Servers are not contacted and models are not loaded here.
    """
    name = (backend or settings.llm.backend).strip().lower()
    factory = _FACTORIES.get(name)
    if factory is None:
        raise BackendError(
            f"Unknown LLM backend {name!r}. Valid backends: {', '.join(BACKENDS)}. "
            f"Set llm.backend in rag.toml or the environment variable RAG_LLM__BACKEND."
        )
    return factory(settings)
