"""The two contracts of an index store: what `rag` reads (`IndexReader`) and what `build_index` writes
through (`IndexWriter`, which hands back the previous index as a `PreviousIndex`).

Implementations: the folder store (`index.store.IndexStore` reads, `index.writer.FolderIndexWriter`
writes: FAISS + BM25 + JSON) and the PostgreSQL store. Test fakes implement `IndexReader` too.

These Protocols are kept SMALL and STABLE on purpose: several stores and fakes implement them. Add a
member only when a caller cannot do without it, and change every implementation in the same commit.
Everything a store decides once is fixed when it is opened and read from here, never decided again by a
caller: the retrieval `mode`, each document's language, the corpus's `main_language`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from index.embedding import Embedder
    from index.lexical import BM25Index
    from index.manifest import Manifest
    from index.records import Chunk, Document
    from index.tokens import QueryEncoding, TokenMatches, TokenTable
    from index.windows import WindowSpan, WindowTable

Ranking = list[tuple[int, float]]
"""(chunk row, score), best first. A row is an index into `IndexReader.chunks`."""


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What the UI lists about an indexed document (the text itself: `IndexReader.document_text`)."""

    doc_id: str
    source: str
    title: str
    language: str
    content_hash: str
    chunk_count: int
    characters: int


class IndexReader(Protocol):
    """An opened, read-only index: everything `rag` reads from a store, and nothing more."""

    @property
    def mode(self) -> str:
        """ "hybrid" (dense vectors searchable: vectors stored AND the model loaded) or "lexical".
        Decided once when the store is opened; callers never second-guess it."""
        ...

    @property
    def main_language(self) -> str:
        """The most frequent document language (by chunks); "fr" for an empty index."""
        ...

    @property
    def embedder(self) -> Embedder | None:
        """The model the chunks were embedded with, loaded; None in lexical mode."""
        ...

    @property
    def chunks(self) -> Sequence[Chunk]:
        """All chunks; row i is the i of every `Ranking`."""
        ...

    def chunk(self, chunk_id: str) -> Chunk:
        """The chunk with this id (KeyError naming the id when there is none)."""
        ...

    def document_text(self, doc_id: str) -> str:
        """The full text of a document: chunk and passage offsets index into it."""
        ...

    def document_language(self, doc_id: str) -> str:
        """The language detected once at indexing time (`index.language.document_language`)."""
        ...

    def corpus_languages(self) -> set[str]:
        """The languages of the indexed documents."""
        ...

    def documents(self) -> list[DocumentInfo]:
        """One entry per indexed document, in index order."""
        ...

    def document_count(self) -> int:
        """How many documents have chunks, without reading the chunks (what a status line shows on every
        page load)."""
        ...

    def term_document_frequencies(self) -> Mapping[str, int]:
        """Analysed term -> number of chunks holding it (the lexical index's statistics)."""
        ...

    def search_dense(self, query: str, k: int) -> Ranking:
        """Top-k rows by cosine with the embedded query; [] in lexical mode."""
        ...

    def search_lexical(
        self, query: str, k: int, language: str | None = None, *, fix_unknown: bool = True
    ) -> Ranking:
        """Top-k rows by BM25, the query analysed in `language` (and the main language); rows sharing no
        term with the query are left out. `fix_unknown`: unknown terms also search their likely known
        variant (off for a query in another language than the documents)."""
        ...


@runtime_checkable
class PreviousIndex(Protocol):
    """The index a build updates. An incremental run reads only its `manifest` (per-file entries) and
    sends an update (`Generation.kept`); the rest is read only to write a complete generation that reuses
    what it can (the analyzer, instruction detector or mode changed, or windows are missing)."""

    @property
    def manifest(self) -> Manifest: ...

    @property
    def chunks(self) -> Sequence[Chunk]: ...

    def chunk_index(self, chunk_id: str) -> int:
        """The row of a chunk."""
        ...

    def document(self, doc_id: str) -> Document: ...

    def row_term_counts(self) -> list[dict[str, int]]:
        """Per row, the analysed term counts the lexical index was built from."""
        ...

    def stored_vectors(self) -> np.ndarray | None:
        """All chunk vectors, row order (float32, n x dim); None when the index holds none."""
        ...


@runtime_checkable
class WindowReader(Protocol):
    """Optional: a store that keeps the sentence windows of its documents (`index.windows`) and their
    vectors. `rag` uses them when the store has them (the evidence step reads cosines instead of calling a
    model; retrieval adds a sentence max-sim ranking), and falls back to splitting passages on the fly
    without cosines when it does not. The folder store implements it; a database store keeps one row per
    window (document, start, sentence start, end, vector) and its build reuses the rows of kept documents.
    A writer that stores windows says so with `keeps_windows = True` (then `build_index` finds and embeds
    them and passes them in `Generation.windows`, and its previous index implements `WindowHistory`).
    """

    def query_vector(self, query: str) -> np.ndarray | None:
        """The query's unit vector (the one `search_dense` uses, memoised so that the evidence step of the
        same answer calls no model again); None in lexical mode."""
        ...

    def windows(self, doc_id: str) -> tuple[list[WindowSpan], np.ndarray | None] | None:
        """The document's sentence windows (`index.windows`: start, own sentence start, end, in text
        order) and their unit vectors (one row per window, embedded with the passage prompt at index
        time; None in lexical mode); None when the store keeps no windows. A database store keeps one row
        per window: document, the three offsets, the vector."""
        ...


@runtime_checkable
class CoverageReader(Protocol):
    """Optional: a store that can say which of the query's terms some rows hold. Hybrid retrieval adds this
    share to its fused score (`rag.retrieval`); a store without it is fused without it."""

    def term_coverage(
        self, query: str, rows: Sequence[int], language: str | None = None, *, fix_unknown: bool = True
    ) -> dict[int, float]:
        """Per row of `rows`, the share of the query's distinct terms (analysed as `search_lexical` does,
        each weighed by its BM25 IDF) that the row holds, 0..1."""
        ...


@runtime_checkable
class WindowHistory(Protocol):
    """Optional, with `WindowReader`: what an incremental build reuses of the previous index's windows."""

    def stored_windows(self) -> WindowTable | None:
        """The sentence windows of every document (with vectors in hybrid mode), rows grouped by
        `document_row`; None for an index written before windows were stored (the build then adds them)."""
        ...

    def has_windows(self) -> bool:
        """Whether `stored_windows` would return a table, without reading it (a run that changes nothing
        reads no window)."""
        ...

    def document_row(self, doc_id: str) -> int:
        """Position of a document in the index's document order (its rows of `stored_windows`)."""
        ...


@runtime_checkable
class TokenReader(Protocol):
    """Optional: a store that keeps every chunk's token vectors (`index.tokens`), for late interaction. Hybrid
    retrieval rescores its best candidates by MaxSim with the question's own token vectors (from the pass
    that gives the query vector) when the store has them, and ranks without it when it does not. The folder
    store implements it; the PostgreSQL store does not keep token vectors."""

    def query_encoding(self, query: str) -> QueryEncoding | None:
        """The query's vector and token vectors (memoised with `query_vector`: one model call per question);
        None in lexical mode."""
        ...

    def token_maxsim(self, query: str, rows: Sequence[int]) -> np.ndarray | None:
        """MaxSim of the query's tokens against each chunk row's (IDF-weighted mean over the question's
        word tokens of their best cosine); None when the index keeps no token vectors."""
        ...

    def window_token_matches(
        self, query: str, doc_id: str, spans: Sequence[tuple[int, int]]
    ) -> TokenMatches | None:
        """Each of the query's word tokens against the tokens lying inside each span (document offsets) of a
        document: its best cosine there, with its place in the query and its IDF (what the evidence step's
        window MaxSim reads); None when the index keeps no token vectors."""
        ...


@runtime_checkable
class TokenHistory(Protocol):
    """Optional: what an incremental build reuses of the previous index's token vectors."""

    def stored_tokens(self) -> TokenTable | None:
        """Every chunk's token vectors, rows grouped by chunk row; None for an index written without them."""
        ...

    def has_tokens(self) -> bool:
        """Whether `stored_tokens` would return a table."""
        ...


@dataclass(slots=True)
class Generation:
    """A new index as `build_index` hands it to `IndexWriter.write`: complete, or an update of the
    previous index (`kept`).

    An update lists the documents of the previous index that stay as they are (`kept`); `documents`,
    `chunks`, `bm25`, `vectors` and `windows` then hold only the new and changed documents (BM25 rows and
    vector rows numbered from 0 over `chunks`), and every previous document not kept is gone. The manifest is
    always complete (every file, kept ones included). What an update needs of the previous index is the
    writer's business: the PostgreSQL store keeps the kept rows where they are, the folder store copies
    them into its new generation with numpy. `build_index` sends an update whenever the previous index's
    chunks, term counts, vectors and windows are all reusable as stored (same chunking, analyzer, model,
    instruction detector and mode, windows present); else a complete generation.
    """

    manifest: Manifest
    documents: list[tuple[Document, str]]  # (document, its language)
    chunks: list[Chunk]
    bm25: BM25Index
    vectors: np.ndarray | None  # row i embeds chunks[i]; None in lexical mode
    #: Sentence windows of `documents` (same order; `index.windows`), with vectors in hybrid mode. A writer
    #: that keeps no windows ignores them (see `WindowReader`).
    windows: WindowTable | None = None
    #: Token vectors of `chunks` (same rows; `index.tokens`), hybrid mode, for a writer that keeps them.
    tokens: TokenTable | None = None
    #: None: a complete index. Else an update: the doc ids of the previous index's documents kept as stored.
    kept: list[str] | None = None


class IndexWriter(Protocol):
    """Where `build_index` writes. One writer at a time (`lock`); `write` is all-or-nothing: a crash or
    Ctrl-C at any point leaves the previous index readable."""

    #: True when the store keeps sentence windows (`WindowReader`): `build_index` then finds and embeds them.
    keeps_windows: bool
    #: True when the store keeps token vectors (`TokenReader`): `build_index` then passes them in
    #: `Generation.tokens` (hybrid mode, an embedder that gives them), and its previous index implements
    #: `TokenHistory`.
    keeps_tokens: bool

    @property
    def location(self) -> str:
        """Where the index lives, for messages (a folder, a database URL without its password)."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Hold the single-writer lock for the block; IndexLockedError at once if another writer has it."""
        ...

    def read_previous(self) -> PreviousIndex | None:
        """The current index (no model loaded), None when there is none yet; IndexFormatError if damaged."""
        ...

    def write(self, generation: Generation) -> None:
        """Replace the current index by `generation`, atomically. Called under `lock`."""
        ...
