"""Query latency and index-build throughput: the product against the naive LangChain pipeline.

Same machine, same run, two corpora: the seed folder and all 1,518 PIAF paragraphs (one .txt each).
Prints figures (a benchmark script, not a test):

- build: ours = `rag.build_assistant` into a fresh temporary index (load, chunk, analyse, embed when the
  settings name a model, write); naive = RecursiveCharacterTextSplitter(1000, 200) + embedding +
  `FAISS.from_embeddings`, nothing cached;
- retrieval latency per query (p50/p95): ours = `Assistant.retrieve`; naive = `similarity_search(k=4)`
  (query embedding included);
- end-to-end latency of ours with the extractive backend (`Assistant.ask`). The naive pipeline has no
  generator of its own here (it would call an LLM), so it has no end-to-end figure.

The naive pipeline embeds with our embedder when ours has one (--embedding-model), else with the packaged
all-MiniLM-L6-v2. Usage:
    python -m eval.benchmarks.latency [--piaf-dir DIR] [--queries 300] [--embedding-model PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from eval.datasets import load_golden, write_piaf_documents


def _ms(values: list[float]) -> str:
    return f"p50 {np.percentile(values, 50) * 1000:7.1f} ms  p95 {np.percentile(values, 95) * 1000:7.1f} ms"


def bench_ours(docs_dir: Path, questions: list[str], settings: Any, workdir: Path) -> dict[str, Any]:
    from rag import build_assistant

    settings = settings.model_copy(deep=True)
    settings.index.index_dir = workdir / f"index-{docs_dir.name}"
    settings.index.show_progress = False
    started = time.perf_counter()
    assistant = build_assistant([docs_dir], settings)
    build = time.perf_counter() - started
    status = assistant.status()
    assistant.retrieve(questions[0])  # warm-up: lazy loading is not query latency
    retrieve = []
    for question in questions:
        started = time.perf_counter()
        assistant.retrieve(question)
        retrieve.append(time.perf_counter() - started)
    assistant.ask(questions[0], backend="extractive")
    ask = []
    for question in questions:
        started = time.perf_counter()
        assistant.ask(question, backend="extractive")
        ask.append(time.perf_counter() - started)
    return {"build_s": build, "status": status, "retrieve": retrieve, "ask": ask}


def bench_naive(documents: dict[str, str], questions: list[str], embedder: Any) -> dict[str, Any]:
    import warnings

    from eval.baselines import TUTORIAL_TOP_K, make_embeddings_adapter, tutorial_chunks

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.vectorstores import FAISS

    started = time.perf_counter()
    chunks = tutorial_chunks(documents)
    embeddings = make_embeddings_adapter(embedder)
    texts = [c.text for c in chunks]
    vectors = embeddings.embed_documents(texts)
    store = FAISS.from_embeddings(list(zip(texts, vectors, strict=True)), embeddings)
    build = time.perf_counter() - started
    store.similarity_search(questions[0], k=TUTORIAL_TOP_K)
    retrieve = []
    for question in questions:
        started = time.perf_counter()
        store.similarity_search(question, k=TUTORIAL_TOP_K)
        retrieve.append(time.perf_counter() - started)
    return {"build_s": build, "chunks": len(chunks), "retrieve": retrieve}


def main(argv: list[str] | None = None) -> int:
    from eval.baselines import load_minilm_embedder
    from rag.settings import load_settings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="TOML settings file")
    parser.add_argument("--piaf-dir", help="PIAF folder (default: settings eval.piaf_dir)")
    parser.add_argument("--queries", type=int, default=300, help="PIAF dev questions timed (spread evenly)")
    parser.add_argument(
        "--embedding-model", help="run ours in hybrid mode with this model (and the naive one too)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = load_settings(args.config)
    if args.embedding_model is not None:
        settings.index.embedding_model = args.embedding_model

    corpora: list[tuple[str, Path, dict[str, str], list[str]]] = []
    golden = load_golden([settings.eval.golden], Path("seeds"))
    corpora.append(("seed", Path("seeds"), golden.documents, [item.question for item in golden.items]))
    piaf_dir = Path(args.piaf_dir) if args.piaf_dir else Path(settings.eval.piaf_dir)
    workdir = Path(tempfile.mkdtemp(prefix="rag-latency-"))
    if (piaf_dir / "contexts.jsonl").is_file():
        docs = workdir / "piaf-docs"
        documents = write_piaf_documents(piaf_dir, docs)
        questions = [
            json.loads(line)["question"]
            for line in (piaf_dir / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if '"split": "dev"' in line
        ]
        step = max(1, len(questions) // args.queries)
        corpora.append(("piaf (1,518 paragraphs)", docs, documents, questions[::step][: args.queries]))
    else:
        print(f"PIAF skipped: no contexts.jsonl in {piaf_dir}")

    from index.embedding import load_embedder

    embedder = load_embedder(settings.index, warn=False) if settings.index.embedding_model else None
    naive_model = getattr(embedder, "name", None)
    if embedder is None:
        embedder = load_minilm_embedder()
        naive_model = "all-MiniLM-L6-v2 (packaged; ours has no embedding model)"
    print(f"naive pipeline embeds with: {naive_model}\n")
    print(
        "| corpus | system | docs | chunks | build s | docs/s | retrieval latency | end-to-end (extractive) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, docs_dir, documents, questions in corpora:
        ours = bench_ours(docs_dir, questions, settings, workdir)
        mode = ours["status"]["retrieval_mode"]
        print(
            f"| {name} | ours ({mode}) | {len(documents)} | {ours['status']['chunks']} | {ours['build_s']:.1f} | "
            f"{len(documents) / ours['build_s']:.0f} | {_ms(ours['retrieve'])} | {_ms(ours['ask'])} |",
            flush=True,
        )
        naive = bench_naive(documents, questions, embedder)
        print(
            f"| {name} | naive LangChain | {len(documents)} | {naive['chunks']} | {naive['build_s']:.1f} | "
            f"{len(documents) / naive['build_s']:.0f} | {_ms(naive['retrieve'])} | – |",
            flush=True,
        )
    print(f"\n{len(corpora)} corpora; queries: golden questions (seed), {args.queries} PIAF dev questions.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
