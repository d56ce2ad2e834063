"""Build or update the index from folders and files: incremental, atomic, one writer at a time.

`build_index` walks the roots (the paths given now plus those recorded in the manifest, minus `forget`),
loads only new or changed files (size+mtime, then content hash), reuses the chunks, vectors (read back
from the FAISS index) and BM25 term counts of unchanged files, drops deleted files, and writes a new
generation (see index.store). When nothing changed, nothing is embedded and nothing is rewritten.

Safety rules:
- every given path must exist, checked before the index is touched (IndexPathError);
- an index built with another embedding model, or in hybrid mode when the model cannot be loaded now, is
  never silently re-embedded or stripped of its vectors: IndexMismatchError says to restore the model or
  to pass rebuild=True (`rag index --rebuild`);
- changed chunking settings (size, overlap, tokenizer, splitter version) re-chunk every file.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from index.chunking import SPLITTER_VERSION, ChunkingSettings, approx_count_batch, chunk_document
from index.config import IndexConfig
from index.embedding import Embedder, approx_token_spans, load_embedder
from index.errors import IndexMismatchError, IndexNotFoundError, IndexPathError
from index.language import detect_language
from index.lexical import BM25_B, BM25_K1, Analyzer, BM25Index
from index.loaders import SUPPORTED_EXTENSIONS, LoadError, load_document, sha256_bytes
from index.manifest import FileEntry, Manifest, utc_now
from index.records import Chunk, Document
from index.store import IndexStore, index_lock, vector_index_kind, write_generation
from index.windows import build_window_table

ProgressCallback = Callable[[int, int, str], None]
APPROX_TOKENIZER = "approx-v1"


class _Auto:
    def __repr__(self) -> str:
        return "AUTO"


AUTO: Any = _Auto()
"""Default of `embedder`: load the configured model (None when it is '' or cannot be loaded)."""


@dataclass(slots=True)
class BuildReport:
    files: int = 0
    chunks: int = 0
    new_files: int = 0
    changed_files: int = 0
    removed_files: int = 0
    embedded_chunks: int = 0
    embedded_windows: int = 0  # sentence windows embedded (index.windows), hybrid mode
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seconds: float = 0.0
    mode: str = "lexical"
    index_dir: str = ""
    written: bool = False  # False when nothing changed and the index was left as it was
    messages: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.files} files, {self.chunks} chunks ({self.new_files} new, {self.changed_files} changed, "
            f"{self.removed_files} removed files; {self.embedded_chunks} chunks embedded; "
            f"{len(self.skipped)} skipped) in {self.seconds:.1f} s, {self.mode} mode, index {self.index_dir}"
        )


@dataclass(slots=True)
class _Found:
    path: Path
    root: Path
    doc_id: str
    size: int
    mtime_ns: int


def _is_hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def discover_files(roots: Sequence[Path], extensions: Iterable[str]) -> list[_Found]:
    """Supported files under the roots, hidden files and folders skipped, in a stable order."""
    wanted = {ext.lower() for ext in extensions}
    found: list[_Found] = []
    taken: set[str] = set()
    for root in roots:
        if root.is_file():
            candidates = [root] if root.suffix.lower() in wanted else []
            base = root.parent
        elif root.is_dir():
            candidates = []
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                candidates += [
                    Path(dirpath) / name
                    for name in sorted(filenames)
                    if not name.startswith(".") and Path(name).suffix.lower() in wanted
                ]
            base = root
        else:
            continue
        for path in candidates:
            if root.is_dir() and _is_hidden(path, root):
                continue
            doc_id = path.relative_to(base).as_posix()
            if doc_id in taken:  # same relative path under two roots: qualify with the root's name
                doc_id = f"{root.name}/{doc_id}"
            taken.add(doc_id)
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append(_Found(path, root, doc_id, stat.st_size, stat.st_mtime_ns))
    return found


def chunking_settings(config: IndexConfig, embedder: Embedder | None) -> ChunkingSettings:
    size = config.chunk_size_tokens
    if embedder is not None and embedder.max_tokens:
        # The prompt and the [CLS]/[SEP] tokens share the model's window with the chunk.
        room = embedder.max_tokens - embedder.count_tokens(embedder.passage_prompt) - 2
        size = max(16, min(size, room))
    return ChunkingSettings(size, min(config.chunk_overlap_tokens, size // 2))


def chunking_manifest(settings: ChunkingSettings, embedder: Embedder | None) -> dict[str, Any]:
    return {
        "chunk_size_tokens": settings.chunk_size_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        "min_section_tokens": settings.min_section_tokens,
        "tokenizer": embedder.name if embedder is not None else APPROX_TOKENIZER,
        "splitter_version": SPLITTER_VERSION,
    }


def _resolve_paths(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    resolved = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise IndexPathError(
                f"The path {str(raw)!r} does not exist. Check the spelling, or give an existing folder."
            )
        resolved.append(path.resolve())
    return resolved


def _open_previous(index_dir: Path) -> IndexStore | None:
    try:
        return IndexStore.open(index_dir, load_model=False)
    except IndexNotFoundError:
        return None


def build_index(
    paths: Iterable[str | os.PathLike[str]],
    config: IndexConfig,
    *,
    embedder: Embedder | None = AUTO,
    forget: Iterable[str | os.PathLike[str]] = (),
    rebuild: bool = False,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
) -> BuildReport:
    """Index `paths` (and the roots already recorded) into `config.index_dir`; returns what was done."""
    started = time.perf_counter()
    new_roots = _resolve_paths(paths)
    forget_roots = {Path(p).expanduser().resolve() for p in forget}
    index_dir = config.resolved_index_dir()
    report = BuildReport(index_dir=str(index_dir))
    progress = progress and config.show_progress

    with index_lock(index_dir):
        previous = None if rebuild else _open_previous(index_dir)
        if rebuild and (index_dir / "CURRENT").exists():
            try:
                old_roots = [Path(r) for r in _open_previous(index_dir).manifest.roots]  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - a damaged index is exactly what --rebuild is for
                old_roots = []
        else:
            old_roots = [Path(r) for r in previous.manifest.roots] if previous else []
        roots = [r for r in dict.fromkeys([*old_roots, *new_roots]) if r not in forget_roots]

        if embedder is AUTO:
            embedder = load_embedder(config) if config.embedding_model else None
        mode = "hybrid" if embedder is not None else "lexical"
        report.mode = mode
        if previous is not None:
            _check_compatible(previous, embedder, config, index_dir)

        settings = chunking_settings(config, embedder)
        chunk_meta = chunking_manifest(settings, embedder)
        analyzer = Analyzer()
        same_chunking = previous is not None and previous.manifest.chunking == chunk_meta
        same_analyzer = previous is not None and previous.manifest.analyzer == analyzer.settings()
        reuse_vectors = (
            same_chunking and previous is not None and previous.vector_index is not None and mode == "hybrid"
        )
        if previous is not None and not same_chunking:
            report.messages.append("Chunking settings changed: every file is chunked again.")

        for root in roots:
            if not root.exists():
                report.messages.append(f"{root} no longer exists: its files are removed from the index.")
        found = discover_files([r for r in roots if r.exists()], config.extensions)
        if not found:
            where = ", ".join(str(r) for r in roots) or "(no folder given)"
            report.messages.append(
                f"No supported files in {where} (supported: {', '.join(SUPPORTED_EXTENSIONS)})."
            )

        old_entries = previous.manifest.files if previous else {}
        old_skipped = previous.manifest.skipped if previous else {}
        skipped_meta: dict[str, dict[str, Any]] = {}
        kept: list[tuple[_Found, FileEntry]] = []
        to_load: list[tuple[_Found, bytes | None, bool]] = []  # (file, bytes, is_new)
        files_iter = _progress_iter(found, progress, "scanning")
        for number, item in enumerate(files_iter, start=1):
            known_bad = old_skipped.get(str(item.path))
            if known_bad and (known_bad["size"], known_bad["mtime_ns"]) == (item.size, item.mtime_ns):
                report.skipped.append((str(item.path), known_bad["reason"]))
                skipped_meta[str(item.path)] = known_bad
                continue
            old = old_entries.get(item.doc_id)
            if old is not None and same_chunking and old.size == item.size and old.mtime_ns == item.mtime_ns:
                kept.append((item, old))
                continue
            try:
                data = item.path.read_bytes()
            except OSError as exc:
                report.skipped.append((str(item.path), f"cannot read the file ({exc.strerror or exc})"))
                continue
            if old is not None and same_chunking and sha256_bytes(data) == old.content_hash:
                kept.append((item, old))  # touched but identical: only the mtime is refreshed
                continue
            to_load.append((item, data, old is None))
            if on_progress:
                on_progress(number, len(found), "scanning")

        present = {item.doc_id for item in found}
        report.removed_files = sum(1 for doc_id in old_entries if doc_id not in present)
        roots_changed = previous is None or [str(r) for r in roots] != previous.manifest.roots
        mtimes_changed = any(
            (item.size, item.mtime_ns) != (old.size, old.mtime_ns) or item.path != Path(old.source)
            for item, old in kept
        )
        nothing_changed = (
            previous is not None
            and not to_load
            and not report.removed_files
            and not roots_changed
            and same_analyzer
            and not mtimes_changed  # else rewrite, so that the next run can skip hashing these files
            # An index from before sentence windows were stored gets them (its chunks are kept).
            and previous.window_table is not None
        )
        if nothing_changed:
            assert previous is not None
            return _finish(report, previous.manifest.files, len(previous.chunks), started)

        # Load and chunk the new and changed files.
        count_batch = embedder.count_tokens_batch if embedder is not None else approx_count_batch
        token_spans = embedder.token_spans if embedder is not None else approx_token_spans
        loaded: list[tuple[_Found, Document, str, list[Chunk]]] = []
        for number, (item, data, is_new) in enumerate(_progress_iter(to_load, progress, "reading"), start=1):
            try:
                document = load_document(item.path, item.doc_id, data=data)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
                reason = (
                    str(exc)
                    if isinstance(exc, LoadError)
                    else f"unexpected error {type(exc).__name__}: {exc}"
                )
                report.skipped.append((str(item.path), reason))
                skipped_meta[str(item.path)] = {
                    "size": item.size,
                    "mtime_ns": item.mtime_ns,
                    "reason": reason,
                }
                continue
            language = detect_language(document.text[:20_000], default="fr")
            chunks = chunk_document(document, settings, count_batch=count_batch, token_spans=token_spans)
            loaded.append((item, document, language, chunks))
            if is_new:
                report.new_files += 1
            else:
                report.changed_files += 1
            if on_progress:
                on_progress(number, len(to_load), "reading")

        # Assemble the new generation: kept files first (their rows come from the previous index).
        documents: list[tuple[Document, str]] = []
        chunks: list[Chunk] = []
        term_counts: list[dict[str, int]] = []
        vector_rows: list[int] = []  # previous row of each reused chunk, -1 for chunks to embed
        entries: dict[str, FileEntry] = {}
        old_counts = (
            previous.bm25.row_term_counts() if previous is not None and kept and same_analyzer else None
        )
        for item, old in kept:
            assert previous is not None
            document = previous.document(old.doc_id)
            document.source = str(item.path)
            documents.append((document, old.language))
            for chunk_id in old.chunk_ids:
                row = previous.chunk_index(chunk_id)
                chunk = previous.chunks[row]
                chunks.append(chunk)
                vector_rows.append(row if reuse_vectors else -1)
                term_counts.append(
                    old_counts[row]
                    if old_counts is not None
                    else Counter(
                        analyzer.analyze_chunk(chunk.text, chunk.title, chunk.heading_path, old.language)
                    )
                )
            entries[old.doc_id] = FileEntry(
                old.doc_id, str(item.path), str(item.root), old.content_hash, item.size, item.mtime_ns,
                old.language, old.title, list(old.chunk_ids),
            )  # fmt: skip
        for item, document, language, doc_chunks in loaded:
            documents.append((document, language))
            for chunk in doc_chunks:
                chunks.append(chunk)
                vector_rows.append(-1)
                term_counts.append(
                    Counter(analyzer.analyze_chunk(chunk.text, chunk.title, chunk.heading_path, language))
                )
            entries[document.doc_id] = FileEntry(
                document.doc_id, document.source, str(item.root), document.content_hash, item.size, item.mtime_ns,
                language, document.title, [c.chunk_id for c in doc_chunks],
            )  # fmt: skip

        vectors = None
        if embedder is not None:
            vectors = np.zeros((len(chunks), embedder.dimension), dtype=np.float32)
            reuse = [(i, row) for i, row in enumerate(vector_rows) if row >= 0]
            if reuse:
                assert previous is not None and previous.vector_index is not None
                old_vectors = previous.vector_index.reconstruct_n(0, previous.vector_index.ntotal)
                vectors[[i for i, _ in reuse]] = old_vectors[[row for _, row in reuse]]
            todo = [i for i, row in enumerate(vector_rows) if row < 0]
            if todo:
                vectors[todo] = embedder.embed_passages(
                    [chunks[i].text for i in todo], show_progress=progress, on_progress=on_progress
                )
            report.embedded_chunks = len(todo)

        # Sentence windows of every document (with vectors in hybrid mode): kept documents keep theirs.
        previous_windows = previous.window_table if previous is not None else None
        kept_ids = {old.doc_id for _, old in kept}
        reused = [
            (previous_windows, previous.document_row(document.doc_id))  # type: ignore[union-attr]
            if previous_windows is not None
            and document.doc_id in kept_ids
            and (embedder is None or previous_windows.vectors is not None)
            else None
            for document, _ in documents
        ]
        windows, report.embedded_windows = build_window_table(
            [document.text for document, _ in documents],
            reused,
            None if embedder is None else embedder.embed_passages,
            embedder.dimension if embedder is not None else 0,
        )

        bm25 = BM25Index(k1=BM25_K1, b=BM25_B).build_from_counts(term_counts)
        now = utc_now()
        manifest = Manifest(
            mode=mode,
            embedding=embedder.settings() if embedder is not None else None,
            chunking=chunk_meta,
            analyzer=analyzer.settings(),
            bm25={"k1": bm25.k1, "b": bm25.b},
            roots=[str(r) for r in roots],
            files=entries,
            vector_index=vector_index_kind(len(chunks)) if embedder is not None else None,
            skipped=skipped_meta,
            created_at=previous.manifest.created_at if previous is not None else now,
            updated_at=now,
        )
        write_generation(index_dir, manifest, documents, chunks, bm25, vectors, windows)
        report.written = True
        return _finish(report, entries, len(chunks), started)


def _finish(
    report: BuildReport, entries: dict[str, FileEntry], chunk_count: int, started: float
) -> BuildReport:
    report.files = len(entries)
    report.chunks = chunk_count
    report.seconds = time.perf_counter() - started
    return report


def _check_compatible(
    previous: IndexStore, embedder: Embedder | None, config: IndexConfig, index_dir: Path
) -> None:
    built_with = previous.manifest.embedding_model
    if previous.manifest.mode == "hybrid" and embedder is None:
        configured = config.embedding_model
        why = (
            "no embedding model is configured (lexical-only)"
            if not configured
            else f"the model {configured!r} cannot be loaded now"
        )
        raise IndexMismatchError(
            f"The index in {index_dir} holds vectors of the model {built_with!r}, but {why}. It was left "
            f"unchanged rather than losing its vectors. Make the model available (RAG_INDEX__EMBEDDING_MODEL="
            f"{built_with!r}, or a local folder of it), or rebuild lexical-only with: rag index --rebuild <folders>."
        )
    if embedder is not None and built_with and built_with != embedder.name:
        from index.store import same_model

        if not same_model(built_with, embedder.name):
            raise IndexMismatchError(
                f"The index in {index_dir} was built with the embedding model {built_with!r}, but "
                f"{embedder.name!r} is configured. Rebuild it with the new model (rag index --rebuild <folders>) "
                f"or set RAG_INDEX__EMBEDDING_MODEL={built_with!r} back."
            )


def _progress_iter(items: Sequence[Any], enabled: bool, label: str) -> Iterable[Any]:
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="file", file=sys.stderr, leave=False)
