"""Scripted doubles for the eval tests: an assistant over line chunks and a hash embedder.

FakeAssistant answers like the extractive backend would, deterministically: word-overlap retrieval over
the lines of the documents, the top line as the answer with one [1] citation, abstention below a score.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from eval.runner import Corpus
from rag.records import Answer, Citation, Passage

_WORD = re.compile(r"\w{4,}")


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


class FakeAssistant:
    def __init__(self, documents: dict[str, str], docs_dir: Path, min_score: int = 2) -> None:
        self.min_score = min_score
        self.chunks: list[tuple[str, int, int, str]] = []
        self.docs_dir = docs_dir
        for doc in sorted(documents):
            text = documents[doc]
            position = 0
            for line in text.split("\n"):
                if line.strip():
                    self.chunks.append((doc, position, position + len(line), line))
                position += len(line) + 1

    def retrieve(self, question: str, k: int | None = None, *, merge: bool = True) -> list[Passage]:
        query = _words(question)
        scored = [(len(query & _words(c[3])), i) for i, c in enumerate(self.chunks)]
        ranked = sorted((s for s in scored if s[0] > 0), key=lambda s: (-s[0], s[1]))[: k or 5]
        return [
            Passage(
                number=n,
                chunk_ids=[f"c{i}"],
                doc_id=self.chunks[i][0],
                source=str(self.docs_dir / self.chunks[i][0]),
                title=self.chunks[i][0],
                text=self.chunks[i][3],
                start=self.chunks[i][1],
                end=self.chunks[i][2],
                score=float(score),
            )
            for n, (score, i) in enumerate(ranked, 1)
        ]

    def ask(self, question, history=None, *, top_k=None, backend=None) -> Answer:
        passages = self.retrieve(question, top_k or 3)
        best = passages[0].score if passages else 0
        if best < self.min_score:
            return Answer(
                question,
                question,
                "Les documents ne le disent pas.",
                "fr",
                [],
                passages,
                True,
                timings={"retrieve": 0.001, "generate": 0.0},
                backend="fake",
            )
        top = passages[0]
        citation = Citation(
            1, top.chunk_ids[0], top.doc_id, top.source, top.text, top.text, top.start, top.end, 1.0, True
        )
        return Answer(
            question,
            question,
            top.text + " [1]",
            "fr",
            [citation],
            passages,
            False,
            timings={"retrieve": 0.001, "generate": 0.002},
            backend="fake",
        )

    def status(self) -> dict:
        return {
            "retrieval_mode": "lexical",
            "embedding_model": None,
            "backend": "fake",
            "backends": ["fake"],
            "documents": len({c[0] for c in self.chunks}),
            "chunks": len(self.chunks),
            "index_dir": "-",
        }


class HashEmbedder:
    """Deterministic unit vectors from word hashes: enough to exercise the LangChain/FAISS baseline."""

    name = "hash-embedder"
    dimension = 64
    passage_prompt = ""

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in _words(text):
            vector[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def embed_passages(self, texts, *, show_progress=False, on_progress=None) -> np.ndarray:
        return (
            np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)
        )

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def fake_corpus_factory(dataset, settings) -> Corpus:
    return Corpus(assistant=FakeAssistant(dataset.documents, dataset.docs_dir), embedder=HashEmbedder())
