"""The assistant: one opened index + the answering chain, behind the small API the CLI, UI and eval use.

    assistant = open_assistant(load_settings())            # an index built before (`rag index`)
    assistant = build_assistant(["docs/"], settings)        # index/update these files, then open
    answer = assistant.ask("Quelle est la valorisation d'OpenAI ?")
    for item in assistant.stream(question, history): ...    # str pieces, then one Answer

Models load on first use: opening an assistant in lexical mode loads none; the embedding model (hybrid
mode) is loaded by the index store, the reranker and LLM backends when first needed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from index.embedding import Embedder
from index.protocols import IndexReader, WindowReader
from index.stores import store_location
from rag.errors import IndexingCancelledError, IndexUnavailableError, InvalidArgumentError, RagError
from rag.protocols import Retriever
from rag.records import Answer, Passage
from rag.settings import Settings, load_settings

if TYPE_CHECKING:
    from index.build import BuildReport
    from index.config import IndexConfig
    from rag.backends.base import Generator
    from rag.chain import AnswerChain
    from rag.evidence import EvidenceScorer
    from rag.retrieval import PassageRetriever

ProgressCallback = Callable[[int, int, str], None]
_T = TypeVar("_T")


def _with_index_dir(settings: Settings, index_dir: str | Path | None) -> Settings:
    if index_dir is None:
        return settings
    if not isinstance(index_dir, str | os.PathLike):
        raise InvalidArgumentError(f"index_dir must be a folder path (str or Path), got {index_dir!r:.60}.")
    return settings.model_copy(
        update={"index": settings.index.model_copy(update={"index_dir": Path(index_dir)})}
    )


def _index_command(settings: Settings) -> str:
    return f"rag index <files or folders> --index-dir {settings.index.index_dir}"


def _open_store(settings: Settings, embedder: Embedder | None = None) -> IndexReader:
    """Open the index of `settings.index.index_dir`; index errors become `IndexUnavailableError`.

    The one place the retrieval mode is chosen: the store is hybrid only when it holds vectors and the
    model is loaded, which this skips when lexical-only is configured."""
    from index.errors import IndexError_, IndexNotFoundError
    from index.stores import open_store

    # lexical_only: keep the vectors on disk but load no model (faster start, no torch).
    lexical_only = settings.retrieval.lexical_only or not settings.index.embedding_model
    try:
        return open_store(
            settings.index, embedder=None if lexical_only else embedder, load_model=not lexical_only
        )
    except IndexNotFoundError as exc:
        message = str(exc)
        if "rag index" not in message:
            message = (
                f"No index in {store_location(settings.index)}. Build one first: {_index_command(settings)}"
            )
        raise IndexUnavailableError(message) from exc
    except IndexError_ as exc:
        raise IndexUnavailableError(f"{exc}") from exc


@dataclass(frozen=True)
class _GivenStages:
    """Stages given to `Assistant` instead of built (how tests plug in fakes), reused by every generation."""

    retriever: Retriever | None = None
    generators: Mapping[str, Generator] = field(default_factory=dict)


class _Reader:
    """One index generation and what is built over it, lazily (see `Assistant`). It never changes: adding
    documents makes a new `_Reader`.

    Its stages are built on first use by the builder functions of `rag.builders`, except those `given`.
    """

    def __init__(self, settings: Settings, store: IndexReader, given: _GivenStages = _GivenStages()) -> None:
        self.settings = settings
        self._store = store
        self._lock = threading.RLock()
        self._scorer: EvidenceScorer | None = None
        self._retriever: Retriever | None = given.retriever
        self._generators: dict[str, Generator] = dict(given.generators)
        self._chains: dict[str, AnswerChain] = {}

    @property
    def store(self) -> IndexReader:
        return self._store

    def language_of(self, doc_id: str) -> str:
        """The language of a document (detected once, when it was indexed)."""
        return self._store.document_language(doc_id)

    @property
    def scorer(self) -> EvidenceScorer:
        if self._scorer is None:
            from rag.builders import build_scorer

            self._scorer = build_scorer(self._store)
        return self._scorer

    @property
    def retriever(self) -> Retriever:
        if self._retriever is None:
            from rag.builders import build_reranker, build_retriever

            self._retriever = build_retriever(self._store, self.settings, build_reranker(self.settings))
        return self._retriever

    def generator(self, backend: str | None = None) -> Generator:
        from rag.builders import build_generator

        name = backend or self.settings.llm.backend
        return self._per_backend(
            self._generators,
            name,
            lambda: build_generator(self.settings, name, scorer=self.scorer, language_of=self.language_of),
        )

    def chain(self, backend: str | None = None) -> AnswerChain:
        """The `AnswerChain` for a backend (its `.runnable` is the LCEL chain)."""
        from rag.builders import build_chain

        name = backend or self.settings.llm.backend
        return self._per_backend(
            self._chains,
            name,
            lambda: build_chain(
                self.settings, self._store, self.retriever, self.generator(name), self.scorer
            ),
        )

    def _per_backend(self, built: dict[str, _T], name: str, build: Callable[[], _T]) -> _T:
        """`built[name]`, built once (under the lock: two first questions do not build it twice)."""
        if not isinstance(name, str):
            raise InvalidArgumentError(
                f"backend must be the name of a backend (str, e.g. 'extractive' or 'ollama'), got {name!r:.40}."
            )
        with self._lock:
            if name not in built:
                built[name] = build()
            return built[name]

    def embed_ahead(self, question: str, history: list[dict] | None, backend: str | None) -> bool:
        """See `Assistant.embed_ahead`."""
        if self._store.mode != "hybrid" or not isinstance(self._store, WindowReader):
            return False
        query = self.chain(backend).search_query(question, history)
        return query is not None and self._store.query_vector(query) is not None

    def status(self) -> dict[str, Any]:
        """What the assistant runs on; `models` maps each available backend to the model it would use."""
        embedder = self._store.embedder
        backends = _available_backends(self.settings)
        return {
            "retrieval_mode": self._store.mode,
            "embedding_model": embedder.name if embedder is not None else None,
            "backend": self.settings.llm.backend,
            "backends": backends,
            "models": {name: _model_for(self.settings, name) for name in backends},
            "documents": self._store.document_count(),
            "chunks": len(self._store.chunks),
            "index_dir": store_location(self.settings.index),
        }


class Assistant:
    """Answers questions over one index. Build it with `open_assistant` or `build_assistant`.

    Questions never wait for each other nor for `add_documents`: each call takes the current generation
    (a `_Reader`: the loaded index with its retriever, scorer and chains) once and uses it to the end.
    `add_documents` builds the next generation beside it and switches it in with one assignment; answers
    already running finish on the generation they started with. Writers wait for each other.
    """

    def __init__(
        self,
        settings: Settings,
        store: IndexReader,
        *,
        retriever: Retriever | None = None,
        generators: Mapping[str, Generator] | None = None,
    ) -> None:
        """`retriever`, `generators` (by backend name): stages given instead of built, for every generation
        (how tests plug in fakes; see `_Reader`)."""
        self.settings = settings
        self._given = _GivenStages(retriever, dict(generators or {}))
        self._reader = _Reader(settings, store, self._given)
        self._write_lock = threading.Lock()

    # --- the current generation (read side) ---------------------------------------------------------------
    @property
    def store(self) -> IndexReader:
        return self._reader.store

    @property
    def scorer(self) -> EvidenceScorer:
        return self._reader.scorer

    @property
    def retriever(self) -> Retriever:
        return self._reader.retriever

    @property
    def _generators(self) -> dict[str, Generator]:  # the current generation's, by backend name
        return self._reader._generators

    def language_of(self, doc_id: str) -> str:
        return self._reader.language_of(doc_id)

    def corpus_languages(self) -> set[str]:
        return self._reader.corpus_languages()

    def generator(self, backend: str | None = None) -> Generator:
        return self._reader.generator(backend)

    def chain(self, backend: str | None = None) -> AnswerChain:
        """The `AnswerChain` for a backend (its `.runnable` is the LCEL chain)."""
        return self._reader.chain(backend)

    def ask(
        self,
        question: str,
        history: list[dict] | None = None,
        *,
        top_k: int | None = None,
        backend: str | None = None,
    ) -> Answer:
        """Answer `question` (with the conversation so far in `history`) from the indexed documents."""
        _check_arguments(question, history, top_k, self.settings.ui.max_question_chars)
        return self._reader.chain(backend).invoke(question, history, top_k)

    def stream(
        self,
        question: str,
        history: list[dict] | None = None,
        *,
        top_k: int | None = None,
        backend: str | None = None,
    ) -> Iterator[str | Answer]:
        """Text pieces as they are generated, then exactly one final `Answer`."""
        # The generation is taken now, at the call: the answer ends on the generation it began on.
        return _stream(self._reader, question, history, top_k, backend)

    def embed_ahead(
        self, question: str, history: list[dict] | None = None, *, backend: str | None = None
    ) -> bool:
        """Embed now the query the answer to `question` will search with (hybrid mode), so that the answer
        finds its vector ready (the store memoises it). Optional: an answer embeds its query itself.

        For a server that answers a few questions at a time (one per core): called by each question
        *before* it waits for its turn, the questions waiting together are embedded in shared model calls
        (`index.query_batcher`), at a fraction of the CPU of one call each. True when a vector was
        computed (or already known); False in lexical mode, or when an LLM must rewrite the question first
        (its query is not known before that model call)."""
        _check_arguments(question, history, None, self.settings.ui.max_question_chars)
        return self._reader.embed_ahead(question, history, backend)

    def retrieve(self, question: str, k: int | None = None, *, merge: bool = True) -> list[Passage]:
        """The passages of the `k` best chunks for `question` (no condensing, no generation); touching
        chunks are merged into one passage unless `merge` is False (one passage per chunk, in rank order)."""
        from rag.chain import question_language

        _check_question(question, self.settings.ui.max_question_chars)
        _check_top_k(k, "k")
        return self._reader.retriever.retrieve(question, question_language(question), k, merge=merge)

    def status(self) -> dict[str, Any]:
        """What the assistant runs on; `models` maps each available backend to the model it would use."""
        return self._reader.status()

    def as_langchain_retriever(self, k: int | None = None) -> PassageRetriever:
        """This assistant's retrieval as a LangChain `BaseRetriever` (Documents with source metadata)."""
        from rag.retrieval import PassageRetriever

        _check_top_k(k, "k")
        return PassageRetriever(retrieve=self.retrieve, k=k)

    # --- writing ---------------------------------------------------------------------------------------------
    def add_documents(
        self,
        paths: Sequence[str | Path],
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        in_subprocess: bool = False,
    ) -> BuildReport:
        """Index more files into the same index (incremental), then switch to it. Returns the `BuildReport`.

        `cancel`: set it to stop; `IndexingCancelledError` is raised and the index stays as it was (a
        generation is only committed complete). `in_subprocess`: build in a child process at lower CPU
        priority (what a server wants: indexing never holds this process's interpreter lock, so answers
        keep their speed); the child loads the embedding model itself in hybrid mode.
        """
        paths = _check_paths(paths)
        with self._write_lock:
            if cancel is not None and cancel.is_set():
                raise IndexingCancelledError(CANCELLED_MESSAGE)
            with _index_errors_as_rag_errors():
                if in_subprocess:
                    report = _build_in_child(paths, self.settings.index, on_progress, cancel)
                else:
                    report = _build_here(paths, self.settings, self.store, on_progress, cancel)
            self._switch_to(_open_store(self.settings, self.store.embedder))
        return report

    def _switch_to(self, store: IndexReader) -> None:
        reader = _Reader(self.settings, store, self._given)
        reader.chain()  # built before the switch: the first question after it does not pay for it
        self._reader = reader

    def with_private_index(self, index_dir: str | Path) -> Assistant:
        """A view for one person: it searches this assistant's index together with the index in
        `index_dir` (their own documents; created by the first `add_documents` of the view), and adds
        documents into that one only. It follows this assistant: a new shared generation is used as soon
        as it is switched in. Nobody else's answers change with the private documents."""
        return _PrivateView(self, Path(index_dir))


class _PrivateView(Assistant):
    """See `Assistant.with_private_index`."""

    def __init__(self, shared: Assistant, index_dir: Path) -> None:
        # Always a folder index, also when the shared corpus is in PostgreSQL (`index.store_url`): a user's
        # documents must never be written into the database everybody searches. One small folder per user
        # beside it is the simple choice (a per-user collection in the database would need every query
        # of the store to filter by owner).
        settings = _with_index_dir(shared.settings, index_dir)
        self.settings = settings.model_copy(
            update={"index": settings.index.model_copy(update={"store_url": ""})}
        )
        self._shared = shared
        self._given = _GivenStages()
        self._write_lock = threading.Lock()
        self._own: IndexReader | None = None
        self._combined: tuple[_Reader, IndexReader, _Reader] | None = None
        self._combine_lock = threading.Lock()
        with contextlib.suppress(IndexUnavailableError):  # no private documents yet
            self._own = _open_store(self.settings, shared.store.embedder)

    @property
    def _reader(self) -> _Reader:  # type: ignore[override]
        shared, own = self._shared._reader, self._own
        if own is None:
            return shared
        with self._combine_lock:
            if self._combined is None or self._combined[0] is not shared or self._combined[1] is not own:
                from rag.collections import CombinedIndex

                reader = _Reader(self._shared.settings, CombinedIndex([shared.store, own]))
                self._combined = (shared, own, reader)
            return self._combined[2]

    def _switch_to(self, store: IndexReader) -> None:
        self._own = store
        self._reader.chain()  # the combined reader, built before the first question needs it


def _stream(
    reader: _Reader, question: str, history: list[dict] | None, top_k: int | None, backend: str | None
) -> Iterator[str | Answer]:
    _check_arguments(question, history, top_k, reader.settings.ui.max_question_chars)
    yield from reader.chain(backend).stream(question, history, top_k)


CANCELLED_MESSAGE = "Indexing cancelled: nothing was added, the index is as it was."
INDEXING_THREADS = 1  # CPU threads of a background indexing child (`add_documents(in_subprocess=True)`)


def _build_here(
    paths: list[Path],
    settings: Settings,
    store: IndexReader,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> BuildReport:
    from index.build import build_index

    def progress(done: int, total: int, message: str) -> None:
        if cancel is not None and cancel.is_set():
            raise IndexingCancelledError(CANCELLED_MESSAGE)  # build_index commits nothing before the end
        if on_progress is not None:
            on_progress(done, total, message)

    from index.build import AUTO

    return build_index(
        paths,
        settings.index,
        progress=on_progress is None and settings.index.show_progress,
        on_progress=progress,
        # Reuse the loaded model; else build_index loads the configured one.
        embedder=store.embedder if store.embedder is not None else AUTO,
    )


def _build_in_child(
    paths: list[Path],
    index_config: IndexConfig,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> BuildReport:
    """`build_index` in a spawned child process; progress comes back through a queue; `cancel` kills it
    (safe: the index lock is a flock the kernel releases, and an unfinished generation is never current)."""
    import multiprocessing
    import queue as queues

    context = multiprocessing.get_context("spawn")  # never fork a process that runs threads
    messages = context.Queue()
    child = context.Process(
        target=_child_build, args=([str(p) for p in paths], index_config, messages), daemon=True
    )
    child.start()
    try:
        while True:
            if cancel is not None and cancel.is_set():
                child.terminate()
                child.join(timeout=10)
                late = _drain_report(messages)
                if late is not None:  # the child had committed its generation before it was stopped
                    return late
                raise IndexingCancelledError(CANCELLED_MESSAGE)
            try:
                kind, *payload = messages.get(timeout=0.2)
            except queues.Empty:
                if not child.is_alive() and messages.empty():
                    raise RagError(
                        f"Indexing stopped unexpectedly (exit code {child.exitcode}); the index is as it was."
                    ) from None
                continue
            if kind == "progress":
                if on_progress is not None:
                    on_progress(*payload)
            elif kind == "done":
                return payload[0]
            else:
                error_type, message = payload
                raise error_type(message)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()


def _drain_report(messages: Any) -> BuildReport | None:
    import queue as queues

    while True:
        try:
            kind, *payload = messages.get(timeout=0.1)
        except (queues.Empty, OSError, EOFError):
            return None
        if kind == "done":
            return payload[0]


def _yield_to_answers() -> None:
    """In a background indexing child: lower CPU priority, and one core at most. The parent serves
    questions: they come first. Niced alone, with torch's threads on both of two cores, the answers written
    meanwhile were 21 % slower (idle machine, `eval.benchmarks.concurrency` upload scenario); on one core
    the other stays free for them, at the cost of a slower indexing on an idle machine. The child is bound
    to one core (the ONNX path sizes its passage workers by the cores it may use) and torch's thread count
    set before torch is imported here (a spawned child loads nothing of the parent's), or on torch if it
    already is."""
    with contextlib.suppress(OSError):
        os.nice(10)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(INDEXING_THREADS)
    if hasattr(os, "sched_setaffinity"):  # also what sizes the ONNX path's passage workers
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) > INDEXING_THREADS:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, set(cpus[-INDEXING_THREADS:]))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(INDEXING_THREADS)


def _child_build(paths: list[str], index_config: IndexConfig, messages: Any) -> None:
    """Runs in the child process of `_build_in_child`."""
    from index.build import build_index

    _yield_to_answers()
    try:
        with _index_errors_as_rag_errors():
            report = build_index(
                [Path(p) for p in paths],
                index_config,
                progress=False,
                on_progress=lambda done, total, message: messages.put(("progress", done, total, message)),
            )
        messages.put(("done", report))
    except RagError as exc:
        messages.put(("error", type(exc), str(exc)))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it for the caller
        messages.put(("error", RagError, f"Indexing failed ({type(exc).__name__}): {exc}"))


@contextlib.contextmanager
def _index_errors_as_rag_errors() -> Iterator[None]:
    """Errors of the indexer (locked, damaged, mismatched index, bad folder) reach API users as RagErrors."""
    from index.errors import IndexError_

    try:
        yield
    except IndexError_ as exc:
        raise IndexUnavailableError(str(exc)) from exc


# -- argument checks: wrong types fail here, with the argument's name, not deep inside the chain ----------
HISTORY_ROLES = ("user", "assistant", "system")


def _check_question(question: object, max_chars: int) -> None:
    """Text, not blank, at most `max_chars` characters (`ui.max_question_chars`: one limit for the page and
    the API; a question of a million characters took the lexical analysis minutes)."""
    if not isinstance(question, str):
        raise InvalidArgumentError(
            f"The question must be text (str), got {type(question).__name__}: {question!r:.60}. "
            'Pass the question as a string, e.g. ask("Qui dirige OpenAI ?").'
        )
    if not question.strip():
        raise InvalidArgumentError("The question is empty: type a question about your documents.")
    if len(question) > max_chars:
        raise InvalidArgumentError(
            f"The question is {len(question):,} characters long; the limit is {max_chars:,}. Ask a shorter "
            "question (the documents are searched for you: there is no need to paste them), or raise the "
            "limit with ui.max_question_chars (RAG_UI__MAX_QUESTION_CHARS)."
        )


def _check_history(history: object) -> None:
    """None, or a list of {"role": "user"|"assistant"|"system", "content": str} (the OpenAI/Gradio form)."""
    if history is None:
        return
    example = '[{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]'
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise InvalidArgumentError(
            f"history must be a list of turns like {example}, got {type(history).__name__}."
        )
    for number, turn in enumerate(history):
        if not isinstance(turn, Mapping) or "role" not in turn or "content" not in turn:
            raise InvalidArgumentError(
                f"history[{number}] must be a dict with 'role' and 'content', got {turn!r:.60}; "
                f"history looks like {example}."
            )
        if turn["role"] not in HISTORY_ROLES:
            raise InvalidArgumentError(
                f"history[{number}]['role'] is {turn['role']!r:.40}; it must be one of {', '.join(HISTORY_ROLES)}."
            )


def _top_k_bounds() -> tuple[int, int]:
    """top_k's range, read from the settings model (one place decides it)."""
    from rag.settings import RetrievalSettings

    low, high = 1, 100
    for rule in RetrievalSettings.model_fields["top_k"].metadata:
        low = getattr(rule, "ge", low)
        high = getattr(rule, "le", high)
    return low, high


def _check_top_k(top_k: object, name: str = "top_k") -> None:
    if top_k is None:
        return
    low, high = _top_k_bounds()
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not low <= top_k <= high:
        raise InvalidArgumentError(
            f"{name} must be a whole number between {low} and {high} (passages to retrieve), got {top_k!r:.40}."
        )


def _check_arguments(question: object, history: object, top_k: object, max_chars: int) -> None:
    _check_question(question, max_chars)
    _check_history(history)
    _check_top_k(top_k)


def _check_paths(paths: object) -> list[Path]:
    """A path or a list of paths -> Paths; each must exist (InvalidArgumentError names the missing ones)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    if isinstance(paths, bytes) or not isinstance(paths, Sequence | set | frozenset):
        raise InvalidArgumentError(
            f"paths must be a list of files or folders, got {type(paths).__name__}: {paths!r:.60}."
        )
    bad = [p for p in paths if not isinstance(p, (str, os.PathLike))]
    if bad:
        raise InvalidArgumentError(f"paths must hold file or folder paths (str or Path), got {bad[0]!r:.60}.")
    resolved = [Path(p).expanduser() for p in paths]
    missing = [str(p) for p in resolved if not p.exists()]
    if missing:
        raise InvalidArgumentError(
            f"The path {missing[0]!r} does not exist (paths). Check the spelling, or give an existing file or folder."
        )
    return resolved


def _check_settings(settings: object) -> Settings:
    """None -> the settings of the file and environment (`load_settings()`); anything else but a `Settings`
    is refused, naming what to pass (a dict or a file name would fail later, deep inside, unexplained)."""
    if settings is None:
        return load_settings()
    if not isinstance(settings, Settings):
        raise InvalidArgumentError(
            f"settings must be a rag.Settings, got {type(settings).__name__}: {settings!r:.60}. "
            "Build it with rag.load_settings() (a TOML file: load_settings('rag.toml'); single values: "
            "load_settings(overrides={'retrieval.top_k': 8}))."
        )
    return settings


def _available_backends(settings: Settings) -> list[str]:
    from rag.backends import available_backends

    return list(available_backends(settings))


def _model_for(settings: Settings, backend: str) -> str | None:
    from rag.backends import model_for

    return model_for(settings, backend)


def open_assistant(settings: Settings | None = None, *, index_dir: str | Path | None = None) -> Assistant:
    """Open the existing index of `settings.index.index_dir` (or `index_dir`).

    Raises `IndexUnavailableError` (a `RagError`) with the command that builds the index when there is none.
    """
    settings = _with_index_dir(_check_settings(settings), index_dir)
    return Assistant(settings, _open_store(settings))


def build_assistant(
    paths: Sequence[str | Path],
    settings: Settings | None = None,
    *,
    on_progress: ProgressCallback | None = None,
) -> Assistant:
    """Index (or update, incrementally) `paths` into `settings.index.index_dir`, then open it."""
    from index.build import build_index

    paths = _check_paths(paths)
    settings = _check_settings(settings)
    embedder = None
    if settings.index.embedding_model:
        from index.embedding import load_embedder

        # Loaded once for building and searching; None (with a printed warning) means lexical mode.
        embedder = load_embedder(settings.index)
    with _index_errors_as_rag_errors():
        build_index(
            paths,
            settings.index,
            embedder=embedder,
            progress=on_progress is None and settings.index.show_progress,
            on_progress=on_progress,
        )
    return Assistant(settings, _open_store(settings, embedder))
