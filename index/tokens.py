"""Token vectors: every chunk's contextual token vectors, kept at index time for late interaction (MaxSim).

The forward pass that gives a chunk its vector computes a vector for each of its tokens (the transformer's
last hidden state, which mean pooling averages). Keeping them costs no second pass, and lets the question's
own token vectors (from its one query forward pass) be matched token by token against a passage: for each
content token of the question, its best cosine with the passage's tokens; the IDF-weighted mean over the
question's tokens is the MaxSim score (ColBERT's late interaction; the model was not trained for it, the
gain was measured on PIAF dev: `eval.benchmarks.fusion_sweep`, `rag.settings.RetrievalSettings`).

`TokenTable` is the on-disk form (`tokens.npz`, plain arrays, loaded with `allow_pickle=False`), one block of
rows per chunk in chunk order (`bounds[c] .. bounds[c + 1]`): each token's unit vector as int8 codes with one
float32 scale per token (a quarter of float32's bytes; cosines move by ~1e-3), its character offsets in its
document's text, and its token id (for the IDF weights, counted over the chunks). Prompt and special tokens
are not kept. Hybrid mode only; an incremental build copies the rows of unchanged chunks and computes only
the new ones' (they come out of the pass that embeds those chunks anyway).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKENS_FILE = "tokens.npz"


@dataclass(frozen=True, slots=True)
class TextTokens:
    """One text's kept tokens from a forward pass: unit vectors, offsets in the text, ids, and whether each
    is a word piece (holds a letter or digit: what a question's MaxSim averages over). A passage's are
    quantised at once (`quantised`: int8 codes and one scale per token), so that indexing a large corpus
    holds no more than the stored table."""

    vectors: np.ndarray  # float32 (tokens, dimension), L2-normalised; int8 codes when `scales` is set
    offsets: np.ndarray  # int32 (tokens, 2): text[start:end]
    ids: np.ndarray  # int32 (tokens,)
    words: np.ndarray  # bool (tokens,)
    scales: np.ndarray | None = None  # float32 (tokens,): vectors ~ codes x scale

    def quantised(self) -> TextTokens:
        if self.scales is not None:
            return self
        codes, scales = quantise(self.vectors)
        return TextTokens(codes, self.offsets, self.ids, self.words, scales)

    @staticmethod
    def empty(dimension: int) -> TextTokens:
        return TextTokens(
            np.zeros((0, dimension), dtype=np.float32),
            np.zeros((0, 2), dtype=np.int32),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=bool),
        )


def quantise(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scale per row) with vectors ~ codes x scale."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(vectors).max(1) / 127.0 if len(vectors) else np.zeros(0, np.float32)
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    return np.round(vectors / scales[:, None]).astype(np.int8), scales


def text_tokens(
    hidden: np.ndarray,
    mask: np.ndarray,
    special: np.ndarray,
    offsets: np.ndarray,
    ids: np.ndarray,
    text: str,
    prompt_chars: int,
) -> TextTokens:
    """The kept tokens of one row of a batch (hidden states (length, dim), masks and offsets of the
    tokenisation of `prompt + text`): not padding, not special, not the prompt, not empty."""
    keep = mask & ~special & (offsets[:, 0] >= prompt_chars) & (offsets[:, 1] > offsets[:, 0])
    vectors = np.asarray(hidden[keep], dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.maximum(norms, 1e-12)
    spans = (offsets[keep] - prompt_chars).astype(np.int32)
    words = np.array([any(ch.isalnum() for ch in text[a:b]) for a, b in spans.tolist()], dtype=bool)
    return TextTokens(vectors, spans, ids[keep].astype(np.int32), words)


@dataclass(frozen=True, slots=True)
class QueryEncoding:
    """A question as its one forward pass gives it: its unit vector, and its tokens when the embedder keeps
    them (`Embedder.gives_token_vectors`; None otherwise)."""

    vector: np.ndarray  # float32 (dimension,)
    tokens: TextTokens | None = None

    def __post_init__(self) -> None:
        # Memoised and handed to every thread that asks the same question: read-only.
        arrays = [self.vector] if self.tokens is None else [self.vector, *self.tokens_arrays()]
        for array in arrays:
            array.flags.writeable = False

    def tokens_arrays(self) -> list[np.ndarray]:
        assert self.tokens is not None
        return [self.tokens.vectors, self.tokens.offsets, self.tokens.ids, self.tokens.words]


@dataclass(frozen=True, slots=True)
class TokenMatches:
    """A question's word tokens against some spans of one document (late interaction): where each token lies
    in the question, its IDF over the chunks, and its best cosine with each span's stored tokens. The reader
    gives every word token; which of them count (the question as asked, its content words) is the evidence
    step's decision (`rag.evidence.question_token_weights`)."""

    offsets: np.ndarray  # int32 (tokens, 2): question[start:end]
    idf: np.ndarray  # float32 (tokens,)
    best: np.ndarray  # float32 (tokens, spans); 0 for a span holding no stored token


class TokenTable:
    """Token vectors of every chunk of an index (rows grouped by chunk, in chunk order)."""

    def __init__(
        self,
        bounds: np.ndarray,
        codes: np.ndarray,
        scales: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        ids: np.ndarray,
    ) -> None:
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.codes = np.asarray(codes, dtype=np.int8)
        self.scales = np.asarray(scales, dtype=np.float32)
        self.starts = np.asarray(starts, dtype=np.int32)
        self.ends = np.asarray(ends, dtype=np.int32)
        self.ids = np.asarray(ids, dtype=np.int32)
        self._idf: np.ndarray | None = None  # document frequency of each token id, counted on first use

    @property
    def chunk_count(self) -> int:
        return len(self.bounds) - 1

    @property
    def dimension(self) -> int:
        return int(self.codes.shape[1]) if self.codes.ndim == 2 else 0

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_texts(
        cls, tokens: Sequence[TextTokens], chunk_starts: Sequence[int], dimension: int
    ) -> TokenTable:
        """The table of chunks whose texts' tokens are `tokens` (offsets in the chunk text), the chunks
        starting at `chunk_starts` in their documents: quantised to int8 with one scale per token."""
        counts = np.array([len(t.ids) for t in tokens], dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if len(tokens) and counts.sum():
            parts = [t.quantised() for t in tokens]
            codes = np.concatenate([t.vectors for t in parts])
            scales = np.concatenate([t.scales for t in parts])  # type: ignore[misc]
            offsets = np.concatenate([t.offsets for t in tokens]).astype(np.int64)
            shift = np.repeat(np.asarray(chunk_starts, dtype=np.int64), counts)
            ids = np.concatenate([t.ids for t in tokens])
        else:
            codes, scales = np.zeros((0, dimension), dtype=np.int8), np.zeros(0, np.float32)
            offsets, shift, ids = np.zeros((0, 2), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
        return cls(bounds, codes, scales, offsets[:, 0] + shift, offsets[:, 1] + shift, ids)

    def take_rows(self, rows: np.ndarray) -> TokenTable:
        """The tokens of chunk rows `rows` (in that order), renumbered 0..len-1."""
        rows = np.asarray(rows, dtype=np.int64)
        counts = self.bounds[rows + 1] - self.bounds[rows]
        index = _ranges(self.bounds[rows], counts)
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return TokenTable(
            bounds,
            self.codes[index],
            self.scales[index],
            self.starts[index],
            self.ends[index],
            self.ids[index],
        )

    def extended(self, other: TokenTable) -> TokenTable:
        """This table's chunks followed by `other`'s."""
        return TokenTable(
            np.concatenate([self.bounds, other.bounds[1:] + self.bounds[-1]]),
            np.concatenate([self.codes, other.codes]),
            np.concatenate([self.scales, other.scales]),
            np.concatenate([self.starts, other.starts]),
            np.concatenate([self.ends, other.ends]),
            np.concatenate([self.ids, other.ids]),
        )

    # -- scoring --------------------------------------------------------------------------------------
    def idf(self, ids: np.ndarray) -> np.ndarray:
        """BM25's IDF of each token id over the chunks, log(1 + (n - df + 0.5) / (df + 0.5)); a token id no
        chunk holds counts as held by one (the highest weight)."""
        if self._idf is None:
            vocabulary = int(self.ids.max(initial=-1)) + 1
            row = np.repeat(np.arange(self.chunk_count, dtype=np.int64), np.diff(self.bounds))
            pairs = np.unique(row * vocabulary + self.ids)  # one (chunk, token id) pair per chunk holding it
            self._idf = np.bincount(
                pairs % max(vocabulary, 1), minlength=vocabulary
            )  # (threads: same result)
        frequency = self._idf
        ids = np.asarray(ids, dtype=np.int64)
        df = np.ones(len(ids), dtype=np.float64)
        known = (ids >= 0) & (ids < len(frequency))
        df[known] = np.maximum(frequency[ids[known]], 1)
        n = self.chunk_count
        return np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)

    def best_per_token(self, question: np.ndarray, spans: Sequence[np.ndarray]) -> np.ndarray:
        """(question tokens, spans): each question token's best cosine with each span's tokens (token
        indices of this table; 0 for an empty span), in one matrix product over all the spans' tokens."""
        lengths = np.array([len(s) for s in spans], dtype=np.int64)
        out = np.zeros((len(question), len(spans)), dtype=np.float32)
        filled = np.flatnonzero(lengths)
        if not len(filled) or not len(question):
            return out
        index = np.concatenate([spans[i] for i in filled])
        with one_blas_thread():
            sims = (question @ self.codes[index].astype(np.float32).T) * self.scales[index]
        starts = np.concatenate([[0], np.cumsum(lengths[filled])[:-1]])
        out[:, filled] = np.maximum.reduceat(sims, starts, axis=1)
        return out

    def row_tokens(self, row: int) -> np.ndarray:
        return np.arange(self.bounds[row], self.bounds[row + 1], dtype=np.int64)

    def maxsim(self, question: np.ndarray, weights: np.ndarray, rows: Sequence[int]) -> np.ndarray:
        """MaxSim of the question's tokens (unit vectors, with their weights) against each chunk row."""
        best = self.best_per_token(question, [self.row_tokens(int(r)) for r in rows])
        total = float(weights.sum())
        if total <= 0:
            return np.zeros(len(rows), dtype=np.float32)
        return (weights @ best) / total

    # -- disk -----------------------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        path = folder / TOKENS_FILE
        with open(path, "wb") as handle:
            np.savez(
                handle,
                bounds=self.bounds,
                codes=self.codes,
                scales=self.scales,
                starts=self.starts,
                ends=self.ends,
                ids=self.ids,
            )
        return path

    @classmethod
    def load(cls, folder: Path) -> TokenTable | None:
        """The table of a generation; None for an index written without token vectors."""
        path = folder / TOKENS_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            return cls(*(data[name] for name in ("bounds", "codes", "scales", "starts", "ends", "ids")))

    def fault(self, chunk_spans: np.ndarray, dimension: int) -> str | None:
        """What is wrong with this table for chunks at `chunk_spans` ((chunks, 2) document offsets) and
        vectors of `dimension`, or None (read by `index.integrity.check_tokens`)."""
        bounds, count = self.bounds, len(self.ids)
        if self.codes.ndim != 2 or self.codes.shape[1] != dimension:
            return f"{TOKENS_FILE} holds vectors of shape {self.codes.shape}, not (tokens, {dimension})"
        if any(len(a) != count for a in (self.codes, self.scales, self.starts, self.ends)):
            return f"{TOKENS_FILE} has arrays of different lengths"
        if len(bounds) != len(chunk_spans) + 1 or bounds[0] != 0 or bounds[-1] != count:
            return f"{TOKENS_FILE} has {len(bounds) - 1} chunk blocks for {len(chunk_spans)} chunks"
        if np.any(np.diff(bounds) < 0):
            return f"{TOKENS_FILE} has chunk blocks out of order"
        chunk = np.repeat(np.arange(len(chunk_spans)), np.diff(bounds))
        if count and (
            np.any(self.starts < chunk_spans[chunk, 0])
            or np.any(self.ends > chunk_spans[chunk, 1])
            or np.any(self.starts > self.ends)
        ):
            return f"{TOKENS_FILE} has a token outside its chunk"
        if count and (self.ids.min() < 0 or not np.all(np.isfinite(self.scales))):
            return f"{TOKENS_FILE} has a negative token id or a scale that is not a number"
        return None


_blas: list = []  # the process's threadpoolctl controller, made on first use (it lists the loaded libraries)


def one_blas_thread():
    """A context in which numpy's BLAS runs on one thread. A MaxSim product is small (a dozen question tokens
    by a few thousand stored ones): on a busy machine OpenBLAS's threads waiting for each other made it take
    25-40 ms instead of 2-3 ms (measured under load 7 on this 2-core machine)."""
    if not _blas:
        from threadpoolctl import ThreadpoolController

        _blas.append(ThreadpoolController())
    return _blas[0].limit(limits=1, user_api="blas")


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, start + count) for each pair, without a Python loop."""
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + np.arange(total, dtype=np.int64) - offsets
