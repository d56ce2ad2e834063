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
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from index.embedding import Embedder
from index.protocols import IndexReader
from index.stores import store_location
from rag.errors import IndexUnavailableError, InvalidArgumentError
from rag.protocols import Retriever
from rag.records import Answer, Passage
from rag.settings import Settings, load_settings

if TYPE_CHECKING:
    from index.build import BuildReport
    from rag.backends.base import Generator
    from rag.chain import AnswerChain
    from rag.evidence import EvidenceScorer
    from rag.retrieval import PassageRetriever

ProgressCallback = Callable[[int, int, str], None]


def _with_index_dir(settings: Settings, index_dir: str | Path | None) -> Settings:
    if index_dir is None:
        return settings
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


class Assistant:
    """Answers questions over one index. Build it with `open_assistant` or `build_assistant`.

    Its stages are built on first use by the builder functions of `rag.builders`; any of them can be given
    instead (`retriever`, `generators` by backend name), which is how tests plug in fakes.
    """

    def __init__(
        self,
        settings: Settings,
        store: IndexReader,
        *,
        retriever: Retriever | None = None,
        generators: Mapping[str, Generator] | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._lock = threading.RLock()
        self._given_retriever = retriever
        self._given_generators = dict(generators or {})
        self._reset()

    def _reset(self) -> None:
        """Forget the stages built for the previous store (after `add_documents`)."""
        self._scorer: EvidenceScorer | None = None
        self._retriever: Retriever | None = self._given_retriever
        self._generators: dict[str, Generator] = dict(self._given_generators)
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
        name = backend or self.settings.llm.backend
        with self._lock:
            generator = self._generators.get(name)
            if generator is None:
                from rag.builders import build_generator

                generator = build_generator(
                    self.settings,
                    name,
                    scorer=self.scorer,
                    language_of=self.language_of,
                )
                self._generators[name] = generator
            return generator

    def chain(self, backend: str | None = None) -> AnswerChain:
        """The `AnswerChain` for a backend (its `.runnable` is the LCEL chain)."""
        name = backend or self.settings.llm.backend
        with self._lock:
            chain = self._chains.get(name)
            if chain is None:
                from rag.builders import build_chain

                chain = build_chain(
                    self.settings,
                    self._store,
                    self.retriever,
                    self.generator(name),
                    self.scorer,
                )
                self._chains[name] = chain
            return chain

    # --- public API ---------------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        history: list[dict] | None = None,
        *,
        top_k: int | None = None,
        backend: str | None = None,
    ) -> Answer:
        """Answer `question` (with the conversation so far in `history`) from the indexed documents."""
        _check_arguments(question, history, top_k)
        return self.chain(backend).invoke(question, history, top_k)

    def stream(
        self,
        question: str,
        history: list[dict] | None = None,
        *,
        top_k: int | None = None,
        backend: str | None = None,
    ) -> Iterator[str | Answer]:
        """Text pieces as they are generated, then exactly one final `Answer`."""
        _check_arguments(question, history, top_k)
        yield from self.chain(backend).stream(question, history, top_k)

    def retrieve(self, question: str, k: int | None = None, *, merge: bool = True) -> list[Passage]:
        """The passages of the `k` best chunks for `question` (no condensing, no generation); touching
        chunks are merged into one passage unless `merge` is False (one passage per chunk, in rank order)."""
        from rag.chain import question_language

        _check_question(question)
        _check_top_k(k, "k")
        return self.retriever.retrieve(question, question_language(question), k, merge=merge)

    def add_documents(
        self, paths: Sequence[str | Path], *, on_progress: ProgressCallback | None = None
    ) -> BuildReport:
        """Index more files into the same index (incremental), then reload it. Returns the `BuildReport`."""
        from index.build import AUTO, build_index

        with self._lock:
            with _index_errors_as_rag_errors():
                report = build_index(
                    _check_paths(paths),
                    self.settings.index,
                    progress=on_progress is None and self.settings.index.show_progress,
                    on_progress=on_progress,
                    # Reuse the loaded model; else build_index loads the configured one.
                    embedder=self._store.embedder if self._store.embedder is not None else AUTO,
                )
            self._store = _open_store(self.settings, self._store.embedder)
            self._reset()
        return report

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
            "documents": len({chunk.doc_id for chunk in self._store.chunks}),
            "chunks": len(self._store.chunks),
            "index_dir": store_location(self.settings.index),
        }

    def as_langchain_retriever(self, k: int | None = None) -> PassageRetriever:
        """This assistant's retrieval as a LangChain `BaseRetriever` (Documents with source metadata)."""
        from rag.retrieval import PassageRetriever

        return PassageRetriever(retrieve=self.retrieve, k=k)


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


def _check_question(question: object) -> None:
    if not isinstance(question, str):
        raise InvalidArgumentError(
            f"The question must be text (str), got {type(question).__name__}: {question!r:.60}. "
            'Pass the question as a string, e.g. ask("Qui dirige OpenAI ?").'
        )
    if not question.strip():
        raise InvalidArgumentError("The question is empty: type a question about your documents.")


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


def _check_arguments(question: object, history: object, top_k: object) -> None:
    _check_question(question)
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
    settings = _with_index_dir(settings or load_settings(), index_dir)
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
    settings = settings or load_settings()
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
