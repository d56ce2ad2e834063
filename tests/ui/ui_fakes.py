"""A scripted stand-in for `rag.Assistant` that follows the public contract exactly.

`stream` yields text pieces, then one final `Answer`. Retrieval is word overlap over paragraphs, which is
enough to drive the page; the real assistant is exercised by the browser tests over seeds/.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from rag.errors import IndexingCancelledError
from rag.records import Answer, Citation, CitationReport, Passage
from rag.settings import Settings

_WORD = re.compile(r"\w+")


@dataclass
class FakeReport:
    files: int
    chunks: int
    new_files: int = 0
    changed_files: int = 0
    removed_files: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


class FakeAssistant:
    """Paragraph retrieval + 'first sentence of the best paragraph [1]' answers."""

    def __init__(
        self,
        paths: Sequence[Path],
        settings: Settings | None = None,
        *,
        fail_backends: dict[str, Exception] | None = None,
        delay: float = 0.0,
        index_delay: float = 0.0,
    ):
        self.settings = settings or Settings()
        self.delay = delay
        self.index_delay = index_delay
        self.fail_backends = fail_backends or {}  # backend name -> the exception its answers raise
        self.paragraphs: list[tuple[str, str, int]] = []  # (source, paragraph, start offset)
        self.calls: list[dict] = []
        self.indexed: list[list[Path]] = []  # the paths of every add_documents call, in order
        for path in paths:
            self._load(Path(path))

    def _load(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8")
        offset = 0
        for paragraph in text.split("\n"):
            if paragraph.strip():
                self.paragraphs.append((str(path), paragraph, offset))
            offset += len(paragraph) + 1

    def retrieve(self, question: str, k: int | None = None, *, merge: bool = True) -> list[Passage]:
        words = {w.lower() for w in _WORD.findall(question) if len(w) > 3}
        scored = []
        for index, (source, paragraph, start) in enumerate(self.paragraphs):
            overlap = len(words & {w.lower() for w in _WORD.findall(paragraph)})
            if overlap:
                scored.append((overlap, -index, source, paragraph, start))
        scored.sort(reverse=True)
        return [
            Passage(
                number=n,
                chunk_ids=[f"c{-neg}"],
                doc_id=Path(source).name,
                source=source,
                title=Path(source).stem,
                text=paragraph,
                start=start,
                end=start + len(paragraph),
                score=float(score),
            )
            for n, (score, neg, source, paragraph, start) in enumerate(scored[: k or 3], start=1)
        ]

    def generator(self, backend: str | None = None) -> SimpleNamespace:
        """Streams its words one by one, slowly when asked to: an LLM, as far as the page can tell."""
        return SimpleNamespace(name=backend or "fake", is_llm=True)

    def embed_ahead(
        self, question: str, history: list[dict] | None = None, *, backend: str | None = None
    ) -> bool:
        return False  # no vectors: a lexical assistant, as far as the page can tell

    def stream(
        self,
        question: str,
        history: list[dict] | None = None,
        *,
        top_k: int | None = None,
        backend: str | None = None,
    ) -> Iterator[str | Answer]:
        self.calls.append(
            {"question": question, "history": list(history or []), "top_k": top_k, "backend": backend}
        )
        if backend in self.fail_backends:
            raise self.fail_backends[backend]
        standalone = question if not history else f"{history[-2]['content']} — {question}"
        passages = self.retrieve(standalone, top_k)
        if not passages:
            text = "Je ne trouve pas la réponse dans les documents."
            yield text
            yield Answer(question, standalone, text, "fr", [], [], True, backend=backend or "fake")
            return
        best = passages[0]
        sentence = re.split(r"(?<=[.!?])\s", best.text)[0]
        text = f"{sentence} [1]"
        for word in re.findall(r"\S+\s*", text):
            time.sleep(self.delay)  # lets a test see the answer grow
            yield word
        citation = Citation(
            1,
            best.chunk_ids[0],
            best.doc_id,
            best.source,
            text,
            sentence,
            best.start,
            best.start + len(sentence),
            0.9,
            True,
        )
        yield Answer(
            question,
            standalone,
            text,
            "fr",
            [citation],
            passages,
            False,
            CitationReport(),
            {"generate": 0.01},
            backend or "fake",
            "lexical",
        )

    def ask(self, question: str, history: list[dict] | None = None, **kwargs) -> Answer:
        *_, answer = self.stream(question, history, **kwargs)
        return answer

    def add_documents(
        self,
        paths: Sequence[Path],
        *,
        on_progress: Callable[[int, int, str], None] | None = None,
        cancel: threading.Event | None = None,
        in_subprocess: bool = False,
    ):
        self.indexed.append([Path(p) for p in paths])
        loaded = []
        for done, path in enumerate(paths, start=1):
            time.sleep(self.index_delay)  # lets a test see the progress bar
            if cancel is not None and cancel.is_set():
                raise IndexingCancelledError("Indexing cancelled: nothing was added, the index is as it was.")
            loaded.append(Path(path))
            if on_progress:
                on_progress(done, len(paths), "reading")
        for path in loaded:  # all or nothing, like the real index
            self._load(path)
        return FakeReport(files=len(paths), chunks=len(self.paragraphs), new_files=len(paths))

    def status(self) -> dict:
        return {
            "retrieval_mode": "lexical",
            "embedding_model": None,
            "backend": "extractive",
            "backends": ["extractive", "fake", *self.fail_backends],  # "fake": a streaming model (tests)
            "documents": len({s for s, _, _ in self.paragraphs}),
            "chunks": len(self.paragraphs),
            "index_dir": str(self.settings.index.index_dir),
        }
