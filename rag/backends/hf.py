"""The `hf` backend: a local transformers causal LM as a LangChain chat model, with real token streaming.

`HuggingFaceChatModel` loads the model and tokenizer once, on first use, from a hub name found in the
local cache or from a folder (`llm.model`), on `llm.hf_device`. Messages become a prompt through the
tokenizer's chat template when it has one, else through a plain "role: content" transcript.
Streaming runs `generate` in a worker thread that feeds a `TextIteratorStreamer`; the caller reads
pieces as they are decoded, and leaving the stream early stops the generation.

torch and transformers are imported inside the methods only: importing this module stays cheap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from rag.backends.chat_model import BackendTarget, ChatModelGenerator
from rag.errors import BackendError
from rag.settings import Settings

# Small, multilingual (French included) and able to follow the citation prompt; used when llm.model is unset.
DEFAULT_HF_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# How long the reader waits for the next piece before deciding the worker is stuck.
STREAM_POLL_TIMEOUT_S = 600.0

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def _role(message: BaseMessage) -> str:
    return _ROLES.get(message.type, message.type)


class HuggingFaceChatModel(BaseChatModel):
    """A chat model over `AutoModelForCausalLM` + `AutoTokenizer`, loaded lazily and only once."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = Field(description="Hub name (already in the local cache) or a local folder.")
    device: str = "cpu"
    temperature: float = 0.0  # 0: greedy decoding, deterministic
    max_new_tokens: int = 512
    seed: int | None = None  # seeds sampling when temperature > 0

    _model: Any = PrivateAttr(default=None)
    _tokenizer: Any = PrivateAttr(default=None)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    # One generation at a time: two would only share the same CPU cores and both be slow.
    _generate_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def _llm_type(self) -> str:
        return "huggingface-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "device": self.device, "temperature": self.temperature}

    # -- loading -----------------------------------------------------------------------------------

    def load(self) -> tuple[Any, Any]:
        """Load (once) and return `(model, tokenizer)`; raise a `BackendError` naming llm.model if impossible."""
        with self._load_lock:
            if self._model is None:
                self._model, self._tokenizer = self._load()
        return self._model, self._tokenizer

    def _load(self) -> tuple[Any, Any]:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise BackendError(
                "The hf backend needs torch and transformers installed (pip install transformers torch)."
            ) from exc
        path = Path(self.model_name).expanduser()
        looks_like_folder = self.model_name.startswith((".", "/", "~")) or path.is_absolute()
        if looks_like_folder and not path.is_dir():
            raise BackendError(
                f"The hf backend: the model folder {str(path)!r} does not exist. Set llm.model "
                f"(env RAG_LLM__MODEL) to a folder holding a transformers causal LM (config.json, weights, "
                f"tokenizer files), or to a hub name already in the local cache."
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path) if looks_like_folder else self.model_name)
            # bfloat16/float16 weights are slow or unsupported on many CPUs; compute in float32 there.
            dtype = torch.float32 if self.device == "cpu" else "auto"
            model = AutoModelForCausalLM.from_pretrained(
                str(path) if looks_like_folder else self.model_name, dtype=dtype
            )
            model.to(self.device)
            model.eval()
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0].rstrip(".") if str(exc).strip() else type(exc).__name__
            download = (
                ""
                if looks_like_folder
                else f" (hubs may be unreachable: `hf download {self.model_name}` on a connected machine first)"
            )
            raise BackendError(
                f"The hf backend could not load model {self.model_name!r} on device {self.device!r}: "
                f"{type(exc).__name__}: {reason}. Set llm.model (env RAG_LLM__MODEL) to a local folder "
                f"holding a transformers causal LM (config.json, weights, tokenizer files) or to a hub name "
                f"already in the local cache{download}; the device is llm.hf_device (env RAG_LLM__HF_DEVICE)."
            ) from exc
        return model, tokenizer

    # -- prompt ------------------------------------------------------------------------------------

    def build_prompt(self, messages: list[BaseMessage]) -> str:
        _, tokenizer = self.load()
        turns = [{"role": _role(m), "content": str(m.text)} for m in messages]
        if getattr(tokenizer, "chat_template", None):
            try:
                return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
            except Exception:
                # Some templates (Gemma, Mistral v1) reject a system turn: fold it into the first user turn.
                return tokenizer.apply_chat_template(
                    _fold_system(turns), tokenize=False, add_generation_prompt=True
                )
        lines = [f"{turn['role']}: {turn['content']}" for turn in turns]
        return "\n".join([*lines, "assistant:"])

    def _inputs(self, messages: list[BaseMessage]) -> Any:
        model, tokenizer = self.load()
        prompt = self.build_prompt(messages)
        # The chat template already wrote any BOS token; don't add a second one.
        has_template = bool(getattr(tokenizer, "chat_template", None))
        encoded = tokenizer(prompt, return_tensors="pt", add_special_tokens=not has_template)
        return encoded.to(model.device)

    def _generation_kwargs(self, inputs: Any, stop: list[str] | None, **kwargs: Any) -> dict[str, Any]:
        model, tokenizer = self.load()
        temperature = kwargs.get("temperature", self.temperature)
        settings: dict[str, Any] = {
            **inputs,
            "max_new_tokens": kwargs.get("max_new_tokens", kwargs.get("max_tokens", self.max_new_tokens)),
            "do_sample": temperature > 0,
            "pad_token_id": tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else tokenizer.eos_token_id,
        }
        if temperature > 0:
            settings["temperature"] = temperature
        else:
            # The model's generation_config may ask for sampling; greedy wants those knobs unset.
            settings.update(temperature=None, top_p=None, top_k=None)
        if stop:
            settings.update(stop_strings=stop, tokenizer=tokenizer)
        return settings

    # -- BaseChatModel -----------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        import torch

        model, tokenizer = self.load()
        inputs = self._inputs(messages)
        generation = self._generation_kwargs(inputs, stop, **kwargs)
        with self._generate_lock, torch.inference_mode():
            self._seed()
            output = model.generate(**generation)
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        text = _cut_at_stop(text, stop)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        model, tokenizer = self.load()
        inputs = self._inputs(messages)
        cancelled = threading.Event()

        class _StopWhenCancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **_: Any) -> Any:
                return torch.full((input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool)

        streamer = TextIteratorStreamer(
            tokenizer, skip_prompt=True, timeout=STREAM_POLL_TIMEOUT_S, skip_special_tokens=True
        )
        generation = self._generation_kwargs(inputs, stop, **kwargs)
        generation.update(streamer=streamer, stopping_criteria=StoppingCriteriaList([_StopWhenCancelled()]))
        failure: list[BaseException] = []

        def work() -> None:
            try:
                with self._generate_lock, torch.inference_mode():
                    self._seed()
                    model.generate(**generation)
            except BaseException as exc:  # re-raised in the reading thread
                failure.append(exc)
                streamer.end()  # unblock the reader

        worker = threading.Thread(target=work, name="hf-generate", daemon=True)
        worker.start()
        emitted = ""
        stopped = False
        try:
            for piece in streamer:
                if not piece:
                    continue
                if stop:
                    # Text from a stop string on must never reach the reader (a stop string split over
                    # two pieces is cut when it completes; its first part has then been shown).
                    cut = _cut_at_stop(emitted + piece, stop)
                    if len(cut) < len(emitted) + len(piece):
                        piece, stopped = cut[len(emitted) :], True
                emitted += piece
                if piece:
                    chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
                    if run_manager:
                        run_manager.on_llm_new_token(piece, chunk=chunk)
                    yield chunk
                if stopped:
                    break
        finally:
            cancelled.set()
            worker.join()
        if failure:
            raise failure[0]

    def _seed(self) -> None:
        if self.temperature > 0 and self.seed is not None:
            import torch

            torch.manual_seed(self.seed)


def _fold_system(turns: list[dict[str, str]]) -> list[dict[str, str]]:
    system = "\n\n".join(t["content"] for t in turns if t["role"] == "system")
    rest = [dict(t) for t in turns if t["role"] != "system"]
    if system and rest and rest[0]["role"] == "user":
        rest[0]["content"] = f"{system}\n\n{rest[0]['content']}"
    elif system:
        rest.insert(0, {"role": "user", "content": system})
    return rest


def _cut_at_stop(text: str, stop: list[str] | None) -> str:
    if not stop:
        return text
    positions = [text.find(s) for s in stop if s and s in text]
    return text[: min(positions)] if positions else text


def make_hf_generator(settings: Settings) -> ChatModelGenerator:
    llm = settings.llm
    model_name = llm.model or DEFAULT_HF_MODEL
    chat_model = HuggingFaceChatModel(
        model_name=model_name,
        device=llm.hf_device,
        temperature=llm.temperature,
        max_new_tokens=llm.max_tokens,
        seed=0,
    )
    target = BackendTarget(backend="hf", model=model_name, address=f"device {llm.hf_device}")
    return ChatModelGenerator(chat_model, "hf", target=target)
