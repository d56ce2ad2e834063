"""Embeddings of an interrupted build, kept so that the next run does not compute them again.

`build_index` embeds the new chunks and sentence windows through an `EmbeddingCheckpoint`, in slices of
`SLICE` texts; each slice's vectors (and token vectors) are written to `<index>/embedding-checkpoint/` as one
file (under a temporary name, then renamed: a file there is whole) before the next slice starts. A run
stopped by Ctrl-C, a crash or a cancel leaves the finished slices there; the next run takes every text it
finds there instead of embedding it again, and deletes the folder once its generation is written.

It is only a cache, read by nothing but the embedding stage: a text is found by a hash of the embedder's
settings (model, dimension, prompts) and the text itself, so another model or a changed text misses; a file
that cannot be read is ignored (and removed); the index itself is written as before, so nothing indexed
earlier depends on it. Folder stores only (a PostgreSQL build starts again from nothing after Ctrl-C).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.embedding import Embedder, ProgressCallback
from index.tokens import TextTokens

CHECKPOINT_DIR = "embedding-checkpoint"
SLICE = 256  # texts per saved slice: at most this many are embedded again after an interruption
_SUFFIX = ".npz"


class EmbeddingCheckpoint:
    """`embed_passages` / `embed_passages_with_tokens` of `embedder`, slice by slice, saved as they finish."""

    def __init__(self, folder: Path, embedder: Embedder) -> None:
        self.folder = folder
        self.embedder = embedder
        self.gives_token_vectors = embedder.gives_token_vectors
        self._salt = json.dumps(embedder.settings(), sort_keys=True, default=str).encode("utf-8")
        self._known: dict[str, tuple[np.ndarray, TextTokens | None]] | None = None
        self.reused = 0  # texts taken from the checkpoint instead of the model, this run

    def _key(self, text: str) -> str:
        digest = hashlib.sha256(self._salt)
        digest.update(b"\0")
        digest.update(text.encode("utf-8", "surrogatepass"))
        return digest.hexdigest()

    # --- the Embedder calls build_index makes ------------------------------------------------------------
    def embed_passages(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        return self._embed(list(texts), False, show_progress, on_progress)[0]

    def embed_passages_with_tokens(
        self,
        texts: Sequence[str],
        *,
        show_progress: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> tuple[np.ndarray, list[TextTokens] | None]:
        return self._embed(list(texts), True, show_progress, on_progress)

    def clear(self) -> None:
        """The generation is written: what was kept for it is not needed any more."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self._known = None

    # --- inside ------------------------------------------------------------------------------------------
    def _embed(
        self,
        texts: list[str],
        with_tokens: bool,
        show_progress: bool,
        on_progress: ProgressCallback | None,
    ) -> tuple[np.ndarray, list[TextTokens] | None]:
        # Only what an earlier run saved is reused: texts met twice in this run (a window that is also a
        # chunk) are embedded twice, as without a checkpoint, so an uninterrupted build embeds the same texts.
        known = dict(self._load())
        keys = [self._key(text) for text in texts]
        missing = [
            i for i, key in enumerate(keys) if key not in known or (with_tokens and known[key][1] is None)
        ]
        # Slices of texts of like length (the embedder sorts each call's texts by length to pad little: slices
        # taken in the given order would each span every length). A text's vectors do not depend on its slice.
        missing.sort(key=lambda i: len(texts[i]))
        done = len(texts) - len(missing)
        self.reused += done
        report, close = _progress(len(texts), show_progress and bool(missing), on_progress)
        try:
            if done and missing:
                report(done, "embedding")
            for lo in range(0, len(missing), SLICE):
                part = missing[lo : lo + SLICE]
                base = done

                def step(count: int, _total: int, message: str, base: int = base) -> None:
                    report(base + count, message)

                part_texts = [texts[i] for i in part]
                if with_tokens:
                    vectors, tokens = self.embedder.embed_passages_with_tokens(part_texts, on_progress=step)
                    if tokens is None:  # this embedder gives none: nothing of it to keep for tokens
                        return self.embedder.embed_passages(texts), None
                    tokens = [item.quantised() for item in tokens]
                else:
                    vectors, tokens = self.embedder.embed_passages(part_texts, on_progress=step), None
                self._save([keys[i] for i in part], vectors, tokens)
                for row, i in enumerate(part):
                    known[keys[i]] = (vectors[row], tokens[row] if tokens is not None else None)
                done += len(part)
        finally:
            close()
        vectors = np.zeros((len(texts), self.embedder.dimension), dtype=np.float32)
        for row, key in enumerate(keys):
            vectors[row] = known[key][0]
        if not with_tokens:
            return vectors, None
        return vectors, [known[key][1] for key in keys]  # type: ignore[misc]

    def _load(self) -> dict[str, tuple[np.ndarray, TextTokens | None]]:
        if self._known is not None:
            return self._known
        known: dict[str, tuple[np.ndarray, TextTokens | None]] = {}
        for path in sorted(self.folder.glob(f"*{_SUFFIX}")) if self.folder.is_dir() else []:
            try:
                known.update(_read_slice(path, self.embedder.dimension))
            except Exception:  # noqa: BLE001 - a cache file that cannot be read is only a miss
                with contextlib.suppress(OSError):
                    path.unlink()
        self._known = known
        return known

    def _save(self, keys: list[str], vectors: np.ndarray, tokens: list[TextTokens] | None) -> None:
        arrays: dict[str, np.ndarray] = {"keys": np.array(keys), "vectors": np.asarray(vectors, np.float32)}
        if tokens is not None:
            counts = np.array([len(item.ids) for item in tokens], dtype=np.int64)
            arrays["bounds"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            dimension = self.embedder.dimension
            arrays["codes"] = _rows([item.vectors for item in tokens], (0, dimension), np.int8)
            arrays["scales"] = _rows([item.scales for item in tokens], (0,), np.float32)  # type: ignore[misc]
            arrays["offsets"] = _rows([item.offsets for item in tokens], (0, 2), np.int32)
            arrays["ids"] = _rows([item.ids for item in tokens], (0,), np.int32)
            arrays["words"] = _rows([item.words for item in tokens], (0,), bool)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            name = uuid.uuid4().hex
            temp = self.folder / f"{name}.tmp"
            with open(temp, "wb") as handle:
                np.savez(handle, **arrays)
            os.replace(temp, self.folder / f"{name}{_SUFFIX}")
        except OSError:  # a full disk: the build goes on, only the resuming is lost
            with contextlib.suppress(OSError, UnboundLocalError):
                temp.unlink()


def _rows(parts: list[np.ndarray], empty: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(empty, dtype=dtype)


def _read_slice(path: Path, dimension: int) -> dict[str, tuple[np.ndarray, TextTokens | None]]:
    with np.load(path, allow_pickle=False) as data:
        keys = [str(key) for key in data["keys"]]
        vectors = np.asarray(data["vectors"], dtype=np.float32)
        if vectors.shape != (len(keys), dimension):
            raise ValueError(f"{path}: vectors of another shape")
        if "bounds" not in data:
            return {key: (vectors[row], None) for row, key in enumerate(keys)}
        bounds, codes, scales = data["bounds"], data["codes"], data["scales"]
        offsets, ids, words = data["offsets"], data["ids"], data["words"]
    found = {}
    for row, key in enumerate(keys):
        lo, hi = int(bounds[row]), int(bounds[row + 1])
        found[key] = (
            vectors[row],
            TextTokens(codes[lo:hi], offsets[lo:hi], ids[lo:hi], words[lo:hi], scales[lo:hi]),
        )
    return found


def _progress(total: int, show: bool, on_progress: ProgressCallback | None):  # noqa: ANN202 - (report, close)
    """One progress line for the whole call (not one per slice): the caller's callback, or a bar."""
    bar = None
    if show and on_progress is None:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="Embedding", unit="text")
    shown = 0

    def report(done: int, message: str) -> None:
        nonlocal shown
        if bar is not None:
            bar.update(done - shown)
            shown = done
        if on_progress is not None:
            on_progress(done, total, message)

    def close() -> None:
        if bar is not None:
            bar.close()

    return report, close
