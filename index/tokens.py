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
document's text, and its token id (for the IDF weights, counted over the chunks). Only word pieces are kept
(a letter or digit: what a question's tokens are matched with), no punctuation, prompt or special token.
From `PROJECT_FROM_TOKENS` tokens on, the folder store keeps the table projected on the `BASIS_DIMENSION`
principal directions of its own tokens (`TokenTable.compacted`, the basis stored beside the codes; the
question's tokens are projected the same way): 208 bytes per token instead of 400, PIAF dev figures within
one standard error (`eval.benchmarks.token_storage`). Hybrid mode only; an incremental build copies the rows
of unchanged chunks and computes only the new ones' (they come out of the pass that embeds those chunks
anyway, and are projected on the table's basis). A table written before (int8 of the model's dimensions,
punctuation included) is read as it is, and projected at the next write of its index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKENS_FILE = "tokens.npz"
# The folder store keeps a large table projected on the principal directions of its own tokens
# (`TokenTable.compacted`): `BASIS_DIMENSION` of them, fitted on at most `FIT_SAMPLE` tokens, once the table
# holds `PROJECT_FROM_TOKENS` (below that it stays exact: 8 MB at most). Chosen on PIAF dev
# (`python -m eval.benchmarks.token_storage --model DIR`: 1,200 French dev questions and the 300 translated;
# recall@5 / hit@1 fr, en, de, late interaction 3 x 20 as shipped). Today's int8 of all 384 dimensions,
# punctuation included: 0.941 / 0.823, 0.943 / 0.783, 0.903 / 0.727, 400 bytes per token, PIAF 115.6 MB.
# Word pieces only: 0.940 / 0.823, same en and de, 101.3 MB. Word pieces on 192 principal directions (this
# code, `compacted`): 0.938 / 0.823, 0.940 / 0.787, 0.910 / 0.717, 208 bytes per token, 53.0 MB. The other
# projected forms below were measured with the projections made unit again (`projected` says why that was
# left): 192 directions 0.938 / 0.825, 0.940 / 0.777, 0.910 / 0.723 (fitted on another sample: 0.938 / 0.824,
# 0.943 / 0.777, 0.907 / 0.737; on the first 20,000 tokens only, as when an index grows from a small one:
# 0.935 / 0.827, 0.937 / 0.777, 0.910 / 0.733): every
# figure within one standard error (fr 0.007 / 0.011, en and de 0.013-0.017 / 0.024-0.026). Smaller, and
# not kept: 160 directions 44.8 MB (0.938 / 0.827, 0.943 / 0.777, 0.917 / 0.717, one fit only: not checked
# for how the fit moves it, as 128 was), 128 36.7 MB (en 0.933-0.937 / 0.763-0.773, de hit@1
# 0.710-0.717: most of late interaction's en/de gain gone; fitted on the first 20,000 tokens de recall@5
# 0.890), 96 and 64 lower still; a fixed random projection to 128 (fr 0.929 / 0.812: recall@5 below no late
# interaction's); 4-bit codes of the 384 dimensions (52.7 MB: 0.941 / 0.820, 0.937 / 0.783,
# 0.900 / 0.743, as good, no smaller than 192 directions in int8); 1-bit sign codes after a random rotation,
# scored asymmetrically (15.2 MB: 0.932 / 0.812, 0.917 / 0.757, 0.887 / 0.717: the gain gone).
BASIS_DIMENSION = 192
PROJECT_FROM_TOKENS = 20_000
# Up to this many tokens (about 40 chunks: about as many as retrieval's MaxSim scores per question anyway), a
# question is matched with the whole table once (`TokenTable.similarities`: 32 KB per question token, and a
# float32 copy of the codes, 12.6 MB at most) and each MaxSim takes its columns.
WHOLE_TABLE_TOKENS = 8_192
FIT_SAMPLE = 65_536
_BLOCK = 65_536  # tokens decoded at a time when projecting (memory stays bounded on any corpus)


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

    def only(self, keep: np.ndarray) -> TextTokens:
        """These tokens where `keep` is True."""
        scales = None if self.scales is None else self.scales[keep]
        return TextTokens(self.vectors[keep], self.offsets[keep], self.ids[keep], self.words[keep], scales)

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
    vectors = _unit(np.asarray(hidden[keep], dtype=np.float32))
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
        basis: np.ndarray | None = None,
    ) -> None:
        self.bounds = np.asarray(bounds, dtype=np.int64)
        self.codes = np.asarray(codes, dtype=np.int8)
        self.scales = np.asarray(scales, dtype=np.float32)
        self.starts = np.asarray(starts, dtype=np.int32)
        self.ends = np.asarray(ends, dtype=np.int32)
        self.ids = np.asarray(ids, dtype=np.int32)
        # (model dimension, kept dimensions): the codes are the tokens' projections on these directions (the
        # question's are projected the same way); None: the model's own dimensions.
        self.basis = None if basis is None else np.asarray(basis, dtype=np.float32)
        self._idf: np.ndarray | None = None  # document frequency of each token id, counted on first use
        self._float_codes: np.ndarray | None = None  # codes as float32, transposed (`similarities`)

    @property
    def chunk_count(self) -> int:
        return len(self.bounds) - 1

    @property
    def dimension(self) -> int:
        """The model's dimension (the question's token vectors')."""
        if self.basis is not None:
            return int(self.basis.shape[0])
        return int(self.codes.shape[1]) if self.codes.ndim == 2 else 0

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def from_texts(
        cls, tokens: Sequence[TextTokens], chunk_starts: Sequence[int], dimension: int
    ) -> TokenTable:
        """The table of chunks whose texts' tokens are `tokens` (offsets in the chunk text), the chunks
        starting at `chunk_starts` in their documents: their word pieces (`TextTokens.words`: what a
        question's tokens are matched with), quantised to int8 with one scale per token."""
        tokens = [t.quantised().only(t.words) for t in tokens]
        counts = np.array([len(t.ids) for t in tokens], dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if len(tokens) and counts.sum():
            codes = np.concatenate([t.vectors for t in tokens])
            scales = np.concatenate([t.scales for t in tokens])  # type: ignore[misc]
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
            self.basis,
        )

    def extended(self, other: TokenTable) -> TokenTable:
        """This table's chunks followed by `other`'s (projected on this table's basis when it has one)."""
        if self.basis is not None and other.basis is None:
            other = other.projected(self.basis)
        if (self.basis is None) != (other.basis is None) or (
            self.basis is not None and not np.array_equal(self.basis, other.basis)
        ):
            raise ValueError("token tables of different bases cannot be joined")
        return TokenTable(
            np.concatenate([self.bounds, other.bounds[1:] + self.bounds[-1]]),
            np.concatenate([self.codes, other.codes]),
            np.concatenate([self.scales, other.scales]),
            np.concatenate([self.starts, other.starts]),
            np.concatenate([self.ends, other.ends]),
            np.concatenate([self.ids, other.ids]),
            self.basis,
        )

    def compacted(self) -> TokenTable:
        """This table as the folder store keeps it: from `PROJECT_FROM_TOKENS` tokens on, projected on the
        `BASIS_DIMENSION` principal directions of its own tokens (uncentred: the directions that keep most
        of their dot products), fitted once on an evenly spaced sample and kept in the table, so that later
        updates project their new tokens the same way; smaller tables, and tables already projected, as
        they are."""
        if self.basis is not None or len(self) < PROJECT_FROM_TOKENS or self.dimension <= BASIS_DIMENSION:
            return self
        sample = self.decoded(np.linspace(0, len(self) - 1, min(FIT_SAMPLE, len(self))).astype(np.int64))
        directions = np.linalg.eigh((sample.T @ sample).astype(np.float64))[1]
        return self.projected(directions[:, ::-1][:, :BASIS_DIMENSION].astype(np.float32))

    def projected(self, basis: np.ndarray) -> TokenTable:
        """This table (model dimensions) projected on `basis`, int8 with a scale per token. The projections
        keep their lengths: a dot product of two projections is the model-space cosine less the part outside
        the basis (window MaxSim correlation 0.9995 with the model-space one on PIAF, slope 1.00; made unit
        again they correlate 0.93, slope 0.93, and the extractive answer's MaxSim gap moved: PIAF dev gold
        span de 0.640 -> 0.600)."""
        assert self.basis is None
        codes = np.zeros((len(self), basis.shape[1]), dtype=np.int8)
        scales = np.zeros(len(self), dtype=np.float32)
        for start in range(0, len(self), _BLOCK):
            block = slice(start, start + _BLOCK)
            codes[block], scales[block] = quantise(self.decoded(block) @ basis)
        return TokenTable(self.bounds, codes, scales, self.starts, self.ends, self.ids, basis)

    def decoded(self, rows: np.ndarray | slice) -> np.ndarray:
        """Float32 vectors of token rows `rows` as stored (in the basis's space when there is one)."""
        return self.codes[rows].astype(np.float32) * self.scales[rows, None]

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """The question's token vectors (unit) into the stored codes' space (not made unit again)."""
        return vectors if self.basis is None else np.asarray(vectors, dtype=np.float32) @ self.basis

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

    def similarities(self, question: np.ndarray) -> np.ndarray:
        """(question tokens, table tokens): each question token's cosine with every stored token, for a table
        of at most `WHOLE_TABLE_TOKENS` (an index of a few documents, e.g. seeds/: 1,997 tokens, all of which
        retrieval's MaxSim scores anyway). One product per question, of which `best_per_token` then only
        takes columns: the answer's window matches took it again over the same tokens, three more times."""
        if self._float_codes is None:  # (threads may make it twice: same array)
            self._float_codes = np.ascontiguousarray(self.codes.astype(np.float32).T)
        with one_blas_thread():
            return (self.project(question) @ self._float_codes) * self.scales

    def best_per_token(
        self, question: np.ndarray, spans: Sequence[np.ndarray], similarities: np.ndarray | None = None
    ) -> np.ndarray:
        """(question tokens, spans): each question token's best cosine with each span's tokens (token
        indices of this table; 0 for an empty span), in one matrix product over all the spans' tokens, or
        taken from the question's `similarities` with the whole table when given."""
        lengths = np.array([len(s) for s in spans], dtype=np.int64)
        index = np.concatenate(list(spans)) if len(spans) else np.zeros(0, np.int64)
        return self.best_in_groups(question, index, lengths, similarities)

    def best_in_groups(
        self,
        question: np.ndarray,
        index: np.ndarray,
        lengths: np.ndarray,
        similarities: np.ndarray | None = None,
    ) -> np.ndarray:
        """`best_per_token` of spans given as their token indices one after the other (`index`) and the
        count of each (`lengths`)."""
        out = np.zeros((len(question), len(lengths)), dtype=np.float32)
        filled = np.flatnonzero(lengths)
        if not len(filled) or not len(question):
            return out
        if similarities is not None:
            sims = similarities[:, index]
        else:
            # The projection on the basis too: small products, which OpenBLAS shares between its threads
            # (on a busy machine, 12 ms instead of 0.05 ms: the threads wait for each other).
            with one_blas_thread():
                sims = (self.project(question) @ self.codes[index].astype(np.float32).T) * self.scales[index]
        starts = np.concatenate([[0], np.cumsum(lengths[filled])[:-1]])
        out[:, filled] = np.maximum.reduceat(sims, starts, axis=1)
        return out

    def row_tokens(self, row: int) -> np.ndarray:
        return np.arange(self.bounds[row], self.bounds[row + 1], dtype=np.int64)

    def maxsim(
        self,
        question: np.ndarray,
        weights: np.ndarray,
        rows: Sequence[int],
        similarities: np.ndarray | None = None,
    ) -> np.ndarray:
        """MaxSim of the question's tokens (unit vectors, with their weights) against each chunk row."""
        best = self.best_per_token(question, [self.row_tokens(int(r)) for r in rows], similarities)
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
                **({} if self.basis is None else {"basis": self.basis}),
            )
        return path

    @classmethod
    def load(cls, folder: Path) -> TokenTable | None:
        """The table of a generation; None for an index written without token vectors."""
        path = folder / TOKENS_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[name] for name in ("bounds", "codes", "scales", "starts", "ends", "ids")]
            # An index of before the projection (`compacted`) has no basis: the model's own dimensions.
            return cls(*arrays, basis=data["basis"] if "basis" in data.files else None)

    def fault(self, chunk_spans: np.ndarray, dimension: int) -> str | None:
        """What is wrong with this table for chunks at `chunk_spans` ((chunks, 2) document offsets) and
        vectors of `dimension`, or None (read by `index.integrity.check_tokens`)."""
        bounds, count = self.bounds, len(self.ids)
        width = dimension
        if self.basis is not None:
            width = self.basis.shape[1] if self.basis.ndim == 2 else -1
            if (
                self.basis.ndim != 2
                or self.basis.shape[0] != dimension
                or not np.all(np.isfinite(self.basis))
            ):
                return f"{TOKENS_FILE} holds a projection of shape {self.basis.shape}, not ({dimension}, k)"
        if self.codes.ndim != 2 or self.codes.shape[1] != width:
            return f"{TOKENS_FILE} holds vectors of shape {self.codes.shape}, not (tokens, {width})"
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


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated arange(start, start + count) for each pair, without a Python loop."""
    total = int(counts.sum())
    if not total:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    return np.repeat(starts, counts) + np.arange(total, dtype=np.int64) - offsets
