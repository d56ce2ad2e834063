"""Evaluation data: golden Q&A files over a folder of documents, and the PIAF benchmark.

Everything is turned into one record, `EvalItem`, whose evidence is located by character offsets in the
document file (never by searching the answer text later), so that metrics compare offsets only.

- Golden files (JSONL, see `shared/README.md`): `{"id", "question", "lang", "answerable", "answer",
  "evidence": [{"doc", "quote"}], "history"?: [{"role", "content"}], "tags"?: [...]}`. Every quote must be
  an exact substring of its document, otherwise loading fails and says which line to fix.
- PIAF (Etalab, MIT; paragraphs from French Wikipedia, CC BY-SA): every paragraph of both splits is written
  as one `<context id>.md` file in a cache folder (`# <article title>` then the paragraph, as it sits in its
  article), so that the product indexes them like any user folder; a question's evidence is its paragraph
  file as a whole.

This module reads files only; it builds no index and imports nothing heavy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PIAF_ATTRIBUTION = (
    "PIAF v1.1 (Etalab / DINUM; Keraron et al., LREC 2020), MIT License; paragraphs from French Wikipedia, "
    "CC BY-SA, credit to its contributors."
)
PIAF_SPLITS = ("dev", "test")
_ROLES = {"user", "assistant"}


class DatasetError(ValueError):
    """A golden file or benchmark folder is malformed; the message names the file, line and fix."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A span of a document that supports the answer: `text[start:end] == quote` of document `doc`."""

    doc: str  # file path relative to the documents folder (posix), e.g. "openai-altman.fr.txt"
    quote: str
    start: int
    end: int
    whole_document: bool = False  # PIAF: any passage of this document counts as finding the evidence


@dataclass(slots=True)
class EvalItem:
    id: str
    question: str
    lang: str
    answerable: bool
    answers: list[str]  # reference answers (PIAF may have several); empty when unanswerable
    evidence: list[Evidence]  # quote spans; for PIAF the whole gold paragraph
    dataset: str  # "golden" or "piaf-dev" / "piaf-test"
    history: list[dict[str, str]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    short_answer: bool = False  # gold answers are short spans (PIAF): "answer contained" is meaningful


@dataclass(slots=True)
class Dataset:
    """Questions plus the folder of documents they are asked over."""

    name: str
    docs_dir: Path
    items: list[EvalItem]
    documents: dict[str, str]  # relative posix path -> text, as read from disk
    attribution: str = ""
    sources: list[str] = field(default_factory=list)  # the files the questions came from


def read_document(path: Path) -> str:
    """Read a text document the way offsets are counted: UTF-8, newlines kept as they are in the file."""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _documents_in(docs_dir: Path) -> dict[str, str]:
    documents = {}
    for path in sorted(docs_dir.rglob("*.txt")):
        if not path.is_file():
            continue
        try:
            documents[path.relative_to(docs_dir).as_posix()] = read_document(path)
        except UnicodeDecodeError as exc:
            raise DatasetError(
                f"Document {path} is not UTF-8 text ({exc.reason} at byte {exc.start}): golden quotes are "
                "found in UTF-8 .txt files. Save it as UTF-8, or move it out of the --docs folder."
            ) from exc
    return documents


def _resolve_doc(name: str, documents: dict[str, str]) -> str | None:
    if name in documents:
        return name
    by_name = [key for key in documents if Path(key).name == Path(name).name]
    return by_name[0] if len(by_name) == 1 else None


def _parse_history(raw: object, where: str) -> list[dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(
        isinstance(turn, dict) and turn.get("role") in _ROLES and isinstance(turn.get("content"), str)
        for turn in raw
    ):
        raise DatasetError(
            f'{where}: "history" must be a list of {{"role": "user"|"assistant", "content": str}}.'
        )
    return [{"role": turn["role"], "content": turn["content"]} for turn in raw]


def _check_golden_record(record: object, where: str) -> None:
    """The shape of one golden line: its keys and their types, each fault named with the line."""
    if not isinstance(record, dict):
        kind = {list: "list", str: "string"}.get(type(record), type(record).__name__)
        raise DatasetError(f"{where}: a JSON {kind}, not an object. Each line must be one JSON object.")
    missing = [key for key in ("id", "question", "lang", "answerable", "evidence") if key not in record]
    if missing:
        raise DatasetError(
            f"{where}: missing key(s) {', '.join(missing)}. See shared/README.md for the format."
        )
    for key in ("id", "question"):
        if not isinstance(record[key], str) or not record[key].strip():
            raise DatasetError(f"{where}: {key} must be a non-empty text, got {record[key]!r:.60}.")
    lang = record["lang"]
    # Any ISO 639-1 code: a question in Russian or Japanese is a fair golden question (answered in the
    # fallback language); "French" or "FR" would split the per-language figures without a word.
    if not isinstance(lang, str) or not re.fullmatch(r"[a-z]{2}", lang):
        raise DatasetError(
            f"{where}: lang {lang!r:.40} is not a language code: give the question's language as a "
            "two-letter lower-case ISO 639-1 code, e.g. fr, en, de."
        )
    if not isinstance(record["answerable"], bool):
        raise DatasetError(
            f"{where}: answerable must be true or false (JSON), got {record['answerable']!r:.40}."
        )
    if not isinstance(record["evidence"], list):
        raise DatasetError(
            f'{where}: evidence must be a list of {{"doc": file name, "quote": exact text}} objects '
            "([] for an unanswerable question)."
        )
    for number, item in enumerate(record["evidence"], 1):
        if not isinstance(item, dict):
            raise DatasetError(
                f'{where}: evidence {number} must be an object {{"doc": file name, "quote": exact text}}.'
            )


def parse_golden_line(line: str, where: str, documents: dict[str, str], docs_dir: Path) -> EvalItem:
    """One golden JSONL line -> EvalItem, with each quote located in its document."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{where}: not valid JSON ({exc}). Each line must be one JSON object.") from exc
    _check_golden_record(record, where)
    evidence: list[Evidence] = []
    for number, item in enumerate(record["evidence"], 1):
        doc = _resolve_doc(str(item.get("doc", "")), documents)
        if doc is None:
            raise DatasetError(
                f"{where}: evidence {number} names document {item.get('doc')!r}, which is not a .txt file in "
                f"{docs_dir}. Point --docs at the folder holding it or fix the name."
            )
        quote = str(item.get("quote", ""))
        start = documents[doc].find(quote) if quote else -1
        if start < 0:
            raise DatasetError(
                f"{where}: evidence {number} quote {quote[:60]!r} is not an exact substring of {doc}. "
                "Copy the quote verbatim from the document (same apostrophes and spaces)."
            )
        evidence.append(Evidence(doc=doc, quote=quote, start=start, end=start + len(quote)))
    answerable = bool(record["answerable"])
    if answerable and not evidence:
        raise DatasetError(f"{where}: an answerable question needs at least one evidence quote.")
    if not answerable and evidence:
        raise DatasetError(f"{where}: an unanswerable question (answerable: false) must have no evidence.")
    answer = record.get("answer")
    tags = [str(tag) for tag in record.get("tags") or []]
    lang = str(record["lang"])
    if lang not in tags:
        tags.insert(0, lang)
    if not answerable and "unanswerable" not in tags:
        tags.append("unanswerable")
    return EvalItem(
        id=str(record["id"]),
        question=str(record["question"]),
        lang=lang,
        answerable=answerable,
        answers=[str(answer)] if answer else [],
        evidence=evidence,
        dataset="golden",
        history=_parse_history(record.get("history"), where),
        tags=tags,
    )


def _golden_lines(path: Path) -> list[str]:
    if path.is_dir():
        raise DatasetError(
            f"Golden file {path} is a folder, not a file. Pass --golden FILE with a JSONL file."
        )
    if not path.is_file():
        raise DatasetError(f"Golden file {path} does not exist. Pass --golden FILE with a JSONL file.")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(
            f"Golden file {path} is not UTF-8 text ({exc.reason} at byte {exc.start}). Save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise DatasetError(f"Golden file {path} cannot be read ({exc.strerror}).") from exc


def load_golden(paths: Sequence[str | Path], docs_dir: str | Path) -> Dataset:
    """Load one or more golden files whose quotes refer to .txt documents under `docs_dir`."""
    docs_dir = Path(docs_dir)
    if not docs_dir.is_dir():
        raise DatasetError(
            f"Documents folder {docs_dir} does not exist. Pass --docs DIR with your documents."
        )
    documents = _documents_in(docs_dir)
    items: list[EvalItem] = []
    seen: dict[str, str] = {}
    for path in map(Path, paths):
        first = len(items)
        for number, line in enumerate(_golden_lines(path), 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            item = parse_golden_line(line, where, documents, docs_dir)
            if item.id in seen:
                raise DatasetError(
                    f"{where}: id {item.id!r} already used at {seen[item.id]}. Ids must be unique."
                )
            seen[item.id] = where
            items.append(item)
        if len(items) == first:
            raise DatasetError(
                f"Golden file {path} holds no question. Give a JSONL file with one question per line."
            )
    return Dataset(
        name="golden", docs_dir=docs_dir, items=items, documents=documents, sources=[str(p) for p in paths]
    )


def spread(items: Sequence[EvalItem], limit: int | None) -> list[EvalItem]:
    """At most `limit` items picked evenly over the list (deterministic), so a sample covers every article."""
    if limit is None or limit >= len(items):
        return list(items)
    if limit <= 0:
        return []
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _read_jsonl(path: Path) -> Iterable[dict]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def piaf_missing_message(piaf_dir: Path) -> str:
    return (
        f"PIAF skipped: {piaf_dir} has no contexts.jsonl/questions.jsonl. Put the PIAF benchmark folder there "
        "(see shared/bench/piaf/README.md), pass --piaf-dir DIR, or --piaf none to silence this."
    )


def piaf_available(piaf_dir: str | Path) -> bool:
    piaf_dir = Path(piaf_dir)
    return (piaf_dir / "contexts.jsonl").is_file() and (piaf_dir / "questions.jsonl").is_file()


def piaf_file_name(context_id: str) -> str:
    return f"{context_id}.md"


def piaf_document(context: dict) -> tuple[str, str]:
    """(file name, file text) of one PIAF paragraph: Markdown headed by its Wikipedia article's title.

    The title is part of the benchmark data and of any real page the paragraph comes from; a paragraph
    alone often never names its subject ("Il commence sa carrière en 1953"). `--untitled` figures in
    eval/benchmarks/answer_figures.py show the paragraphs without it.
    """
    return piaf_file_name(context["id"]), f"# {context['title']}\n\n{context['text']}\n"


def write_piaf_documents(piaf_dir: Path, cache_dir: Path) -> dict[str, str]:
    """Write every PIAF paragraph (both splits: the corpus is all of them) as `<context id>.md`.

    Files are rewritten only when their content differs, so the index sees unchanged files on later runs
    and updates incrementally. Returns {file name: text}.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    documents: dict[str, str] = {}
    for context in _read_jsonl(piaf_dir / "contexts.jsonl"):
        name, text = piaf_document(context)
        documents[name] = text
        path = cache_dir / name
        if not path.is_file() or read_document(path) != text:
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
    stale = [p for p in [*cache_dir.glob("*.txt"), *cache_dir.glob("*.md")] if p.name not in documents]
    for path in stale:
        path.unlink()
    return documents


def load_piaf(piaf_dir: str | Path, split: str, cache_dir: str | Path, limit: int | None = None) -> Dataset:
    """PIAF questions of `split` over all 1,518 paragraphs, written as text files into `cache_dir`."""
    piaf_dir, cache_dir = Path(piaf_dir), Path(cache_dir)
    if split not in PIAF_SPLITS:
        raise DatasetError(f"PIAF split {split!r} is not one of {', '.join(PIAF_SPLITS)} (or 'none').")
    if not piaf_available(piaf_dir):
        raise DatasetError(piaf_missing_message(piaf_dir))
    documents = write_piaf_documents(piaf_dir, cache_dir)
    items: list[EvalItem] = []
    for record in _read_jsonl(piaf_dir / "questions.jsonl"):
        if record.get("split") != split:
            continue
        doc = piaf_file_name(record["context_id"])
        if doc not in documents:
            raise DatasetError(
                f"{piaf_dir / 'questions.jsonl'}: question {record['id']} names context {record['context_id']}, "
                "absent from contexts.jsonl. The benchmark folder is incomplete: copy it again."
            )
        text = documents[doc]
        items.append(
            EvalItem(
                id=str(record["id"]),
                question=str(record["question"]),
                lang="fr",
                answerable=True,
                answers=[str(a) for a in record.get("answers") or []],
                evidence=[Evidence(doc=doc, quote=text, start=0, end=len(text), whole_document=True)],
                dataset=f"piaf-{split}",
                tags=["fr", "piaf"],
                short_answer=True,
            )
        )
    return Dataset(
        name=f"piaf-{split}",
        docs_dir=cache_dir,
        items=spread(items, limit),
        documents=documents,
        attribution=PIAF_ATTRIBUTION,
        sources=[str(piaf_dir)],
    )
