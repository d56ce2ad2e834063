"""Several opened indexes searched as one: a shared corpus plus one person's private uploads.

`CombinedIndex(readers)` is an `index.protocols.IndexReader` over its parts: a part's row `r` is row
`r * len(parts) + part_number` of the whole, so rows need not be positions (the PostgreSQL store numbers
them by its row ids, and fetches chunks on demand: nothing is read in advance). Each search asks every part
and merges the rankings by score. Nothing is copied: the parts stay the loaded generations they are (a new
generation of one part means a new `CombinedIndex`).

What merging by score means: dense scores are cosines of one model (every part must be built with the
same one), so they compare as they are. BM25 scores of different parts use each part's own document
frequencies; a private collection is small next to the shared corpus, so its rare terms weigh a little
more, which favours a person's own documents slightly. The evidence scorer sees the summed frequencies.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from index.embedding import Embedder
from index.errors import look_up, missing
from index.protocols import CoverageReader, DocumentInfo, IndexReader, Ranking, TokenReader, WindowReader
from index.records import Chunk
from index.tokens import QueryEncoding, TokenMatches
from index.windows import WindowSpan


class CombinedIndex:
    """The parts' chunks, documents and rankings as one index (the first part is the main one)."""

    def __init__(self, parts: Sequence[IndexReader]) -> None:
        if not parts:
            raise ValueError("CombinedIndex needs at least one index")
        self.parts = list(parts)
        self._chunks = _CombinedChunks(self.parts)
        self._owner = {doc.doc_id: part for part in self.parts for doc in part.documents()}

    # --- what the store decided once --------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return "hybrid" if all(part.mode == "hybrid" for part in self.parts) else "lexical"

    @property
    def main_language(self) -> str:
        return self.parts[0].main_language

    @property
    def embedder(self) -> Embedder | None:
        return self.parts[0].embedder if self.mode == "hybrid" else None

    @property
    def chunks(self) -> Sequence[Chunk]:
        return self._chunks

    # --- lookups -----------------------------------------------------------------------------------------
    def _part_of(self, doc_id: str) -> IndexReader:
        return look_up(self._owner, doc_id, "document", "these collections")

    def chunk(self, chunk_id: str) -> Chunk:
        for part in self.parts:
            try:
                return part.chunk(chunk_id)
            except KeyError:
                continue
        raise missing("chunk", chunk_id, "these collections")

    def document_text(self, doc_id: str) -> str:
        return self._part_of(doc_id).document_text(doc_id)

    def document_language(self, doc_id: str) -> str:
        return self._part_of(doc_id).document_language(doc_id)

    def corpus_languages(self) -> set[str]:
        return set().union(*(part.corpus_languages() for part in self.parts))

    def documents(self) -> list[DocumentInfo]:
        return [doc for part in self.parts for doc in part.documents()]

    def document_count(self) -> int:
        return sum(part.document_count() for part in self.parts)

    # --- sentence windows (index.protocols.WindowReader, passed on from the parts) --------------------------
    def query_vector(self, query: str) -> np.ndarray | None:
        """The query's vector from the first part that memoises it (every part is built with the same
        model), so that the evidence step reuses the vector dense search computed; None in lexical mode."""
        if self.mode != "hybrid":
            return None
        for part in self.parts:
            if isinstance(part, WindowReader):
                return part.query_vector(query)
        return None

    def windows(self, doc_id: str) -> tuple[list[WindowSpan], np.ndarray | None] | None:
        """The windows of the part that holds the document; None when that part keeps none."""
        part = self._part_of(doc_id)
        return part.windows(doc_id) if isinstance(part, WindowReader) else None

    # --- token vectors (index.protocols.TokenReader, passed on from the parts) ----------------------------
    def query_encoding(self, query: str) -> QueryEncoding | None:
        if self.mode != "hybrid":
            return None
        for part in self.parts:
            if isinstance(part, TokenReader):
                return part.query_encoding(query)
        return None

    def token_maxsim(self, query: str, rows: Sequence[int]) -> np.ndarray | None:
        """Each part's MaxSim of its own rows (its own IDF); None when a part of the rows keeps no token
        vectors (rescoring only some candidates would favour them)."""
        count = len(self.parts)
        out = np.zeros(len(rows), dtype=np.float32)
        inner: dict[int, list[int]] = {}
        for position, row in enumerate(rows):
            inner.setdefault(row % count, []).append(position)
        for number, positions in inner.items():
            part = self.parts[number]
            found = (
                part.token_maxsim(query, [rows[p] // count for p in positions])
                if isinstance(part, TokenReader)
                else None
            )
            if found is None:
                return None
            out[positions] = found
        return out

    def window_token_matches(
        self, query: str, doc_id: str, spans: Sequence[tuple[int, int]]
    ) -> TokenMatches | None:
        part = self._part_of(doc_id)
        return part.window_token_matches(query, doc_id, spans) if isinstance(part, TokenReader) else None

    def term_document_frequencies(self) -> Mapping[str, int]:
        total: Counter[str] = Counter()
        for part in self.parts:
            total.update(part.term_document_frequencies())
        return total

    # --- search --------------------------------------------------------------------------------------------
    def _merged(self, k: int, search: Callable[[IndexReader], Ranking]) -> Ranking:
        count = len(self.parts)
        found = (
            [(row * count + number, score) for row, score in search(part)]
            for number, part in enumerate(self.parts)
        )
        return heapq.nlargest(k, (hit for ranking in found for hit in ranking), key=lambda hit: hit[1])

    def search_dense(self, query: str, k: int) -> Ranking:
        if self.mode != "hybrid":
            return []
        return self._merged(k, lambda part: part.search_dense(query, k))

    def search_lexical(
        self, query: str, k: int, language: str | None = None, *, fix_unknown: bool = True
    ) -> Ranking:
        return self._merged(k, lambda part: part.search_lexical(query, k, language, fix_unknown=fix_unknown))

    def term_coverage(
        self, query: str, rows: Sequence[int], language: str | None = None, *, fix_unknown: bool = True
    ) -> dict[int, float]:
        """Each part's coverage of its own rows (its own IDF, as its lexical scores are its own); a part
        that cannot tell gives none."""
        count = len(self.parts)
        inner: dict[int, list[int]] = {}
        for row in rows:
            inner.setdefault(row % count, []).append(row // count)
        found: dict[int, float] = {}
        for number, part_rows in inner.items():
            part = self.parts[number]
            if isinstance(part, CoverageReader):
                shares = part.term_coverage(query, part_rows, language, fix_unknown=fix_unknown)
                found.update({row * count + number: share for row, share in shares.items()})
        return found


class _CombinedChunks(Sequence[Chunk]):
    """`CombinedIndex.chunks`: row `r * len(parts) + n` is row `r` of part `n` (see the module docstring)."""

    def __init__(self, parts: Sequence[IndexReader]) -> None:
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(part.chunks) for part in self._parts)

    def __getitem__(self, row: int) -> Chunk:  # type: ignore[override]
        inner, number = divmod(int(row), len(self._parts))
        return self._parts[number].chunks[inner]

    def __iter__(self) -> Iterator[Chunk]:
        for part in self._parts:
            yield from part.chunks
