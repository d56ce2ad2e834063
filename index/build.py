"""Build or update the index from folders and files: incremental, atomic, one writer at a time.

`build_index` walks the roots (the paths given now plus those recorded in the manifest, minus `forget`),
loads only new or changed files (size+mtime, then content hash), drops deleted files, and hands the
writer an update (`Generation.kept`): the new and changed documents' rows, and the ids of the unchanged
ones, whose chunks, vectors, term counts and windows the store keeps (PostgreSQL: the rows stay in place;
the folder store: numpy copies into its new generation). Work is proportional to what changed: nothing of
an unchanged document is read back through Python objects. When nothing changed, nothing is embedded and
nothing is rewritten. A complete generation (the previous rows read back where reusable) is written only
when the previous index cannot be kept as stored: another analyzer, instruction detector or mode, or an
index of before sentence windows.

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

from index.checkpoint import EmbeddingCheckpoint
from index.chunking import ChunkingSettings, approx_count_batch, chunk_document
from index.config import IndexConfig
from index.embedding import Embedder, approx_token_spans, load_embedder
from index.errors import IndexMismatchError, IndexPathError
from index.instructions import DETECTOR_VERSION, flag_instructions
from index.language import document_language
from index.lexical import BM25_B, BM25_K1, Analyzer, BM25Index
from index.loaders import SUPPORTED_EXTENSIONS, LoadError, load_document, sha256_bytes
from index.manifest import FileEntry, Manifest, utc_now
from index.model_check import check_same_model
from index.protocols import Generation, IndexWriter, PreviousIndex, TokenHistory, WindowHistory
from index.records import Chunk, Document
from index.sentences import SPLITTER_VERSION
from index.stores import open_writer
from index.tokens import TokenTable
from index.vector_index import vector_index_kind
from index.windows import WindowTable, build_window_table

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
    """Supported files under the roots, hidden files and folders skipped, each real file once, in a stable
    order."""
    wanted = {ext.lower() for ext in extensions}
    found: list[_Found] = []
    taken: set[str] = set()
    # One identity per file: the same file reached twice (a folder and a file inside it, a symlink, two
    # overlapping roots) is one document, the first path found names it.
    seen_files: set[Path] = set()
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
            try:
                real = path.resolve()
            except OSError:  # a symlink loop
                continue
            if real in seen_files:
                continue
            seen_files.add(real)
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


@dataclass(slots=True)
class BuildPlan:
    """What a build will do, decided before any file is loaded (`plan_build`)."""

    roots: list[Path]
    previous: PreviousIndex | None
    embedder: Embedder | None
    chunking: ChunkingSettings
    chunk_meta: dict[str, Any]
    analyzer: Analyzer
    same_chunking: bool
    same_analyzer: bool
    reuse_vectors: bool  # the previous index's vectors of unchanged files are kept, not re-embedded
    # Token vectors are stored (`index.tokens`): a hybrid build for a writer that keeps them, with an
    # embedder that gives them.
    wants_tokens: bool = False
    # Unchanged files stay in the store as they are: the writer gets an update (`Generation.kept`).
    update_in_place: bool = False
    kept: list[tuple[_Found, FileEntry]] = field(default_factory=list)  # unchanged files
    to_load: list[tuple[_Found, bytes | None, bool]] = field(default_factory=list)  # (file, bytes, is_new)
    skipped_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    nothing_changed: bool = False
    # Where embeddings are computed: the embedder through the interrupted-run checkpoint (index.checkpoint)
    # when the store has a folder for it, else None (the embedder itself).
    checkpoint: EmbeddingCheckpoint | None = None

    @property
    def mode(self) -> str:
        return "hybrid" if self.embedder is not None else "lexical"


@dataclass(slots=True)
class _Loaded:
    found: _Found
    document: Document
    language: str
    chunks: list[Chunk]


@dataclass(slots=True)
class _Assembled:
    """The new generation's rows: kept files first (their rows come from the previous index)."""

    documents: list[tuple[Document, str]] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    term_counts: list[dict[str, int]] = field(default_factory=list)
    vector_rows: list[int] = field(default_factory=list)  # previous row of each reused vector, -1: embed it
    entries: dict[str, FileEntry] = field(default_factory=dict)
    kept: list[str] | None = None  # an update in place: the unchanged documents (rows above: the others)

    @property
    def chunk_count(self) -> int:
        """Chunks of the whole index (kept documents included)."""
        return sum(len(entry.chunk_ids) for entry in self.entries.values())


def build_index(
    paths: Iterable[str | os.PathLike[str]],
    config: IndexConfig,
    *,
    embedder: Embedder | None = AUTO,
    forget: Iterable[str | os.PathLike[str]] = (),
    rebuild: bool = False,
    progress: bool = True,
    on_progress: ProgressCallback | None = None,
    writer: IndexWriter | None = None,
) -> BuildReport:
    """Index `paths` (and the roots already recorded) into `writer` (default: the folder store of
    `config.index_dir`); returns what was done. Stages: plan, load + chunk, assemble, embed, write."""
    started = time.perf_counter()
    new_roots = _resolve_paths(paths)
    forget_roots = {Path(p).expanduser().resolve() for p in forget}
    writer = writer if writer is not None else open_writer(config)
    report = BuildReport(index_dir=writer.location)
    progress = progress and config.show_progress

    with writer.lock():
        plan = plan_build(
            writer, new_roots, forget_roots, config, embedder, rebuild, report, progress, on_progress
        )
        plan.checkpoint = _checkpoint(writer, plan.embedder)
        if plan.nothing_changed:
            assert plan.previous is not None
            if plan.checkpoint is not None:
                plan.checkpoint.clear()  # left by a run whose new files are gone again
            files = plan.previous.manifest.files  # counted from the manifest: no chunk is read
            return _finish(report, files, sum(len(entry.chunk_ids) for entry in files.values()), started)
        loaded = load_and_chunk(plan, report, progress, on_progress)
        assembled = assemble(plan, loaded)
        vectors, tokens = embed_chunks(plan, assembled, report, progress, on_progress)
        # Only for a store that keeps them: embedding windows nobody stores would double the cost for nothing.
        windows = find_windows(plan, assembled, report) if writer.keeps_windows else None
        bm25 = BM25Index(k1=BM25_K1, b=BM25_B).build_from_counts(assembled.term_counts)
        writer.write(
            Generation(
                manifest=make_manifest(plan, assembled, bm25),
                documents=assembled.documents,
                chunks=assembled.chunks,
                bm25=bm25,
                vectors=vectors,
                windows=windows,
                tokens=tokens,
                kept=assembled.kept,
            )
        )
        report.written = True
        if plan.checkpoint is not None:
            if plan.checkpoint.reused:
                report.messages.append(
                    f"Resumed: {plan.checkpoint.reused} texts embedded by an interrupted run were reused, "
                    "not embedded again."
                )
            plan.checkpoint.clear()
        return _finish(report, assembled.entries, assembled.chunk_count, started)


def _checkpoint(writer: IndexWriter, embedder: Embedder | None) -> EmbeddingCheckpoint | None:
    folder = getattr(writer, "checkpoint_dir", None)  # folder stores only (index.checkpoint)
    if embedder is None or folder is None:
        return None
    return EmbeddingCheckpoint(folder, embedder)


def _previous_roots(writer: IndexWriter, rebuild: bool, previous: PreviousIndex | None) -> list[Path]:
    if not rebuild:
        # `is not None`: an index of 0 chunks is falsy (IndexStore.__len__) but still knows its folders
        return [Path(r) for r in previous.manifest.roots] if previous is not None else []
    try:
        old = writer.read_previous()
    except Exception:  # noqa: BLE001 - a damaged index is exactly what --rebuild is for
        return []
    return [Path(r) for r in old.manifest.roots] if old is not None else []


def plan_build(
    writer: IndexWriter,
    new_roots: list[Path],
    forget_roots: set[Path],
    config: IndexConfig,
    embedder: Embedder | None,
    rebuild: bool,
    report: BuildReport,
    progress: bool,
    on_progress: ProgressCallback | None,
) -> BuildPlan:
    """Which roots, which model, which files are kept, loaded, skipped or gone; refuses a model mismatch."""
    previous = None if rebuild else writer.read_previous()
    old_roots = _previous_roots(writer, rebuild, previous)
    roots = [r for r in dict.fromkeys([*old_roots, *new_roots]) if r not in forget_roots]
    for path in sorted(forget_roots - set(old_roots) - set(new_roots)):
        holder = next((root for root in roots if path.is_relative_to(root)), None)
        if holder is not None:
            report.messages.append(
                f"{path} is inside {holder}, which stays indexed: --forget drops a folder or file given to "
                f"the index itself. To drop this file, move it out of {holder} (or delete it) and index again."
            )
        else:
            report.messages.append(f"{path} is not in the index: nothing to forget.")

    if embedder is AUTO:
        embedder = load_embedder(config) if config.embedding_model else None
    report.mode = "hybrid" if embedder is not None else "lexical"
    if previous is not None:
        _check_compatible(previous, embedder, config, writer.location)

    chunking = chunking_settings(config, embedder)
    chunk_meta = chunking_manifest(chunking, embedder)
    analyzer = Analyzer()
    same_chunking = previous is not None and previous.manifest.chunking == chunk_meta
    wants_tokens = (
        config.token_vectors and writer.keeps_tokens and embedder is not None and embedder.gives_token_vectors
    )
    has_tokens = isinstance(previous, TokenHistory) and previous.has_tokens()
    # A hybrid index written without token vectors gets them: every chunk goes through the model again
    # (the pass that gives the tokens gives the vectors), once.
    lacks_tokens = (
        wants_tokens and previous is not None and previous.manifest.mode == "hybrid" and not has_tokens
    )
    if lacks_tokens:
        report.messages.append("The index has no token vectors yet: every chunk is embedded again, once.")
    # Token vectors turned off (`index.token_vectors`): the next generation is written without them; the
    # chunks' vectors are kept, nothing is embedded again.
    drops_tokens = has_tokens and not wants_tokens
    if drops_tokens and not config.token_vectors:
        report.messages.append(
            "Token vectors are off (index.token_vectors = false): the stored ones are dropped; "
            "retrieval ranks without late interaction."
        )
    plan = BuildPlan(
        roots=roots,
        previous=previous,
        embedder=embedder,
        chunking=chunking,
        chunk_meta=chunk_meta,
        analyzer=analyzer,
        same_chunking=same_chunking,
        same_analyzer=previous is not None and previous.manifest.analyzer == analyzer.settings(),
        reuse_vectors=same_chunking
        and previous is not None
        and previous.manifest.mode == "hybrid"
        and embedder is not None
        and not lacks_tokens,
        wants_tokens=wants_tokens,
    )
    if previous is not None and not same_chunking:
        report.messages.append("Chunking settings changed: every file is chunked again.")
    plan.update_in_place = (
        previous is not None
        and same_chunking
        and plan.same_analyzer
        and previous.manifest.instruction_detector == DETECTOR_VERSION
        and previous.manifest.mode == plan.mode
        and previous.manifest.embedding == (embedder.settings() if embedder is not None else None)
        and not lacks_tokens
        # An index from before sentence windows were stored gets them for every document: complete.
        and not (
            writer.keeps_windows and not (isinstance(previous, WindowHistory) and previous.has_windows())
        )
    )

    for root in roots:
        if not root.exists():
            report.messages.append(f"{root} no longer exists: its files are removed from the index.")
    found = discover_files([r for r in roots if r.exists()], config.extensions)
    # The types looked for: all the loaders read, or those the settings narrowed them to (said so).
    narrowed = tuple(config.extensions) != SUPPORTED_EXTENSIONS
    supported = f"{'index.extensions' if narrowed else 'supported'}: {', '.join(config.extensions)}"
    if not found:
        where = ", ".join(str(r) for r in roots) or "(no folder given)"
        report.messages.append(f"No supported files in {where} ({supported}).")
    else:  # a path given now that adds nothing, beside folders the index already holds: said too
        for root in new_roots:
            if (
                root.exists()
                and not any(item.root == root for item in found)
                and not discover_files([root], config.extensions)
            ):
                what = "is not a supported file" if root.is_file() else "holds no supported file"
                report.messages.append(f"{root} {what} ({supported}): nothing added from it.")

    old_entries = previous.manifest.files if previous is not None else {}
    old_skipped = previous.manifest.skipped if previous is not None else {}
    for number, item in enumerate(_progress_iter(found, progress, "scanning"), start=1):
        known_bad = old_skipped.get(str(item.path))
        if known_bad and (known_bad["size"], known_bad["mtime_ns"]) == (item.size, item.mtime_ns):
            report.skipped.append((str(item.path), known_bad["reason"]))
            plan.skipped_meta[str(item.path)] = known_bad
            continue
        old = old_entries.get(item.doc_id)
        if old is not None and same_chunking and old.size == item.size and old.mtime_ns == item.mtime_ns:
            plan.kept.append((item, old))
            continue
        try:
            data = item.path.read_bytes()
        except OSError as exc:
            report.skipped.append((str(item.path), f"cannot read the file ({exc.strerror or exc})"))
            continue
        if old is not None and same_chunking and sha256_bytes(data) == old.content_hash:
            plan.kept.append((item, old))  # touched but identical: only the mtime is refreshed
            continue
        plan.to_load.append((item, data, old is None))
        if on_progress:
            on_progress(number, len(found), "scanning")

    present = {item.doc_id for item in found}
    report.removed_files = sum(1 for doc_id in old_entries if doc_id not in present)
    roots_changed = previous is None or [str(r) for r in roots] != previous.manifest.roots
    mtimes_changed = any(
        (item.size, item.mtime_ns) != (old.size, old.mtime_ns) or item.path != Path(old.source)
        for item, old in plan.kept
    )
    plan.nothing_changed = (
        previous is not None
        and not plan.to_load
        and not report.removed_files
        and not roots_changed
        and plan.same_analyzer
        and previous.manifest.instruction_detector == DETECTOR_VERSION
        and not mtimes_changed  # else rewrite, so that the next run can skip hashing these files
        and not lacks_tokens
        and not drops_tokens
        # An index from before sentence windows were stored gets them (its chunks and vectors are kept).
        and not (
            writer.keeps_windows and not (isinstance(previous, WindowHistory) and previous.has_windows())
        )
    )
    return plan


def load_and_chunk(
    plan: BuildPlan, report: BuildReport, progress: bool, on_progress: ProgressCallback | None
) -> list[_Loaded]:
    """Load each new or changed file (one bad file is skipped with its reason, never stops the others),
    detect its language once, and chunk it."""
    count_batch = plan.embedder.count_tokens_batch if plan.embedder is not None else approx_count_batch
    token_spans = plan.embedder.token_spans if plan.embedder is not None else approx_token_spans
    loaded: list[_Loaded] = []
    for number, (item, data, is_new) in enumerate(_progress_iter(plan.to_load, progress, "reading"), start=1):
        try:
            document = load_document(item.path, item.doc_id, data=data)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            reason = (
                str(exc) if isinstance(exc, LoadError) else f"unexpected error {type(exc).__name__}: {exc}"
            )
            report.skipped.append((str(item.path), reason))
            plan.skipped_meta[str(item.path)] = {
                "size": item.size,
                "mtime_ns": item.mtime_ns,
                "reason": reason,
            }
            continue
        chunks = flag_instructions(
            chunk_document(document, plan.chunking, count_batch=count_batch, token_spans=token_spans)
        )
        loaded.append(_Loaded(item, document, document_language(document.text), chunks))
        if is_new:
            report.new_files += 1
        else:
            report.changed_files += 1
        if on_progress:
            on_progress(number, len(plan.to_load), "reading")
    return loaded


def _kept_entry(item: _Found, old: FileEntry) -> FileEntry:
    """An unchanged file's manifest entry, with its path, size and mtime of now (it may have moved or been
    touched)."""
    return FileEntry(
        old.doc_id, str(item.path), str(item.root), old.content_hash,
        item.size, item.mtime_ns, old.language, old.title, list(old.chunk_ids),
    )  # fmt: skip


def assemble(plan: BuildPlan, loaded: list[_Loaded]) -> _Assembled:
    """The rows of the new generation: kept files (reusing the previous rows) then the loaded ones. For
    an update in place, only the loaded files' rows: the kept files are named (`kept`), nothing of them is
    read."""
    out = _Assembled()
    if plan.update_in_place:
        out.kept = []
        for item, old in plan.kept:
            out.kept.append(old.doc_id)
            out.entries[old.doc_id] = _kept_entry(item, old)
        _add_loaded(plan, loaded, out)
        return out
    previous = plan.previous
    analyzer = plan.analyzer
    old_counts = (
        previous.row_term_counts() if previous is not None and plan.kept and plan.same_analyzer else None
    )
    # Chunks flagged by an older detector (or by none: an index of before the flag) are flagged again.
    same_detector = previous is not None and previous.manifest.instruction_detector == DETECTOR_VERSION
    for item, old in plan.kept:
        assert previous is not None
        document = previous.document(old.doc_id)
        document.source = str(item.path)
        out.documents.append((document, old.language))
        for chunk_id in old.chunk_ids:
            row = previous.chunk_index(chunk_id)
            chunk = previous.chunks[row]
            out.chunks.append(chunk if same_detector else flag_instructions([chunk])[0])
            out.vector_rows.append(row if plan.reuse_vectors else -1)
            out.term_counts.append(
                old_counts[row]
                if old_counts is not None
                else Counter(
                    analyzer.analyze_chunk(chunk.text, chunk.title, chunk.heading_path, old.language)
                )
            )
        out.entries[old.doc_id] = _kept_entry(item, old)
    _add_loaded(plan, loaded, out)
    return out


def _add_loaded(plan: BuildPlan, loaded: list[_Loaded], out: _Assembled) -> None:
    """The rows of the new and changed files: chunks, term counts (analysed now), no vector yet."""
    analyzer = plan.analyzer
    for new in loaded:
        document, language = new.document, new.language
        out.documents.append((document, language))
        for chunk in new.chunks:
            out.chunks.append(chunk)
            out.vector_rows.append(-1)
            out.term_counts.append(
                Counter(analyzer.analyze_chunk(chunk.text, chunk.title, chunk.heading_path, language))
            )
        out.entries[document.doc_id] = FileEntry(
            document.doc_id, document.source, str(new.found.root), document.content_hash, new.found.size,
            new.found.mtime_ns, language, document.title, [c.chunk_id for c in new.chunks],
        )  # fmt: skip


def embed_chunks(
    plan: BuildPlan,
    assembled: _Assembled,
    report: BuildReport,
    progress: bool,
    on_progress: ProgressCallback | None,
) -> tuple[np.ndarray | None, TokenTable | None]:
    """Vectors of every row: reused from the previous index where allowed, embedded otherwise; and, when
    the plan wants them, every row's token vectors from the same forward pass (reused rows: copied)."""
    embedder = plan.embedder
    if embedder is None:
        return None, None
    chunks = assembled.chunks
    vectors = np.zeros((len(chunks), embedder.dimension), dtype=np.float32)
    reuse = [(i, row) for i, row in enumerate(assembled.vector_rows) if row >= 0]
    if reuse:
        assert plan.previous is not None
        old_vectors = plan.previous.stored_vectors()
        assert old_vectors is not None  # reuse_vectors requires a hybrid previous index
        vectors[[i for i, _ in reuse]] = old_vectors[[row for _, row in reuse]]
    todo = [i for i, row in enumerate(assembled.vector_rows) if row < 0]
    new_tokens = None
    if todo:
        texts = [chunks[i].text for i in todo]
        source = plan.checkpoint or embedder
        if plan.wants_tokens:
            vectors[todo], new_tokens = source.embed_passages_with_tokens(
                texts, show_progress=progress, on_progress=on_progress
            )
        else:
            vectors[todo] = source.embed_passages(texts, show_progress=progress, on_progress=on_progress)
    report.embedded_chunks = len(todo)
    if not plan.wants_tokens or (todo and new_tokens is None):
        return vectors, None
    tokens = TokenTable.from_texts(new_tokens or [], [chunks[i].start for i in todo], embedder.dimension)
    if reuse:
        previous = plan.previous
        stored = previous.stored_tokens() if isinstance(previous, TokenHistory) else None
        assert stored is not None  # reuse_vectors requires the previous token vectors (plan_build)
        tokens = stored.take_rows(np.array([row for _, row in reuse])).extended(tokens)
        # Rows of `tokens`: the reused ones, then the embedded ones; back into chunk order.
        order = np.empty(len(chunks), dtype=np.int64)
        order[[i for i, _ in reuse] + todo] = np.arange(len(chunks))
        tokens = tokens.take_rows(order)
    return vectors, tokens


def find_windows(plan: BuildPlan, assembled: _Assembled, report: BuildReport) -> WindowTable:
    """Sentence windows of every document (`index.windows`), embedded in hybrid mode: a kept document
    keeps its windows and vectors from the previous index, a new or changed one is split and embedded."""
    embedder = plan.embedder
    previous = plan.previous
    # An update in place holds only new and changed documents: no previous window is read.
    reusing = isinstance(previous, WindowHistory) and plan.kept and not plan.update_in_place
    table = previous.stored_windows() if reusing else None  # type: ignore[union-attr]
    kept = {old.doc_id for _, old in plan.kept}
    usable = table is not None and (embedder is None or table.vectors is not None)
    reused = [
        (table, previous.document_row(document.doc_id))  # type: ignore[union-attr]
        if usable and document.doc_id in kept
        else None
        for document, _ in assembled.documents
    ]
    windows, report.embedded_windows = build_window_table(
        [document.text for document, _ in assembled.documents],
        reused,
        None if embedder is None else (plan.checkpoint or embedder).embed_passages,
        embedder.dimension if embedder is not None else 0,
    )
    return windows


def make_manifest(plan: BuildPlan, assembled: _Assembled, bm25: BM25Index) -> Manifest:
    now = utc_now()
    embedder = plan.embedder
    return Manifest(
        mode=plan.mode,
        embedding=embedder.settings() if embedder is not None else None,
        chunking=plan.chunk_meta,
        analyzer=plan.analyzer.settings(),
        bm25={"k1": bm25.k1, "b": bm25.b},
        roots=[str(r) for r in plan.roots],
        files=assembled.entries,
        vector_index=vector_index_kind(assembled.chunk_count) if embedder is not None else None,
        skipped=plan.skipped_meta,
        instruction_detector=DETECTOR_VERSION,
        created_at=plan.previous.manifest.created_at if plan.previous is not None else now,
        updated_at=now,
    )


def _finish(
    report: BuildReport, entries: dict[str, FileEntry], chunk_count: int, started: float
) -> BuildReport:
    report.files = len(entries)
    report.chunks = chunk_count
    report.seconds = time.perf_counter() - started
    return report


def _check_compatible(
    previous: PreviousIndex, embedder: Embedder | None, config: IndexConfig, where: str
) -> None:
    """An index with vectors is never updated without its model (nor with another one)."""
    built_with = previous.manifest.embedding_model
    if previous.manifest.mode == "hybrid" and embedder is None:
        configured = config.embedding_model
        why = (
            "no embedding model is configured (lexical-only)"
            if not configured
            else f"the model {configured!r} cannot be loaded now"
        )
        raise IndexMismatchError(
            f"The index in {where} holds vectors of the model {built_with!r}, but {why}. It was left "
            f"unchanged rather than losing its vectors. Make the model available (RAG_INDEX__EMBEDDING_MODEL="
            f"{built_with!r}, or a local folder of it), or rebuild lexical-only with: rag index --rebuild <folders>."
        )
    if embedder is not None:
        check_same_model(built_with, embedder.name, where)


def _progress_iter(items: Sequence[Any], enabled: bool, label: str) -> Iterable[Any]:
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=label, unit="file", file=sys.stderr, leave=False)
