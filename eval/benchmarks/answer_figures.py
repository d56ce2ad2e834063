"""Figures of the offline default (lexical retrieval + extractive answers), printed side by side.

    .venv/bin/python -m eval.benchmarks.answer_figures [--piaf-dir ../shared/bench/piaf] [--skip-piaf]
        [--hybrid MODEL_DIR]

1. Seed golden set (eval/golden/seed_qa.jsonl over seeds/): is every evidence quote of every answerable
   question inside the top-5 passages (a quote may span two adjacent passages)? Are the unanswerable ones
   abstained and no answerable one?
2. PIAF recall@5 of the gold paragraph over all 1,518 paragraphs, dev and test, for the product's retrieval
   and for plain BM25 (whitespace tokens, lowercase, no stemming, one row per paragraph) in the same run;
   "titled": each paragraph is a Markdown file under its article's title (what `rag eval` indexes; the
   product indexes a chunk's title and headings with its text, plain BM25 gets the title as words too),
   "untitled": the bare paragraph as a .txt file.
3. Median `ask` latency (extractive backend, index loaded) on the seed questions.

`--hybrid MODEL_DIR` adds PIAF dev recall@5 of hybrid retrieval (RRF and weighted fusion, several weights)
with a local sentence-transformers model on a fixed sample of dev questions (`--hybrid-questions`, 600), which
is how the default fusion was chosen. Nothing here is tuned on PIAF test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PIAF = REPO.parent / "shared" / "bench" / "piaf"
GOLDEN = REPO / "eval" / "golden" / "seed_qa.jsonl"
SEEDS = REPO / "seeds"
K = 5


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def lexical_settings(index_dir: Path, **retrieval: object):
    from rag.settings import load_settings

    overrides = {"index.index_dir": str(index_dir), "index.embedding_model": "", "index.show_progress": False}
    overrides.update({f"retrieval.{k}": v for k, v in retrieval.items()})
    return load_settings(environ={}, overrides=overrides)


def build(paths: Sequence[Path], settings, embedder=None) -> None:
    from index.build import build_index

    build_index(list(paths), settings.index, embedder=embedder, progress=False)


# -- seed golden set ----------------------------------------------------------------------------------
def quote_span(text: str, quote: str) -> tuple[int, int] | None:
    start = text.find(quote)
    return None if start < 0 else (start, start + len(quote))


def covered(span: tuple[int, int], passages: Iterable) -> bool:
    """Inside one passage, or inside the union of two passages that touch (adjacent or overlapping)."""
    spans = sorted((p.start, p.end) for p in passages)
    if any(s <= span[0] and span[1] <= e for s, e in spans):
        return True
    for (s1, e1), (s2, e2) in zip(spans, spans[1:], strict=False):
        if s2 <= e1 + 1 and s1 <= span[0] and span[1] <= e2:
            return True
    return False


def seed_figures(assistant, golden: list[dict], repeats: int = 5) -> dict:
    rows = []
    latencies: list[float] = []
    for item in golden:
        answer = assistant.ask(item["question"], top_k=K)
        for _ in range(repeats - 1):
            started = time.perf_counter()
            assistant.ask(item["question"], top_k=K)
            latencies.append(time.perf_counter() - started)
        missing = []
        for evidence in item["evidence"]:
            passages = [p for p in answer.passages if Path(p.doc_id).name == evidence["doc"]]
            text = assistant.store.document_text(passages[0].doc_id) if passages else ""
            span = quote_span(text, evidence["quote"]) if text else None
            if span is None or not covered(span, passages):
                missing.append(evidence["quote"][:50])
        rows.append(
            {
                "id": item["id"],
                "lang": item["lang"],
                "answerable": item["answerable"],
                "covered": not missing,
                "missing": missing,
                "abstained": answer.abstained,
                "answer": answer.text[:120],
            }
        )
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    return {
        "rows": rows,
        "coverage": sum(r["covered"] for r in answerable) / max(1, len(answerable)),
        "answerable": len(answerable),
        "answerable_covered": sum(r["covered"] for r in answerable),
        "answerable_abstained": sum(r["abstained"] for r in answerable),
        "unanswerable": len(unanswerable),
        "unanswerable_abstained": sum(r["abstained"] for r in unanswerable),
        "median_ask_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p95_ask_ms": 1000 * sorted(latencies)[int(0.95 * (len(latencies) - 1))] if latencies else None,
    }


# -- PIAF -------------------------------------------------------------------------------------------------
def write_piaf_corpus(
    piaf_dir: Path, folder: Path, exclude: set[str] = frozenset(), titled: bool = True
) -> list[dict]:
    """Every paragraph (minus `exclude`) as a file in `folder`: `<id>.md` headed by its article title
    (`eval.datasets.piaf_document`, what `rag eval` indexes) or, untitled, the bare paragraph as `<id>.txt`.
    Returns the contexts."""
    from eval.datasets import piaf_document

    contexts = read_jsonl(piaf_dir / "contexts.jsonl")
    folder.mkdir(parents=True, exist_ok=True)
    for context in contexts:
        if context["id"] in exclude:
            continue
        name, text = piaf_document(context) if titled else (f"{context['id']}.txt", context["text"])
        (folder / name).write_text(text, encoding="utf-8")
    return contexts


def plain_bm25(contexts: list[dict], titled: bool = True):
    """Whitespace tokens, lowercased, no stemming, no stop words: the baseline of the brief, over the same
    words as the product (the title too when `titled`)."""
    from index.lexical import BM25Index

    ids = [c["id"] for c in contexts]
    texts = [f"{c['title']} {c['text']}" if titled else c["text"] for c in contexts]
    bm25 = BM25Index().build([text.lower().split() for text in texts])

    def search(question: str, k: int) -> list[str]:
        return [ids[row] for row, _ in bm25.search(question.lower().split(), k)]

    return search


def product_search(assistant):
    def search(question: str, k: int) -> list[str]:
        seen: list[str] = []
        for passage in assistant.retrieve(question, k):
            context_id = Path(passage.doc_id).stem
            if context_id not in seen:
                seen.append(context_id)
        return seen

    return search


def recall_at_k(search, questions: list[dict], k: int = K) -> float:
    hits = sum(q["context_id"] in search(q["question"], k) for q in questions)
    return hits / max(1, len(questions))


VARIANTS = {"titled": True, "untitled": False}  # paragraphs under their article title, or bare


def piaf_figures(piaf_dir: Path, work: Path, hybrid_model: str | None, hybrid_questions: int = 600) -> dict:
    """Recall@5 per split for the product and plain BM25, on titled and on bare paragraphs."""
    from rag.assistant import open_assistant

    questions = read_jsonl(piaf_dir / "questions.jsonl")
    by_split = {split: [q for q in questions if q["split"] == split] for split in ("dev", "test")}
    figures: dict = {}
    for variant, titled in VARIANTS.items():
        corpus = work / f"piaf-corpus-{variant}"
        contexts = write_piaf_corpus(piaf_dir, corpus, titled=titled)
        settings = lexical_settings(work / f"piaf-index-{variant}")
        started = time.perf_counter()
        build([corpus], settings)
        figures[f"{variant}_build_s"] = time.perf_counter() - started
        assistant = open_assistant(settings)
        baseline = plain_bm25(contexts, titled=titled)
        product = product_search(assistant)
        figures["paragraphs"] = len(contexts)
        figures[f"{variant}_chunks"] = len(assistant.store.chunks)
        for split, items in by_split.items():
            started = time.perf_counter()
            figures[f"{variant}_{split}_product"] = recall_at_k(product, items)
            figures[f"{variant}_{split}_ms_per_query"] = (
                1000 * (time.perf_counter() - started) / max(1, len(items))
            )
            figures[f"{variant}_{split}_plain_bm25"] = recall_at_k(baseline, items)
            figures[f"{split}_questions"] = len(items)
        if hybrid_model and titled:
            # A fixed sample of dev (query embedding is the slow part on a CPU): shuffled with seed 1.
            sample = list(by_split["dev"])
            random.Random(1).shuffle(sample)
            figures.update(hybrid_figures(corpus, work, hybrid_model, sample[:hybrid_questions]))
    return figures


FUSIONS = {  # name: (fusion, dense_weight, lexical_weight)
    "rrf 1:1": ("rrf", 1.0, 1.0),
    "rrf 0.5:1": ("rrf", 0.5, 1.0),
    "weighted 1:1": ("weighted", 1.0, 1.0),
    "weighted 0.5:1": ("weighted", 0.5, 1.0),
    "weighted 0.3:1": ("weighted", 0.3, 1.0),
    "dense only": ("weighted", 1.0, 0.0),
    "lexical only": ("weighted", 0.0, 1.0),
}


def hybrid_figures(corpus: Path, work: Path, model: str, dev: list[dict]) -> dict:
    """PIAF dev recall@5 of each fusion with a local embedding model (dense rankings computed once)."""
    from index.embedding import load_embedder
    from rag.assistant import open_assistant

    settings = lexical_settings(work / "piaf-hybrid")
    settings = settings.model_copy(
        update={"index": settings.index.model_copy(update={"embedding_model": model})}
    )
    build([corpus], settings, embedder=load_embedder(settings.index))
    assistant = open_assistant(settings)
    if assistant.retriever.mode != "hybrid":
        raise SystemExit(f"The model {model!r} could not be loaded: no hybrid figures.")
    cache: dict = {}
    search_dense = assistant.store.search_dense

    def cached(query: str, k: int):
        if (query, k) not in cache:
            cache[(query, k)] = search_dense(query, k)
        return cache[(query, k)]

    assistant.store.search_dense = cached
    figures = {}
    for name, (fusion, dense_weight, lexical_weight) in FUSIONS.items():
        assistant.retriever.settings = settings.retrieval.model_copy(
            update={"fusion": fusion, "dense_weight": dense_weight, "lexical_weight": lexical_weight}
        )
        figures[f"dev_hybrid {name}"] = recall_at_k(product_search(assistant), dev)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--piaf-dir", type=Path, default=DEFAULT_PIAF)
    parser.add_argument("--skip-piaf", action="store_true")
    parser.add_argument("--hybrid", metavar="MODEL_DIR", help="Also measure hybrid fusion on PIAF dev.")
    parser.add_argument(
        "--hybrid-questions", type=int, default=600, metavar="N", help="PIAF dev questions for --hybrid."
    )
    parser.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.assistant import open_assistant

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="rag-figures-") as tmp:
        work = Path(tmp)
        settings = lexical_settings(work / "seed-index")
        build([SEEDS], settings)
        assistant = open_assistant(settings)
        out["seed"] = seed_figures(assistant, read_jsonl(GOLDEN))
        if not args.skip_piaf:
            if not (args.piaf_dir / "questions.jsonl").is_file():
                print(f"PIAF not found in {args.piaf_dir}: pass --piaf-dir or --skip-piaf.", file=sys.stderr)
                return 2
            out["piaf"] = piaf_figures(args.piaf_dir, work, args.hybrid, args.hybrid_questions)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    seed = out["seed"]
    print("Seed golden set (lexical-only + extractive, top-5 passages)")
    for row in seed["rows"]:
        status = "covered" if row["covered"] else f"MISSING {row['missing']}"
        if not row["answerable"]:
            status = "unanswerable"
        print(
            f"  {row['id']} [{row['lang']}] {status:<12} abstained={row['abstained']!s:<5} {row['answer'][:70]!r}"
        )
    print(
        f"  evidence coverage: {seed['answerable_covered']}/{seed['answerable']} answerable questions "
        f"({seed['coverage']:.3f})\n"
        f"  abstained: {seed['unanswerable_abstained']}/{seed['unanswerable']} unanswerable, "
        f"{seed['answerable_abstained']}/{seed['answerable']} answerable\n"
        f"  ask latency: median {seed['median_ask_ms']:.1f} ms, p95 {seed['p95_ask_ms']:.1f} ms"
    )
    if "piaf" in out:
        piaf = out["piaf"]
        print(f"\nPIAF recall@{K} of the gold paragraph ({piaf['paragraphs']} paragraphs)")
        print(
            f"  {'paragraphs':<10} {'split':<6} {'questions':>9} {'product':>8} {'plain BM25':>11} {'ms/query':>9}"
        )
        for variant in VARIANTS:
            for split in ("dev", "test"):
                print(
                    f"  {variant:<10} {split:<6} {piaf[f'{split}_questions']:>9} "
                    f"{piaf[f'{variant}_{split}_product']:>8.4f} {piaf[f'{variant}_{split}_plain_bm25']:>11.4f} "
                    f"{piaf[f'{variant}_{split}_ms_per_query']:>9.2f}"
                )
            print(
                f"  {variant:<10} index: {piaf[f'{variant}_chunks']} chunks, built in "
                f"{piaf[f'{variant}_build_s']:.1f} s"
            )
        for key, value in piaf.items():
            if key.startswith("dev_hybrid"):
                print(f"  {key}: {value:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
