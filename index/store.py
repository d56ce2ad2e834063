"""The index on disk: generations written atomically, opened read-only for search.

Layout of `index_dir`:
    CURRENT            name of the live generation (switched with os.replace: atomic)
    LOCK               held (fcntl.flock) by the one process that writes
    gen-<time>-<id>/   manifest.json, documents.jsonl (texts: offsets can be shown), chunks.jsonl,
                       bm25.json + bm25.npz, vectors.faiss (hybrid mode only)

A writer fills a hidden temporary folder, fsyncs every file, renames it to its generation name, then
points CURRENT at it; only after that are older generations deleted. A crash or Ctrl-C at any point
leaves CURRENT on a complete generation, so the previous index stays loadable. Nothing is pickled:
FAISS has its own binary format, the rest is JSON and plain npz arrays.

The FAISS index is exact inner product (IndexFlatIP) up to FLAT_MAX_VECTORS (80k), HNSW above: vectors are
normalised, so inner product is cosine similarity.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections import Counter, OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from index.config import IndexConfig
from index.embedding import Embedder, load_embedder
from index.errors import IndexFormatError, IndexLockedError, IndexMismatchError, IndexNotFoundError
from index.language import detect_language
from index.lexical import Analyzer, BM25Index
from index.manifest import Manifest
from index.records import Chunk, Document, Section
from index.windows import WindowSpan, WindowTable

if TYPE_CHECKING:
    import faiss

# Exact search up to this many vectors, HNSW (approximate, sub-linear) above. Measured with
# `python -m eval.benchmarks.scale` (dim 384, one FAISS thread, 2-core machine): exact search passes 10 ms
# p50 near 84k vectors (36 ms at 100k, 175 ms at 1M) while HNSW stays at 1-2 ms from 100k to 1M.
FLAT_MAX_VECTORS = 80_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128

QUERY_MEMO_SIZE = 256  # recent query vectors kept (a chat re-asks; the eval retrieves then answers)

CURRENT_FILE = "CURRENT"
LOCK_FILE = "LOCK"
GENERATION_PREFIX = "gen-"
TEMP_PREFIX = ".tmp-"
VECTORS_FILE = "vectors.faiss"
DOCUMENTS_FILE = "documents.jsonl"
CHUNKS_FILE = "chunks.jsonl"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What the UI lists about an indexed document (the text itself: `IndexStore.document_text`)."""

    doc_id: str
    source: str
    title: str
    language: str
    content_hash: str
    chunk_count: int
    characters: int


# -- locking ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def index_lock(index_dir: Path) -> Iterator[None]:
    """Exclusive writer lock; fails at once (IndexLockedError) if another process holds it.

    flock is released by the kernel when the holder dies, so a crashed writer never leaves a stale lock.
    """
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole block
    try:
        try:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no advisory lock, single writer assumed
            pass
        except OSError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLockedError(
                f"The index in {index_dir} is being written by {holder}. Wait for it to finish and try again."
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        handle.flush()
        yield
    finally:
        handle.close()


# -- writing ------------------------------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform/filesystem
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False))
            handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def make_vector_index(vectors: np.ndarray) -> faiss.Index:
    import faiss

    dimension = vectors.shape[1]
    if len(vectors) <= FLAT_MAX_VECTORS:
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def vector_index_kind(count: int) -> str:
    return "flat_ip" if count <= FLAT_MAX_VECTORS else "hnsw_ip"


def document_row(document: Document, language: str) -> dict[str, Any]:
    row = asdict(document)
    row["language"] = language
    row["sections"] = [[s.start, s.end, list(s.heading_path), s.page] for s in document.sections]
    return row


def chunk_row(chunk: Chunk) -> dict[str, Any]:
    # The text is not stored twice: it is document.text[start:end].
    return {
        "chunk_id": chunk.chunk_id,
        "doc_id": chunk.doc_id,
        "start": chunk.start,
        "end": chunk.end,
        "ordinal": chunk.ordinal,
        "heading_path": list(chunk.heading_path),
        "page": chunk.page,
    }


def write_generation(
    index_dir: Path,
    manifest: Manifest,
    documents: Sequence[tuple[Document, str]],
    chunks: Sequence[Chunk],
    bm25: BM25Index,
    vectors: np.ndarray | None,
    windows: WindowTable | None = None,
) -> Path:
    """Write a complete generation and make it current. Call under `index_lock`. Returns its folder.

    `windows`: the sentence windows of `documents` (same order), with vectors in hybrid mode."""
    index_dir.mkdir(parents=True, exist_ok=True)
    name = f"{GENERATION_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    temp = index_dir / f"{TEMP_PREFIX}{name}"
    temp.mkdir()
    try:
        _write_jsonl(temp / DOCUMENTS_FILE, [document_row(doc, lang) for doc, lang in documents])
        _write_jsonl(temp / CHUNKS_FILE, [chunk_row(chunk) for chunk in chunks])
        bm25.save(temp)
        _fsync_file(temp / "bm25.npz")
        _fsync_file(temp / "bm25.json")
        if vectors is not None:
            import faiss

            faiss.write_index(make_vector_index(vectors), str(temp / VECTORS_FILE))
            _fsync_file(temp / VECTORS_FILE)
        if windows is not None:
            _fsync_file(windows.save(temp))
        manifest.chunk_count = len(chunks)
        _write_text(temp / "manifest.json", manifest.to_json())
        _fsync_dir(temp)
        final = index_dir / name
        os.rename(temp, final)
        _fsync_dir(index_dir)
        pointer = index_dir / f"{CURRENT_FILE}.tmp"
        _write_text(pointer, name + "\n")
        os.replace(pointer, index_dir / CURRENT_FILE)  # the commit point
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    remove_stale_generations(index_dir)
    return final


def current_generation(index_dir: Path) -> Path | None:
    try:
        name = (index_dir / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return index_dir / name if name else None


def remove_stale_generations(index_dir: Path) -> None:
    """Delete generations CURRENT does not point at, and leftovers of interrupted writes. Under the lock."""
    live = current_generation(index_dir)
    for entry in index_dir.iterdir():
        if entry.is_dir() and entry != live and entry.name.startswith((GENERATION_PREFIX, TEMP_PREFIX)):
            shutil.rmtree(entry, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (index_dir / f"{CURRENT_FILE}.tmp").unlink()


# -- reading ------------------------------------------------------------------------------------------
def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def same_model(built_with: str | None, configured: str | None) -> bool:
    if (built_with or "") == (configured or ""):
        return True
    if not built_with or not configured:
        return False
    a, b = Path(built_with).expanduser(), Path(configured).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


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
        self._rows = {chunk.chunk_id: row for row, chunk in enumerate(chunks)}
        self._doc_rows = {doc.doc_id: row for row, doc in enumerate(documents)}
        # Sentence windows (index.windows), read by the answering side; None for an index built before them.
        self.window_table: WindowTable | None = None
        self._query_vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._query_lock = threading.Lock()
        counts = Counter(languages[chunk.doc_id] for chunk in chunks)
        self.main_language = counts.most_common(1)[0][0] if counts else "fr"
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
        built_with = manifest.embedding_model
        if (
            config is not None
            and built_with
            and config.embedding_model
            and not same_model(built_with, config.embedding_model)
        ):
            raise IndexMismatchError(
                f"The index in {index_dir} was built with the embedding model {built_with!r}, but "
                f"{config.embedding_model!r} is configured. Either rebuild the index with the new model "
                f"(rag index --rebuild <folders>) or set RAG_INDEX__EMBEDDING_MODEL={built_with!r} back."
            )
        if embedder is not None and built_with and not same_model(built_with, embedder.name):
            raise IndexMismatchError(
                f"The index in {index_dir} was built with {built_with!r}; the embedder given is {embedder.name!r}. "
                "Use the same model, or rebuild the index with rag index --rebuild <folders>."
            )
        try:
            documents: list[Document] = []
            languages: dict[str, str] = {}
            for row in _read_jsonl(generation / DOCUMENTS_FILE):
                languages[row["doc_id"]] = row.pop("language")
                row["sections"] = [Section(s, e, tuple(h), p) for s, e, h, p in row["sections"]]
                documents.append(Document(**row))
            by_id = {doc.doc_id: doc for doc in documents}
            chunks = []
            for row in _read_jsonl(generation / CHUNKS_FILE):
                doc = by_id[row["doc_id"]]
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
                    )
                )
            bm25 = BM25Index.load(generation)
        except FileNotFoundError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(
                f"The index in {index_dir} is damaged ({type(exc).__name__}: {exc}). "
                "Rebuild it: rag index --rebuild <folders>."
            ) from exc
        if bm25.size != len(chunks):
            raise IndexFormatError(
                f"The index in {index_dir} is inconsistent ({bm25.size} BM25 rows, {len(chunks)} chunks). "
                "Rebuild it: rag index --rebuild <folders>."
            )
        vector_index = None
        if manifest.mode == "hybrid":
            import faiss

            vector_index = faiss.read_index(str(generation / VECTORS_FILE))
            if vector_index.ntotal != len(chunks):
                raise IndexFormatError(
                    f"The index in {index_dir} is inconsistent ({vector_index.ntotal} vectors, {len(chunks)} "
                    "chunks). Rebuild it: rag index --rebuild <folders>."
                )
            if hasattr(vector_index, "hnsw"):
                vector_index.hnsw.efSearch = HNSW_EF_SEARCH
            if embedder is None and load_model:
                model_config = config or IndexConfig(embedding_model=built_with or "")
                if config is not None and not config.embedding_model:
                    model_config = None  # lexical-only chosen: keep the vectors, do not load a model
                if model_config is not None:
                    embedder = load_embedder(model_config)
            if embedder is not None and embedder.dimension != vector_index.d:
                raise IndexMismatchError(
                    f"The index in {index_dir} holds {vector_index.d}-dimensional vectors; the model "
                    f"{embedder.name!r} makes {embedder.dimension}. Rebuild it: rag index --rebuild <folders>."
                )
        store = cls(
            index_dir, generation, manifest, documents, languages, chunks, bm25, vector_index, embedder
        )
        store.window_table = WindowTable.load(generation)
        return store

    # -- lookups --------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        """Retrieval mode available now: "hybrid" needs both the vectors and a loaded model."""
        return "hybrid" if self.vector_index is not None and self.embedder is not None else "lexical"

    def __len__(self) -> int:
        return len(self.chunks)

    def chunk(self, chunk_id: str) -> Chunk:
        return self.chunks[self.chunk_index(chunk_id)]

    def chunk_index(self, chunk_id: str) -> int:
        try:
            return self._rows[chunk_id]
        except KeyError:
            raise KeyError(f"No chunk {chunk_id!r} in the index {self.index_dir}") from None

    def document(self, doc_id: str) -> Document:
        try:
            return self._documents[doc_id]
        except KeyError:
            raise KeyError(f"No document {doc_id!r} in the index {self.index_dir}") from None

    def document_text(self, doc_id: str) -> str:
        return self.document(doc_id).text

    def document_language(self, doc_id: str) -> str:
        return self._languages[doc_id]

    def document_row(self, doc_id: str) -> int:
        """Position of a document in this generation (rows of the window table)."""
        return self._doc_rows[doc_id]

    def windows(self, doc_id: str) -> tuple[list[WindowSpan], np.ndarray | None] | None:
        """The sentence windows of a document and their unit vectors (float16; None in lexical mode),
        or None when this index stores no windows (built by an older version: rebuild to get them)."""
        if self.window_table is None:
            return None
        rows = self.window_table.spans_of(self._doc_rows[doc_id])
        spans = [span for _, span in rows]
        vectors = self.window_table.vectors
        if vectors is None or vectors.shape[1] == 0 or not rows:
            return spans, None
        return spans, vectors[rows[0][0] : rows[-1][0] + 1]

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
        if self.mode != "hybrid":
            return None
        assert self.embedder is not None
        with self._query_lock:
            vector = self._query_vectors.get(query)
            if vector is not None:
                self._query_vectors.move_to_end(query)
                return vector
        vector = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
        with self._query_lock:
            self._query_vectors[query] = vector
            while len(self._query_vectors) > QUERY_MEMO_SIZE:
                self._query_vectors.popitem(last=False)
        return vector

    def search_dense(self, query: str, k: int) -> list[tuple[int, float]]:
        """Top-k (row, cosine) by the embedding model, query prompt applied; [] in lexical mode."""
        if self.mode != "hybrid" or k <= 0 or not self.chunks:
            return []
        assert self.vector_index is not None
        vector = self.query_vector(query).reshape(1, -1)  # type: ignore[union-attr]
        scores, rows = self.vector_index.search(vector, min(k, len(self.chunks)))
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def query_terms(self, query: str, language: str | None = None, *, fix_unknown: bool = True) -> list[str]:
        """Terms of the query, analysed in its language and also in the index's main language when they
        differ: short questions are often misdetected, and documents were stemmed in their own language.
        `fix_unknown`: terms the index never saw also search for the indexed term they likely mean
        (`BM25Index.known_variant`); turn it off for a query in another language than the documents."""
        lang = language or detect_language(query, default=self.main_language)
        terms = self._analyzer.analyze(query, lang)
        if lang != self.main_language:
            seen = set(terms)
            terms += [t for t in self._analyzer.analyze(query, self.main_language) if t not in seen]
        if not fix_unknown:
            return terms
        variants = [self.bm25.known_variant(t) for t in dict.fromkeys(terms)]
        return terms + [v for v in variants if v is not None]

    def search_lexical(
        self, query: str, k: int, language: str | None = None, *, fix_unknown: bool = True
    ) -> list[tuple[int, float]]:
        """Top-k (row, BM25 score); rows sharing no term with the query are left out."""
        return self.bm25.search(self.query_terms(query, language, fix_unknown=fix_unknown), k)
