"""Sentence windows: the units of evidence an answer quotes and checks, found and embedded at index time.

A window is one sentence of a document, plus the sentence before it when it cannot stand alone: it opens
with a pronoun or demonstrative ("80 milliards de dollars. C'est la valorisation…") or follows a fragment
of a few words (a figure, a name, a heading). Windows are computed once per document when it is indexed
and, in hybrid mode, embedded with the passage prompt, so that answering needs no model call beyond the
question's own embedding: the abstention gate, the extractive answer and the citation check read the
cosine of the question with each window of the retrieved passages from the index (see `rag.evidence`).

`WindowTable` is the on-disk form, one row per window in document order: the document's row in the
index's document list, the window's start, its sentence's start and its end (character offsets into the
document's text), and its vector (float16: half the disk and memory, cosines unchanged to ~1e-3). A store
keeps the table of its documents; an incremental build reuses the rows of unchanged documents and embeds
only the windows of new or changed ones. Another store (PostgreSQL) keeps the same four integers and the
vector per window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index.sentences import split_sentences

WINDOWS_FILE = "windows.npz"

# A sentence that opens with a pronoun or demonstrative leans on the previous one.
_ANAPHORIC_START = re.compile(
    r"^(c['’]est|ce|cet|cette|ces|cela|ceci|ça|il|elle|ils|elles|celui|celle|ceux|celles|"
    r"it|this|that|these|those|he|she|they|es|er|sie|das|dies|dieser|diese|dieses)\b",
    re.IGNORECASE,
)
FRAGMENT_WORDS = 6  # a "sentence" this short is a fragment (a figure, a name) that the next one explains


@dataclass(frozen=True, slots=True)
class WindowSpan:
    """Offsets into the document's text: the window is text[start:end], its own sentence text[sentence:end]."""

    start: int
    sentence: int
    end: int


def document_windows(text: str) -> list[WindowSpan]:
    """The windows of a document's text, in order (one per sentence)."""
    sentences = split_sentences(text)
    windows = []
    for index, sentence in enumerate(sentences):
        start = sentence.start
        if index > 0:
            previous = sentences[index - 1]
            own, before = text[sentence.start : sentence.end], text[previous.start : previous.end]
            leans = _ANAPHORIC_START.match(own) or len(before.split()) <= FRAGMENT_WORDS
            # Only within one paragraph: a window never swallows the heading or paragraph above it.
            if leans and "\n\n" not in text[previous.end : sentence.start]:
                start = previous.start
        windows.append(WindowSpan(start, sentence.start, sentence.end))
    return windows


class WindowTable:
    """Windows of every indexed document (rows in document order), with vectors in hybrid mode."""

    def __init__(
        self,
        doc_rows: np.ndarray,
        starts: np.ndarray,
        sentences: np.ndarray,
        ends: np.ndarray,
        vectors: np.ndarray | None,
    ) -> None:
        self.doc_rows = np.asarray(doc_rows, dtype=np.int32)
        self.starts = np.asarray(starts, dtype=np.int32)
        self.sentences = np.asarray(sentences, dtype=np.int32)
        self.ends = np.asarray(ends, dtype=np.int32)
        self.vectors = None if vectors is None else np.asarray(vectors, dtype=np.float16)
        # Rows of document d: bounds[d] .. bounds[d + 1] (rows are grouped by document, in order).
        count = int(self.doc_rows.max()) + 1 if len(self.doc_rows) else 0
        self.bounds = np.searchsorted(self.doc_rows, np.arange(count + 1)).astype(np.int64)

    def __len__(self) -> int:
        return len(self.starts)

    def rows_of(self, doc_row: int) -> range:
        if doc_row + 1 >= len(self.bounds):
            return range(0)
        return range(int(self.bounds[doc_row]), int(self.bounds[doc_row + 1]))

    def spans_of(self, doc_row: int) -> list[tuple[int, WindowSpan]]:
        """(table row, span) of each window of a document."""
        return [
            (row, WindowSpan(int(self.starts[row]), int(self.sentences[row]), int(self.ends[row])))
            for row in self.rows_of(doc_row)
        ]

    def take_documents(self, doc_rows: np.ndarray) -> WindowTable:
        """The windows of the documents `doc_rows` (ascending), renumbered 0..len-1: what an incremental
        build keeps of the previous table, by numpy masks."""
        doc_rows = np.asarray(doc_rows, dtype=np.int64)
        position = np.full(len(self.bounds), -1, dtype=np.int64)
        position[doc_rows] = np.arange(len(doc_rows))
        new_rows = position[self.doc_rows]
        keep = new_rows >= 0
        vectors = None if self.vectors is None else self.vectors[keep]
        return WindowTable(new_rows[keep], self.starts[keep], self.sentences[keep], self.ends[keep], vectors)

    def extended(self, other: WindowTable, documents: int) -> WindowTable:
        """This table (of `documents` documents) followed by `other`'s windows, its documents numbered
        after ours."""
        if (self.vectors is None) != (other.vectors is None):
            raise ValueError("WindowTable.extended: one table has vectors, the other none")
        vectors = None
        if self.vectors is not None and other.vectors is not None:
            vectors = np.concatenate([self.vectors, other.vectors])
        return WindowTable(
            np.concatenate([self.doc_rows, other.doc_rows + documents]),
            np.concatenate([self.starts, other.starts]),
            np.concatenate([self.sentences, other.sentences]),
            np.concatenate([self.ends, other.ends]),
            vectors,
        )

    def save(self, folder: Path) -> Path:
        arrays = {
            "doc_rows": self.doc_rows,
            "starts": self.starts,
            "sentences": self.sentences,
            "ends": self.ends,
        }
        if self.vectors is not None:
            arrays["vectors"] = self.vectors
        path = folder / WINDOWS_FILE
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, folder: Path) -> WindowTable | None:
        """The table of a generation; None for an index written before windows were stored."""
        path = folder / WINDOWS_FILE
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            vectors = data["vectors"] if "vectors" in data.files else None
            return cls(data["doc_rows"], data["starts"], data["sentences"], data["ends"], vectors)


def build_window_table(
    texts: Sequence[str],
    reused: Sequence[tuple[WindowTable, int] | None],
    embed: object | None,
    dimension: int = 0,
) -> tuple[WindowTable, int]:
    """The window table of documents `texts` (in index order).

    `reused[i]`: (previous table, previous document row) when document i is unchanged and its windows
    (and vectors, in hybrid mode) can be copied, else None. `embed`: a function texts -> unit vectors
    (the embedder's `embed_passages`), None in lexical mode. Returns (table, windows embedded).
    """
    doc_rows: list[int] = []
    starts: list[int] = []
    sentences: list[int] = []
    ends: list[int] = []
    copied: list[tuple[int, WindowTable, int]] = []  # (new row, previous table, previous row)
    todo: list[int] = []
    for doc_row, (text, previous) in enumerate(zip(texts, reused, strict=True)):
        usable = previous is not None and (embed is None or previous[0].vectors is not None)
        if usable:
            table, old_doc = previous  # type: ignore[misc]
            for old_row, span in table.spans_of(old_doc):
                copied.append((len(starts), table, old_row))
                doc_rows.append(doc_row)
                starts.append(span.start)
                sentences.append(span.sentence)
                ends.append(span.end)
            continue
        for span in document_windows(text):
            todo.append(len(starts))
            doc_rows.append(doc_row)
            starts.append(span.start)
            sentences.append(span.sentence)
            ends.append(span.end)
    vectors = None
    if embed is not None:
        vectors = np.zeros((len(starts), dimension), dtype=np.float16)
        for row, table, old_row in copied:
            vectors[row] = table.vectors[old_row]  # type: ignore[index]
        if todo:
            window_texts = [texts[doc_rows[row]][starts[row] : ends[row]] for row in todo]
            vectors[todo] = np.asarray(embed(window_texts), dtype=np.float16)  # type: ignore[operator]
    table = WindowTable(np.array(doc_rows), np.array(starts), np.array(sentences), np.array(ends), vectors)
    return table, len(todo) if embed is not None else 0
