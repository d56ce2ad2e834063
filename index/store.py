"""The folder store's reader: one index generation, opened read-only for search (`IndexStore`).

`IndexStore` implements `index.protocols.IndexReader` (what rag reads) and `PreviousIndex` (what an
incremental build reuses). It reads files; which model it searches with is decided by
`index.model_check.embedder_for_index`, and the retrieval mode is fixed once, here, when it is opened.
Writing: `index.writer`. Folder layout: `index.generations`.
"""

from __future__ import annotations

import json
import threading
import zipfile
from collections import Counter, OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.config import IndexConfig
from index.embedding import Embedder
from index.errors import IndexFormatError, IndexNotFoundError, look_up
from index.generations import (
    CHUNKS_FILE,
    DOCUMENTS_FILE,
    VECTORS_FILE,
    check_index_dir,
    current_generation,
)
from index.integrity import (
    check_chunk_row,
    check_documents,
    check_manifest,
    check_tokens,
    damaged,
    read_vectors,
    refuse_symlinks,
)
from index.language import DOCUMENT_LANGUAGE_DEFAULT
from index.lexical import Analyzer, BM25Index, analyze_query
from index.manifest import Manifest
from index.model_check import check_dimension, embedder_for_index
from index.protocols import DocumentInfo
from index.records import Chunk, Document, Section
from index.tokens import WHOLE_TABLE_TOKENS, QueryEncoding, TokenMatches, TokenTable
from index.windows import WindowSpan, WindowTable

if TYPE_CHECKING:
    import faiss

__all__ = ["DocumentInfo", "IndexStore"]

QUERY_MEMO_SIZE = 256  # recent query vectors kept (a chat re-asks; the eval retrieves then answers)
# A question's similarities with a small token table, kept while it is answered (answers run a few at a time).
SIMILARITIES_MEMO_SIZE = 16
WINDOW_MEMO_DOCS = 128  # documents whose window spans are kept built (an answer's passages share a few)


# -- reading ------------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class IndexStore:
    """A loaded, read-only index generation. Row i of `chunks` == FAISS id i == BM25 row i."""

    def __init__(
        self,
        index_dir: Path,
        generation: Path,
        manifest: Manifest,
        documents: list[Document],
        languages: dict[str, str],
        chunks: list[Chunk],
        bm25: BM25Index,
        vector_index: faiss.Index | None,
        embedder: Embedder | None,
    ) -> None:
        self.index_dir = index_dir
        self.generation = generation
        self.manifest = manifest
        self._documents = {doc.doc_id: doc for doc in documents}
        self._languages = languages
        self.chunks = chunks
        self.bm25 = bm25
        self.vector_index = vector_index
        self.embedder = embedder if vector_index is not None else None
        # The retrieval mode, decided here once: dense search needs both the vectors and a loaded model.
        self.mode = "hybrid" if self.embedder is not None else "lexical"
        self._rows = {chunk.chunk_id: row for row, chunk in enumerate(chunks)}
        self._doc_rows = {doc.doc_id: row for row, doc in enumerate(documents)}
        # Sentence windows (index.windows), read by the answering side; None for an index built before them.
        self.window_table: WindowTable | None = None
        # Every chunk's token vectors (index.tokens), hybrid mode; None for an index written without them.
        self.token_table: TokenTable | None = None
        self._tokens_memo: dict[str, np.ndarray] = {}  # a document's token indices (`_document_tokens`)
        self._chunk_rows_of: dict[str, list[int]] | None = None
        self._query_vectors: OrderedDict[str, QueryEncoding] = OrderedDict()
        self._similarities: OrderedDict[str, np.ndarray] = OrderedDict()  # `_question_similarities`
        self._query_terms: OrderedDict[tuple[str, str | None, bool], list[str]] = OrderedDict()
        self._query_lock = threading.Lock()
        # A document's windows as objects, built once per generation and shared read-only: every answer
        # asked for them once per passage, and building them all again each time was 5 % of what the chat
        # server's interpreter lock ran under 50 sessions (py-spy --gil, `eval.benchmarks.concurrency`).
        self._spans_memo: dict[int, tuple[list[WindowSpan], int, int]] = {}
        counts = Counter(languages[chunk.doc_id] for chunk in chunks)
        self.main_language = counts.most_common(1)[0][0] if counts else DOCUMENT_LANGUAGE_DEFAULT
        self._corpus_languages = set(counts)
        self._analyzer = Analyzer()

    # -- opening --------------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        index_dir: str | Path,
        *,
        config: IndexConfig | None = None,
        embedder: Embedder | None = None,
        load_model: bool = True,
    ) -> IndexStore:
        """Open the current generation of `index_dir`.

        The embedder: the one given; else, for a hybrid index and `load_model`, the configured model (or the
        manifest's when `config` is None) is loaded; if it cannot be, the store works in lexical mode.
        Raises IndexNotFoundError, IndexFormatError, IndexMismatchError (configured model != building model).
        """
        index_dir = Path(index_dir).expanduser().resolve()
        check_index_dir(index_dir)
        for attempt in range(3):
            generation = current_generation(index_dir)
            if generation is None:
                raise IndexNotFoundError(
                    f"There is no index in {index_dir}. Build one first: rag index <folder> "
                    "(or point index.index_dir / RAG_INDEX__INDEX_DIR at an existing index)."
                )
            try:
                return cls._open_generation(index_dir, generation, config, embedder, load_model)
            except FileNotFoundError as exc:
                # A writer may have switched CURRENT and removed this generation while we read it.
                if attempt == 2 or current_generation(index_dir) == generation:
                    raise IndexFormatError(
                        f"The index in {index_dir} is incomplete ({exc}). Rebuild it: rag index --rebuild <folders>."
                    ) from exc
        raise AssertionError("unreachable")

    @classmethod
    def _open_generation(
        cls,
        index_dir: Path,
        generation: Path,
        config: IndexConfig | None,
        embedder: Embedder | None,
        load_model: bool,
    ) -> IndexStore:
        manifest = Manifest.read(generation)
        refuse_symlinks(index_dir, generation)
        try:
            documents: list[Document] = []
            languages: dict[str, str] = {}
            for row in _read_jsonl(generation / DOCUMENTS_FILE):
                languages[row["doc_id"]] = row.pop("language")
                row["sections"] = [Section(s, e, tuple(h), p) for s, e, h, p in row["sections"]]
                documents.append(Document(**row))
            check_documents(index_dir, documents)
            by_id = {doc.doc_id: doc for doc in documents}
            chunks = []
            for row in _read_jsonl(generation / CHUNKS_FILE):
                doc = by_id[row["doc_id"]]
                check_chunk_row(index_dir, row, doc)
                chunks.append(
                    Chunk(
                        chunk_id=row["chunk_id"],
                        doc_id=doc.doc_id,
                        source=doc.source,
                        title=doc.title,
                        text=doc.text[row["start"] : row["end"]],
                        start=row["start"],
                        end=row["end"],
                        ordinal=row["ordinal"],
                        heading_path=tuple(row["heading_path"]),
                        page=row["page"],
                        instruction_like=bool(row.get("instruction_like", False)),
                    )
                )
            bm25 = BM25Index.load(generation)
            bm25.check(len(chunks))
        except (FileNotFoundError, IndexFormatError):
            raise
        except (
            KeyError,
            TypeError,
            ValueError,
            AttributeError,
            IndexError,
            OSError,
            EOFError,
            zipfile.BadZipFile,
        ) as exc:
            # json, np.load (a cut or garbled zip), a row of the wrong shape: all are damage (index.integrity)
            raise damaged(index_dir, f"{type(exc).__name__}: {exc}") from exc
        check_manifest(index_dir, manifest, chunks, by_id)
        vector_index = None
        if manifest.mode == "hybrid":
            vector_index = read_vectors(index_dir, generation / VECTORS_FILE, manifest, len(chunks))
        embedder = embedder_for_index(
            manifest.embedding_model, config, embedder, load_model=load_model, where=str(index_dir)
        )
        if embedder is not None and vector_index is not None:
            check_dimension(vector_index.d, embedder, str(index_dir))
        store = cls(
            index_dir, generation, manifest, documents, languages, chunks, bm25, vector_index, embedder
        )
        store.window_table = WindowTable.load(generation)
        if manifest.mode == "hybrid":
            store.token_table = check_tokens(index_dir, generation, chunks, vector_index.d)  # type: ignore[union-attr]
        return store

    # -- lookups --------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.chunks)

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[self.chunk_index(chunk_id)]

    def chunk_index(self, chunk_id: str) -> int:
        return look_up(self._rows, chunk_id, "chunk", f"the index {self.index_dir}")

    def document(self, doc_id: str) -> Document:
        return look_up(self._documents, doc_id, "document", f"the index {self.index_dir}")

    def document_text(self, doc_id: str) -> str:
        return self.document(doc_id).text

    def document_language(self, doc_id: str) -> str:
        return self._languages[doc_id]

    def corpus_languages(self) -> set[str]:
        """The languages of the documents that have chunks."""
        return set(self._corpus_languages)

    def term_document_frequencies(self) -> dict[str, int]:
        return self.bm25.document_frequencies()

    def row_term_counts(self) -> list[dict[str, int]]:
        return self.bm25.row_term_counts()

    def stored_vectors(self) -> np.ndarray | None:
        if self.vector_index is None:
            return None
        return self.vector_index.reconstruct_n(0, self.vector_index.ntotal)

    def document_row(self, doc_id: str) -> int:
        """Position of a document in this generation (its rows in the window table)."""
        return self._doc_rows[doc_id]

    def stored_windows(self) -> WindowTable | None:
        return self.window_table

    def has_windows(self) -> bool:
        return self.window_table is not None

    def stored_tokens(self) -> TokenTable | None:
        return self.token_table

    def has_tokens(self) -> bool:
        return self.token_table is not None

    def windows(self, doc_id: str) -> tuple[list[WindowSpan], np.ndarray | None] | None:
        """The sentence windows of a document and their unit vectors (float16; None in lexical mode),
        or None when this index stores no windows (built by an older version: `rag index` adds them)."""
        if self.window_table is None:
            return None
        spans, first, end = self._document_spans(self._doc_rows[doc_id])
        vectors = self.window_table.vectors
        if vectors is None or not spans:
            return spans, None
        return spans, vectors[first:end]

    def _document_spans(self, doc_row: int) -> tuple[list[WindowSpan], int, int]:
        """(spans, first table row, last row + 1) of a document's windows; the list is shared: not to change."""
        known = self._spans_memo.get(doc_row)
        if known is not None:
            return known
        assert self.window_table is not None
        rows = self.window_table.spans_of(doc_row)
        known = [span for _, span in rows], (rows[0][0] if rows else 0), (rows[-1][0] + 1 if rows else 0)
        if len(self._spans_memo) >= WINDOW_MEMO_DOCS:
            self._spans_memo.clear()  # (threads may build one twice: same result, no lock needed)
        self._spans_memo[doc_row] = known
        return known

    def document_count(self) -> int:
        return sum(1 for entry in self.manifest.files.values() if entry.chunk_ids)

    def documents(self) -> list[DocumentInfo]:
        counts = Counter(chunk.doc_id for chunk in self.chunks)
        return [
            DocumentInfo(
                doc_id=doc.doc_id,
                source=doc.source,
                title=doc.title,
                language=self._languages[doc.doc_id],
                content_hash=doc.content_hash,
                chunk_count=counts[doc.doc_id],
                characters=len(doc.text),
            )
            for doc in self._documents.values()
        ]

    # -- search ---------------------------------------------------------------------------------------
    def query_vector(self, query: str) -> np.ndarray | None:
        """The query's unit vector (query prompt applied), None in lexical mode. Memoised: retrieval and the
        evidence step of one answer share one model call."""
        encoding = self.query_encoding(query)
        return None if encoding is None else encoding.vector

    def query_encoding(self, query: str) -> QueryEncoding | None:
        """The query's vector and token vectors from its one forward pass (memoised), None in lexical mode."""
        if self.embedder is None:
            return None
        with self._query_lock:
            encoding = self._query_vectors.get(query)
            if encoding is not None:
                self._query_vectors.move_to_end(query)
                return encoding
        encoding = self.embedder.encode_query(query)
        with self._query_lock:
            self._query_vectors[query] = encoding
            while len(self._query_vectors) > QUERY_MEMO_SIZE:
                self._query_vectors.popitem(last=False)
        return encoding

    def token_maxsim(self, query: str, rows: Sequence[int]) -> np.ndarray | None:
        """MaxSim of the query's word tokens against each chunk row's stored tokens (`index.tokens`), the
        question tokens weighed by their IDF over the chunks; None without token vectors."""
        encoding = self.query_encoding(query) if self.token_table is not None else None
        if encoding is None or encoding.tokens is None or self.token_table is None:
            return None
        tokens = encoding.tokens
        weights = self.token_table.idf(tokens.ids[tokens.words])
        question = tokens.vectors[tokens.words]
        similarities = self._question_similarities(query, question)
        return self.token_table.maxsim(question, weights, rows, similarities)

    def window_token_matches(
        self, query: str, doc_id: str, spans: Sequence[tuple[int, int]]
    ) -> TokenMatches | None:
        """Each of the query's word tokens against each span of a document: its best cosine with the tokens of
        the document's chunks lying inside the span (overlapping chunks give a token twice: the best of the
        two counts), its offsets in the query and its IDF over the chunks."""
        table = self.token_table
        encoding = self.query_encoding(query) if table is not None else None
        if encoding is None or encoding.tokens is None or table is None:
            return None
        words = encoding.tokens.words
        question = encoding.tokens.vectors[words]
        tokens = self._document_tokens(doc_id)
        bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        # Each span's tokens, in one (spans, tokens) comparison: in span order, then token order.
        inside = (table.starts[tokens] >= bounds[:, :1]) & (table.ends[tokens] <= bounds[:, 1:])
        span_of, token_at = np.nonzero(inside)
        best = table.best_in_groups(
            question,
            tokens[token_at],
            np.bincount(span_of, minlength=len(bounds)),
            self._question_similarities(query, question),
        )
        return TokenMatches(encoding.tokens.offsets[words], table.idf(encoding.tokens.ids[words]), best)

    def _question_similarities(self, query: str, question: np.ndarray) -> np.ndarray | None:
        """The question's word tokens against the whole token table (`TokenTable.similarities`), memoised per
        query for a table of at most `WHOLE_TABLE_TOKENS` (retrieval's MaxSim and the answer's window matches
        of one question share it); None for a larger table (each takes its own tokens)."""
        table = self.token_table
        if table is None or len(table) > WHOLE_TABLE_TOKENS:
            return None
        with self._query_lock:
            known = self._similarities.get(query)
        if known is None:
            known = table.similarities(question)
            with self._query_lock:
                self._similarities[query] = known
                while len(self._similarities) > SIMILARITIES_MEMO_SIZE:
                    self._similarities.popitem(last=False)
        return known

    def _document_tokens(self, doc_id: str) -> np.ndarray:
        """Indices in the token table of the tokens of a document's chunks (memoised per document)."""
        known = self._tokens_memo.get(doc_id)
        if known is not None:
            return known
        assert self.token_table is not None
        if self._chunk_rows_of is None:
            rows_of: dict[str, list[int]] = {}
            for row, chunk in enumerate(self.chunks):
                rows_of.setdefault(chunk.doc_id, []).append(row)
            self._chunk_rows_of = rows_of
        rows = self._chunk_rows_of.get(doc_id, [])
        known = (
            np.concatenate([self.token_table.row_tokens(row) for row in rows])
            if rows
            else np.zeros(0, np.int64)
        )
        if len(self._tokens_memo) >= WINDOW_MEMO_DOCS:
            self._tokens_memo.clear()  # (threads may build one twice: same result, no lock needed)
        self._tokens_memo[doc_id] = known
        return known

    def search_dense(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top-k (row, cosine) by the embedding model, query prompt applied; [] in lexical mode."""
        if self.embedder is None or self.vector_index is None or k <= 0 or not self.chunks:
            return []
        vector = self.query_vector(query).reshape(1, -1)  # type: ignore[union-attr]
        scores, rows = self.vector_index.search(vector, min(k, len(self.chunks)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def query_terms(self, query: str, language: str | None = None, *, fix_unknown: bool = True) -> list[str]:
        """Terms of the query (`index.lexical.analyze_query`). Memoised: the lexical search and the term
        coverage of one question share them (an unknown word's typo repair costs up to ~25 ms)."""
        key = (query, language, fix_unknown)
        with self._query_lock:
            terms = self._query_terms.get(key)
            if terms is not None:
                self._query_terms.move_to_end(key)
                return list(terms)
        frequencies = self.bm25.frequencies if fix_unknown else None
        terms = analyze_query(self._analyzer, query, language, self.main_language, frequencies)
        with self._query_lock:
            self._query_terms[key] = terms
            while len(self._query_terms) > QUERY_MEMO_SIZE:
                self._query_terms.popitem(last=False)
        return list(terms)

    def search_lexical(
        self, query: str, k: int, language: str | None = None, *, fix_unknown: bool = True
    ) -> list[tuple[int, float]]:
        """Top-k (row, BM25 score); rows sharing no term with the query are left out."""
        return self.bm25.search(self.query_terms(query, language, fix_unknown=fix_unknown), k)

    def term_coverage(
        self, query: str, rows: Sequence[int], language: str | None = None, *, fix_unknown: bool = True
    ) -> dict[int, float]:
        """Per row of `rows`, the IDF-weighted share of the query's distinct terms it holds (0..1)."""
        return self.bm25.coverage(self.query_terms(query, language, fix_unknown=fix_unknown), rows)
