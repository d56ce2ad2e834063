"""Embedding models behind one small interface, and the loader that falls back to lexical mode.

`Embedder` is what the store and the build need: embed passages (batched, normalised, passage prompt),
embed a query (query prompt), count tokens with the model's own tokenizer (chunk budgets are in model
tokens). `SentenceTransformerEmbedder` wraps sentence-transformers; tests use a tiny real model.

Prompts, first match wins: the configured `query_prompt` / `passage_prompt`; the model's own `prompts`
("query", and "document" or "passage"); "query: " / "passage: " for E5 models (their name holds "e5");
no prompt.

Loading never hangs offline: a first attempt uses only the local cache (`local_files_only=True`), which
fails in milliseconds when the model is absent; a download is tried only when the hub is not disabled
(`HF_HUB_OFFLINE`), with short hub timeouts. `load_embedder` turns any failure into one printed warning
and None, which means lexical-only retrieval.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.config import IndexConfig
from index.errors import EmbeddingUnavailable
from index.query_batcher import QueryBatcher
from index.tokens import QueryEncoding, TextTokens, text_tokens

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from index.onnx_encoder import OnnxTransformer

ProgressCallback = Callable[[int, int, str], None]

# Fallback token counter: one token per punctuation mark, one per word plus one per 5 further
# characters. Measured on PIAF paragraphs against the multilingual WordPiece of MiniLM it is within ~15 %;
# it is only used when there is no model (lexical mode), where the budget need not be exact.
_APPROX_TOKEN = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)


def approx_token_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of approximate subword tokens (see module docstring): long words are cut in pieces."""
    spans: list[tuple[int, int]] = []
    for match in _APPROX_TOKEN.finditer(text):
        start, end = match.span()
        first = min(end, start + 6)
        spans.append((start, first))
        for piece in range(first, end, 5):
            spans.append((piece, min(end, piece + 5)))
    return spans


def approx_token_count(text: str) -> int:
    return len(approx_token_spans(text))


class Embedder(ABC):
    """Text -> unit vectors. Row i of `embed_passages(texts)` is the vector of texts[i]."""

    name: str
    dimension: int
    query_prompt: str = ""
    passage_prompt: str = ""
    max_tokens: int | None = None  # longest input the model reads (prompt and special tokens included)

    @abstractmethod
    def embed_passages(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """float32 array (len(texts), dimension), L2-normalised, passage prompt applied."""

    @abstractmethod
    def embed_query(self, text: str) -> np.ndarray:
        """float32 vector (dimension,), L2-normalised, query prompt applied."""

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array (len(texts), dimension): row i is `embed_query(texts[i])`. Subclasses batch it."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([np.asarray(self.embed_query(text), dtype=np.float32) for text in texts])

    #: Whether `embed_passages_with_tokens` and `encode_query` give token vectors (`index.tokens`).
    gives_token_vectors: bool = False

    def embed_passages_with_tokens(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[np.ndarray, list[TextTokens] | None]:
        """`embed_passages(texts)` and each text's token vectors from the same forward pass (None when this
        embedder cannot give them: `gives_token_vectors`)."""
        return self.embed_passages(texts, show_progress=show_progress, on_progress=on_progress), None

    def encode_query(self, text: str) -> QueryEncoding:
        """The query's vector (`embed_query`) and, when the embedder gives them, its token vectors from the
        same forward pass."""
        return QueryEncoding(np.asarray(self.embed_query(text), dtype=np.float32), None)

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        return [self.count_tokens(text) for text in texts]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the tokens of `text`, to cut an over-long sentence on token boundaries."""
        return approx_token_spans(text)

    def settings(self) -> dict[str, Any]:
        """What the manifest records, and what must match when an index is reopened."""
        return {
            "model": self.name,
            "dimension": self.dimension,
            "query_prompt": self.query_prompt,
            "passage_prompt": self.passage_prompt,
        }


def _is_e5(model_name: str) -> bool:
    return re.search(
        r"(^|[/_\-])(multilingual-)?e5([_\-]|$)", Path(model_name).name.lower() + "/"
    ) is not None or ("e5-" in model_name.lower())


def resolve_prompts(config: IndexConfig, model_prompts: dict[str, str] | None) -> tuple[str, str]:
    """(query_prompt, passage_prompt) by the precedence of the module docstring."""
    model_prompts = {k: v for k, v in (model_prompts or {}).items() if v}
    e5 = _is_e5(config.embedding_model)
    query = config.query_prompt
    if query is None:
        query = model_prompts.get("query") or ("query: " if e5 else "")
    passage = config.passage_prompt
    if passage is None:
        passage = model_prompts.get("document") or model_prompts.get("passage") or ("passage: " if e5 else "")
    return query, passage


class SentenceTransformerEmbedder(Embedder):
    """A sentence-transformers model given by hub name or local folder (`config.embedding_model`)."""

    def __init__(
        self,
        config: IndexConfig,
        *,
        model: SentenceTransformer | None = None,
        onnx: OnnxTransformer | None = None,
    ) -> None:
        if not config.embedding_model:
            raise EmbeddingUnavailable("No embedding model is configured (index.embedding_model is empty).")
        self.config = config
        self.name = config.embedding_model
        self.model = model if model is not None else _load_sentence_transformer(config)
        dimension = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(dimension())
        self.query_prompt, self.passage_prompt = resolve_prompts(config, getattr(self.model, "prompts", None))
        self.batch_size = config.embedding_batch_size
        self.max_tokens = self.model.max_seq_length
        self.query_threads = config.embedding_query_threads
        self._tokenizer = self.model.tokenizer
        # Token vectors are placed in the text by the fast tokenizer's character offsets.
        self.gives_token_vectors = bool(getattr(self._tokenizer, "is_fast", False))
        self.model.eval()  # once: `encode()` would call it (a walk over every module) on each query
        self._workers = (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        )
        self._modules_after_transformer = list(self.model)[1:]
        self._tokenizer_lock = threading.Lock()
        self.onnx = _load_onnx(self.model, config) if onnx is None else onnx
        self.backend = "onnx" if self.onnx is not None else "torch"
        self.query_onnx = _load_int8_query_onnx(self.model, self.onnx, config)
        # Questions asked at the same moment by several threads (chat sessions) share model calls, one
        # call per core at a time with a one-thread ONNX session (else one: the call uses every core).
        running = self._workers if self.onnx is not None and self.onnx.threads == 1 else 1
        self._query_batcher = QueryBatcher(
            self.encode_queries, max_batch=self.batch_size, max_running=running, split=self.query_calls
        )

    # -- embedding ------------------------------------------------------------------------------------
    def _encode(self, texts: list[str], prompt: str, show_progress: bool) -> np.ndarray:
        """sentence-transformers' own `encode()` (torch): the reference the other paths are checked against."""
        vectors = self.model.encode(
            texts,
            prompt=prompt or None,
            batch_size=self.batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def _embed_batch(
        self, texts: list[str], prompt: str, onnx: OnnxTransformer | None = None, *, tokens: bool = False
    ) -> np.ndarray | tuple[np.ndarray, list[TextTokens]]:
        """One batch through the model's own modules: its tokenisation with the prompt, the transformer
        (ONNX Runtime or torch), its pooling, then L2 normalisation, as `encode()` does. Without what
        `encode()` redoes on every call for large corpora (eval mode, a device check of every parameter),
        which on one short question was a quarter of the model call (eval/benchmarks/query_embedding.py).
        `onnx`: the ONNX transformer to run (default `self.onnx`; questions pass `self.query_onnx`).
        `tokens`: also each text's token vectors from the same pass (`index.tokens.TextTokens`): the hidden
        states the pooling read, with the tokens' character offsets in the text."""
        import torch
        from sentence_transformers.util import batch_to_device

        with torch.inference_mode():
            # A fast tokenizer sets its padding/truncation state on each call: not safe from two threads
            # at once (passage batches run side by side; chat sessions embed concurrently).
            with self._tokenizer_lock:
                features = self.model.preprocess(texts, prompt=prompt or None)
            onnx = onnx or self.onnx
            if onnx is not None:
                features["token_embeddings"] = torch.from_numpy(onnx.token_embeddings(features))
                for module in self._modules_after_transformer:
                    features = module(features)
            else:
                features = self.model(batch_to_device(features, self.model.device))
            vectors = features["sentence_embedding"]
            truncate_dim = getattr(self.model, "truncate_dim", None)
            if truncate_dim:
                vectors = vectors[:, :truncate_dim]
            vectors = torch.nn.functional.normalize(vectors.float(), p=2, dim=1).cpu().numpy()
            if not tokens:
                return vectors
            hidden = features["token_embeddings"].float().cpu().numpy()
            return vectors, self._text_tokens(texts, prompt, features["input_ids"].cpu().numpy(), hidden)

    def _text_tokens(
        self, texts: list[str], prompt: str, input_ids: np.ndarray, hidden: np.ndarray
    ) -> list[TextTokens]:
        """Each text's kept tokens (`index.tokens.text_tokens`): the batch tokenised again by the same fast
        tokenizer for the offsets (no model call), checked to give the very ids the model read."""
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                [prompt + text for text in texts],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                return_tensors="np",
            )
        if encoded["input_ids"].shape != input_ids.shape or not np.array_equal(
            encoded["input_ids"], input_ids
        ):
            raise RuntimeError(
                f"The tokenizer of {self.name} gave other tokens with offsets than without: token vectors "
                "cannot be placed in the text."
            )
        mask = encoded["attention_mask"].astype(bool)
        special = encoded["special_tokens_mask"].astype(bool)
        offsets = encoded["offset_mapping"]
        return [
            text_tokens(hidden[i], mask[i], special[i], offsets[i], input_ids[i], text, len(prompt))
            for i, text in enumerate(texts)
        ]

    def _batch_size(self, onnx: OnnxTransformer | None) -> int:
        """Texts per model call: 1 through the int8 query copy, whose dynamic quantisation scales each
        activation by the largest value of the whole call (padding rows and the other questions included):
        batched, a question's vector moved by ~3e-4 per dimension with its neighbours, so an answer could
        change with what other people asked at the same moment. One at a time it costs about the same per
        question (0.60 x float32's at batch 1, 0.76 x at batch 8, `eval.benchmarks.query_int8`)."""
        return 1 if onnx is not None and onnx is self.query_onnx else self.batch_size

    def _embed_all(
        self,
        texts: list[str],
        prompt: str,
        on_batch: Callable[[int], None] | None = None,
        onnx: OnnxTransformer | None = None,
        tokens: list[TextTokens] | None = None,
        quantise_tokens: bool = False,
    ) -> np.ndarray:
        """Row i is the vector of texts[i]. Batches of similar lengths in model tokens (longest first):
        a batch is padded to its longest text and the model's cost is by the token, padding included.
        Ordered by characters, as `encode()` orders them, PIAF's sentence windows were padded to 1.22 times
        their tokens and its chunks to 1.15 times; by tokens, 1.01 (same vectors: padding is masked out).
        With a one-thread ONNX session, batches run side by side on `_workers`
        threads (ONNX Runtime releases the GIL): each core runs whole batches, with none of the barriers
        of sharing one batch's matrix products between threads. `tokens`: a list filled with each text's
        token vectors (`_embed_batch(tokens=True)`), in text order, int8 as they are stored when
        `quantise_tokens` (a passage's: a large corpus's float32 token vectors would not fit in memory)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        batch_size = self._batch_size(onnx)
        if len(texts) > batch_size:
            with self._tokenizer_lock:
                lengths = self.count_tokens_batch(texts)
        else:
            lengths = [len(text) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        batches = [order[lo : lo + batch_size] for lo in range(0, len(order), batch_size)]

        found: list[TextTokens | None] = [None] * len(texts) if tokens is not None else []

        def run(ids: list[int]) -> list[int]:
            if tokens is None:
                out[ids] = self._embed_batch([texts[i] for i in ids], prompt, onnx)
                return ids
            out[ids], batch_tokens = self._embed_batch([texts[i] for i in ids], prompt, onnx, tokens=True)
            for i, item in zip(ids, batch_tokens, strict=True):
                found[i] = item.quantised() if quantise_tokens else item
            return ids

        workers = self._workers if self.onnx is not None and self.onnx.threads == 1 else 1
        if workers > 1 and len(batches) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
                for ids in pool.map(run, batches):
                    if on_batch is not None:
                        on_batch(len(ids))
        else:
            for ids in batches:
                run(ids)
                if on_batch is not None:
                    on_batch(len(ids))
        if tokens is not None:
            tokens.extend(item for item in found if item is not None)
        return out

    def embed_passages(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        return self._embed_passages(list(texts), show_progress, on_progress, None)

    def embed_passages_with_tokens(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[np.ndarray, list[TextTokens] | None]:
        tokens: list[TextTokens] = []
        vectors = self._embed_passages(list(texts), show_progress, on_progress, tokens)
        return vectors, tokens

    def _embed_passages(
        self,
        texts: list[str],
        show_progress: bool,
        on_progress: ProgressCallback | None,
        tokens: list[TextTokens] | None,
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        done = 0
        bar = None
        if show_progress and on_progress is None:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc="Embedding", unit="text")

        def on_batch(count: int) -> None:
            nonlocal done
            done += count
            if bar is not None:
                bar.update(count)
            if on_progress is not None:
                on_progress(done, len(texts), "embedding")

        try:
            return self._embed_all(texts, self.passage_prompt, on_batch, tokens=tokens, quantise_tokens=True)
        finally:
            if bar is not None:
                bar.close()

    def embed_query(self, text: str) -> np.ndarray:
        return self.encode_query(text).vector

    def encode_query(self, text: str) -> QueryEncoding:
        return self._query_batcher.embed(text)

    def encode_queries(self, texts: Sequence[str]) -> list[QueryEncoding]:
        """Questions with their token vectors, in one pass (what the query batcher runs; see
        `embed_queries`)."""
        texts = list(texts)
        if not texts:
            return []
        tokens: list[TextTokens] = []
        with torch_threads(self.query_threads):
            vectors = self._embed_all(texts, self.query_prompt, onnx=self.query_onnx, tokens=tokens)
        return [QueryEncoding(vector, item) for vector, item in zip(vectors, tokens, strict=True)]

    def query_calls(self, texts: Sequence[str], call_size: int | None = None) -> list[list[int]]:
        """How the questions the query batcher hands over together (chat sessions asking at the same
        moment) are embedded: the positions of each model call, shortest first, in calls of at most
        `QUERY_CALL_SIZE`, one after the other. A call pads every question to its longest, and the forward
        pass costs by the token, padding included: the waiting questions of a burst differ in length, and
        their padding was up to a third of a call of 32 (`eval.benchmarks.query_batches`). Smaller calls
        of like lengths pad less; each call's fixed cost keeps them from being single questions.
        (`call_size`: another size, to compare.)"""
        size = call_size or QUERY_CALL_SIZE
        if self.query_onnx is not None:  # the int8 copy: one question per call (see `_batch_size`)
            return [[i] for i in range(len(texts))]
        if len(texts) <= size:
            return [list(range(len(texts)))]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        return [order[start : start + size] for start in range(0, len(order), size)]

    def _encode_waiting_queries(
        self, texts: Sequence[str], call_size: int | None = None
    ) -> list[QueryEncoding]:
        """`encode_queries` for questions waiting together, in the calls of `query_calls`, one after the
        other (the query batcher answers each call's callers as it ends; `eval.benchmarks.query_batches`
        compares call sizes with this)."""
        texts = list(texts)
        found: list[QueryEncoding | None] = [None] * len(texts)
        for part in self.query_calls(texts, call_size):
            for i, encoding in zip(part, self.encode_queries([texts[i] for i in part]), strict=True):
                found[i] = encoding
        return [encoding for encoding in found if encoding is not None]

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Questions, one or a few at a time (the batch path serves concurrent chat sessions and the eval),
        on `query_threads` intra-op threads (see `index.config.IndexConfig.embedding_query_threads`), through
        the int8 copy of the ONNX export when there is one (`index.config.IndexConfig.embedding_query_int8`)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with torch_threads(self.query_threads):
            return self._embed_all(texts, self.query_prompt, onnx=self.query_onnx)

    # -- tokens ---------------------------------------------------------------------------------------
    def count_tokens(self, text: str) -> int:
        return self.count_tokens_batch([text])[0]

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if getattr(self._tokenizer, "is_fast", False):
            # One batched call to the Rust tokenizer: per-sentence calls would dominate indexing time.
            encoded = self._tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)
            return [len(ids) for ids in encoded["input_ids"]]
        return [len(self._tokenizer.tokenize(text)) for text in texts]

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        if getattr(self._tokenizer, "is_fast", False):
            encoded = self._tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            return [(int(a), int(b)) for a, b in encoded["offset_mapping"] if b > a]
        return approx_token_spans(text)


# Questions per model call when many wait together (`SentenceTransformerEmbedder._encode_waiting_queries`).
# Bursts of 32 questions, e5-small with ONNX Runtime on one thread, CPU per question (median of 8 bursts,
# load ~8), the concurrency benchmark's questions (with the tenth session's symbol tags) / PIAF dev
# questions: one call of 32 16.3 / 17.7 ms, calls of 16 14.5 / 15.2, of 8 14.4 / 14.7, of 4 14.6 / 14.9,
# one by one 18.6 / 18.7; every vector the same as the question's embedded alone, to the bit
# (`python -m eval.benchmarks.query_batches --model DIR`).
QUERY_CALL_SIZE = 8


def _load_onnx(model: SentenceTransformer, config: IndexConfig) -> OnnxTransformer | None:
    """The ONNX Runtime transformer when `config.embedding_backend` allows and it works, else None (torch).
    "auto" falls back to torch quietly when onnxruntime is not installed, with one line on stderr for
    any other reason; "onnx" turns any reason into EmbeddingUnavailable."""
    from index.onnx_encoder import OnnxUnavailable, load_onnx_transformer

    backend = config.embedding_backend
    if backend == "torch":
        return None
    try:
        if str(model.device) != "cpu":
            raise OnnxUnavailable(f"the model runs on {model.device}; ONNX Runtime is used on the CPU only")
        return load_onnx_transformer(model, config.embedding_model, config.embedding_query_threads)
    except OnnxUnavailable as exc:
        if backend == "onnx":
            raise EmbeddingUnavailable(
                f"index.embedding_backend is 'onnx' but {exc}. Set it to 'auto' or 'torch' "
                "(RAG_INDEX__EMBEDDING_BACKEND=torch) to use torch."
            ) from exc
        if "not installed" not in str(exc):
            print(f"Note: embedding with torch, not ONNX Runtime: {exc}", file=sys.stderr)
        return None


def _load_int8_query_onnx(
    model: SentenceTransformer, onnx: OnnxTransformer | None, config: IndexConfig
) -> OnnxTransformer | None:
    """The int8 query copy of the ONNX export when `config.embedding_query_int8` asks for it and it works;
    else None (questions use the float32 export or torch), with one line on stderr saying why."""
    if onnx is None or not config.embedding_query_int8:
        return None
    from index.onnx_encoder import OnnxUnavailable, load_int8_query_transformer

    try:
        return load_int8_query_transformer(model, onnx)
    except OnnxUnavailable as exc:
        print(f"Note: questions embedded in float32: {exc}", file=sys.stderr)
        return None


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` intra-op threads (0: leave torch's setting). torch keeps this count
    per calling thread (OpenMP and MKL thread-local settings), so a chat session embedding its question
    does not change the threads of an index build running in another thread; restored on exit."""
    if threads <= 0:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if previous == threads:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _hub_disabled() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _hub_reachable(timeout_s: float = 3.0) -> tuple[bool, str]:
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = (
        endpoint.hostname or "huggingface.co",
        endpoint.port or (443 if endpoint.scheme == "https" else 80),
    )
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True, ""
    except OSError as exc:
        return False, f"{host}:{port}: {exc}"


def _in_local_cache(name: str) -> bool:
    """Is some snapshot of hub model `name` cached? Checked without importing torch, so that a missing
    model falls back to lexical mode in well under a second."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.constants import HF_HUB_CACHE

    folders = [None, HF_HUB_CACHE]
    if os.environ.get("SENTENCE_TRANSFORMERS_HOME"):
        folders.append(os.environ["SENTENCE_TRANSFORMERS_HOME"])
    for folder in folders:
        for filename in ("modules.json", "config.json"):
            try:
                if isinstance(try_to_load_from_cache(name, filename, cache_dir=folder), str):
                    return True
            except Exception:  # noqa: BLE001, S112 - an odd name is simply "not cached"
                continue
    return False


def _load_sentence_transformer(config: IndexConfig) -> SentenceTransformer:
    """Load from a local folder or the local cache; download only if the hub is allowed. Raises
    EmbeddingUnavailable with the reason."""
    from transformers.utils import logging as transformers_logging

    # transformers 5 draws a "Loading weights" bar on every load: noise before each `rag ask`. Download bars
    # (huggingface_hub's own, on a first use) are not affected.
    transformers_logging.disable_progress_bar()
    name = config.embedding_model
    local = Path(name).expanduser()
    looks_like_path = local.is_absolute() or name.startswith((".", "~")) or local.exists()
    if looks_like_path:
        if not local.is_dir():
            raise EmbeddingUnavailable(f"the folder {local} does not exist")
        try:
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(str(local), device=config.embedding_device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means "no model"; the reason is shown
            raise EmbeddingUnavailable(
                f"the folder {local} is not a sentence-transformers model: {exc}"
            ) from exc
    if _in_local_cache(name):
        try:
            from sentence_transformers import SentenceTransformer

            return SentenceTransformer(name, device=config.embedding_device, local_files_only=True)
        except Exception as cached_exc:  # noqa: BLE001
            if _hub_disabled():
                raise EmbeddingUnavailable(
                    f"it is not fully in the local cache and the hub is disabled (HF_HUB_OFFLINE=1): {cached_exc}"
                ) from cached_exc
    elif _hub_disabled():
        raise EmbeddingUnavailable("it is not in the local cache and the hub is disabled (HF_HUB_OFFLINE=1)")
    # huggingface_hub retries an unreachable host for more than a minute: probe it first, in seconds.
    reachable, why = _hub_reachable()
    if not reachable:
        raise EmbeddingUnavailable(f"it is not in the local cache and the model hub is unreachable ({why})")
    try:
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(name, device=config.embedding_device)
    except Exception as exc:  # noqa: BLE001
        raise EmbeddingUnavailable(f"it could not be downloaded: {exc}") from exc


def load_embedder(config: IndexConfig, *, warn: bool = True) -> Embedder | None:
    """The configured embedder, or None (lexical-only mode) after one clear warning on stderr."""
    if not config.embedding_model:
        return None
    try:
        return SentenceTransformerEmbedder(config)
    except EmbeddingUnavailable as exc:
        if warn:
            print(embedding_unavailable_message(config.embedding_model, str(exc)), file=sys.stderr)
        return None


def embedding_unavailable_message(model: str, reason: str) -> str:
    short_reason = reason.splitlines()[0][:300] if reason else "unknown reason"
    return (
        f"Warning: the embedding model {model!r} could not be loaded ({short_reason}).\n"
        "Continuing with lexical (BM25) retrieval only. To get semantic search, either:\n"
        "  - connect to the internet once so the model is downloaded and cached, or\n"
        "  - set RAG_INDEX__EMBEDDING_MODEL to a local sentence-transformers folder, or\n"
        "  - set RAG_INDEX__EMBEDDING_MODEL='' to choose lexical-only retrieval and silence this warning."
    )
