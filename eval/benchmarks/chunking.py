"""Choose the chunking defaults (and BM25 k1/b) by measurement, with lexical retrieval (the offline mode).

    python -m eval.benchmarks.chunking [--piaf ../shared/bench/piaf] [--quick]

Corpora and metrics:
- PIAF v1.1 (Etalab, MIT; paragraphs from French Wikipedia, CC BY-SA): ALL 1,518 paragraphs are indexed
  (one document each), only the `dev` questions are asked (the test split is never used here).
  `para@5`: the gold paragraph is the document of one of the top-5 chunks; `ans@5`: a gold answer string is
  inside one of the top-5 chunks (this one is sensitive to chunk size: a chunk must hold the answer).
- The same dev questions over the paragraphs joined per article (480 long documents): `para@5` a top-5 chunk
  overlaps the gold paragraph, `ans@5` such a chunk also holds a gold answer. This is where chunk size matters.
  `ans@budg`: the same with as many chunks as fit 1,280 tokens (5 x 256): the fair comparison, since bigger
  chunks raise recall@5 just by showing more text. The defaults are chosen on it.
- Seed golden set (eval/golden/seed_qa.jsonl over seeds/, answerable questions): `ev@5`: every evidence quote
  lies (at least half of it) inside one of the top-5 chunks.

It uses the product's own pieces (loaders' text, index.chunking, index.lexical, the store's query analysis);
tokens are those of the approximate counter, as in lexical mode.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from index.chunking import ChunkingSettings, chunk_document
from index.language import detect_language
from index.lexical import Analyzer, BM25Index
from index.loaders import load_document
from index.records import Chunk, Document, Section

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PIAF = REPO.parent / "shared" / "bench" / "piaf"
BUDGET_TOKENS = 1280


@dataclass(slots=True)
class Corpus:
    documents: list[Document]
    languages: dict[str, str]


def piaf_corpus(piaf_dir: Path) -> tuple[Corpus, list[dict]]:
    contexts = [json.loads(line) for line in (piaf_dir / "contexts.jsonl").open(encoding="utf-8")]
    questions = [json.loads(line) for line in (piaf_dir / "questions.jsonl").open(encoding="utf-8")]
    documents = [
        Document(c["id"], c["id"], c["title"], c["text"], "", [Section(0, len(c["text"]))]) for c in contexts
    ]
    languages = {d.doc_id: detect_language(d.text, default="fr") for d in documents}
    return Corpus(documents, languages), [q for q in questions if q["split"] == "dev"]


def piaf_articles(piaf_dir: Path) -> tuple[Corpus, dict[str, tuple[str, int, int]]]:
    """The same paragraphs joined per article (480 long documents, blank line between paragraphs, no
    sections: like .txt files); returns where each paragraph lies: {context_id: (doc_id, start, end)}."""
    by_title: dict[str, list[dict]] = {}
    for line in (piaf_dir / "contexts.jsonl").open(encoding="utf-8"):
        context = json.loads(line)
        by_title.setdefault(context["title"], []).append(context)
    documents, spans = [], {}
    for title, contexts in by_title.items():
        parts, offset = [], 0
        for context in contexts:
            spans[context["id"]] = (title, offset, offset + len(context["text"]))
            parts.append(context["text"])
            offset += len(context["text"]) + 2
        text = "\n\n".join(parts)
        documents.append(Document(title, title, title, text, "", [Section(0, len(text))]))
    languages = {d.doc_id: detect_language(d.text, default="fr") for d in documents}
    return Corpus(documents, languages), spans


def eval_articles(index: LexicalIndex, questions: list[dict], spans: dict, k: int = 5) -> dict[str, float]:
    """para@5: a top-5 chunk overlaps the gold paragraph; ans@5: such a chunk also holds a gold answer."""
    para = ans = 0
    for q in questions:
        doc_id, start, end = spans[q["context_id"]]
        top = [
            c
            for c in index.search(q["question"], k)
            if c.doc_id == doc_id and c.start < end and c.end > start
        ]
        para += bool(top)
        ans += any(any(_norm(a) in _norm(c.text) for a in q["answers"]) for c in top)
    n = max(1, len(questions))
    return {"para@5": para / n, "ans@5": ans / n, "chunks": len(index.chunks)}


def seed_corpus() -> tuple[Corpus, list[dict]]:
    documents = [load_document(p, p.name) for p in sorted((REPO / "seeds").iterdir()) if p.suffix == ".txt"]
    languages = {d.doc_id: detect_language(d.text, default="fr") for d in documents}
    rows = [json.loads(line) for line in (REPO / "eval" / "golden" / "seed_qa.jsonl").open(encoding="utf-8")]
    return Corpus(documents, languages), [r for r in rows if r.get("answerable")]


class LexicalIndex:
    """Chunks + BM25, with the query analysis of index.store.IndexStore.query_terms."""

    def __init__(self, corpus: Corpus, settings: ChunkingSettings, k1: float, b: float) -> None:
        self.analyzer = Analyzer()
        self.chunks: list[Chunk] = []
        counts = []
        for document in corpus.documents:
            lang = corpus.languages[document.doc_id]
            for chunk in chunk_document(document, settings):
                self.chunks.append(chunk)
                counts.append(Counter(self.analyzer.analyze(chunk.text, lang)))
        self.bm25 = BM25Index(k1=k1, b=b).build_from_counts(counts)
        self.main_language = Counter(corpus.languages.values()).most_common(1)[0][0]

    def search(self, query: str, k: int) -> list[Chunk]:
        lang = detect_language(query, default=self.main_language)
        terms = self.analyzer.analyze(query, lang)
        if lang != self.main_language:
            seen = set(terms)
            terms += [t for t in self.analyzer.analyze(query, self.main_language) if t not in seen]
        return [self.chunks[row] for row, _ in self.bm25.search(terms, k)]


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("’", "'")).strip().lower()


def eval_piaf(index: LexicalIndex, questions: list[dict], k: int = 5) -> dict[str, float]:
    para = ans = 0
    for q in questions:
        top = index.search(q["question"], k)
        para += any(c.doc_id == q["context_id"] for c in top)
        ans += any(
            c.doc_id == q["context_id"] and any(_norm(a) in _norm(c.text) for a in q["answers"]) for c in top
        )
    n = max(1, len(questions))
    return {"para@5": para / n, "ans@5": ans / n, "chunks": len(index.chunks)}


def eval_seed(index: LexicalIndex, corpus: Corpus, rows: list[dict], k: int = 5) -> dict[str, float]:
    texts = {d.doc_id: d.text for d in corpus.documents}
    hits = 0
    for row in rows:
        top = index.search(row["question"], k)
        ok = True
        for evidence in row["evidence"]:
            start = texts[evidence["doc"]].find(evidence["quote"])
            if start < 0:
                raise SystemExit(f"seed quote not found in {evidence['doc']}: {evidence['quote']!r}")
            end = start + len(evidence["quote"])
            covered = max(
                (min(end, c.end) - max(start, c.start) for c in top if c.doc_id == evidence["doc"]), default=0
            )
            ok &= covered >= (end - start) / 2
        hits += ok
    return {"ev@5": hits / max(1, len(rows)), "chunks": len(index.chunks)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--piaf", type=Path, default=DEFAULT_PIAF)
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    piaf, dev = piaf_corpus(args.piaf)
    seed, seed_rows = seed_corpus()
    print(f"PIAF v1.1 (Etalab, MIT; French Wikipedia paragraphs, CC BY-SA): {len(piaf.documents)} paragraphs "
          f"indexed, {len(dev)} dev questions. Seed golden set: {len(seed_rows)} answerable questions.")  # fmt: skip

    articles, spans = piaf_articles(args.piaf)
    sizes = (128, 256, 512) if args.quick else (64, 96, 128, 160, 200, 256, 320, 512)
    overlaps = (0.0, 0.2) if args.quick else (0.0, 0.1, 0.2, 0.3)
    print("\nChunking (BM25 k1=1.2 b=0.75). PIAF paragraphs as documents | PIAF joined per article | seeds:")
    print(f"{'size':>5} {'overlap':>7} {'chunks':>7} {'para@5':>7} {'ans@5':>7} | {'chunks':>7} {'para@5':>7} "
          f"{'ans@5':>7} {'ans@budg':>9} | {'chunks':>6} {'ev@5':>6}")  # fmt: skip
    results = []
    for size in sizes:
        for ratio in overlaps:
            settings = ChunkingSettings(size, int(size * ratio))
            p = eval_piaf(LexicalIndex(piaf, settings, 1.2, 0.75), dev)
            article_index = LexicalIndex(articles, settings, 1.2, 0.75)
            a = eval_articles(article_index, dev, spans)
            # Equal context budget: as many chunks as fit BUDGET_TOKENS (5 x 256), so that bigger chunks
            # do not win merely by sending more text to the model.
            a["budget_ans"] = eval_articles(article_index, dev, spans, k=max(1, round(BUDGET_TOKENS / size)))[
                "ans@5"
            ]
            s = eval_seed(LexicalIndex(seed, settings, 1.2, 0.75), seed, seed_rows)
            results.append((size, settings.chunk_overlap_tokens, p, s, a))
            print(f"{size:>5} {settings.chunk_overlap_tokens:>7} {p['chunks']:>7} {p['para@5']:>7.3f} "
                  f"{p['ans@5']:>7.3f} | {a['chunks']:>7} {a['para@5']:>7.3f} {a['ans@5']:>7.3f} "
                  f"{a['budget_ans']:>9.3f} | "
                  f"{s['chunks']:>6} {s['ev@5']:>6.3f}", flush=True)  # fmt: skip

    # Best answer recall over long documents (where chunking matters: one-paragraph documents favour a
    # chunk per paragraph) at an equal context budget, then at top-5; smaller chunks on ties.
    best = max(results, key=lambda r: (round(r[4]["budget_ans"], 3), round(r[4]["ans@5"], 3), -r[0], -r[1]))
    size, overlap = best[0], best[1]
    print(f"\nBest chunking on PIAF dev: size {size}, overlap {overlap}")
    print("\nBM25 parameters at that chunking (PIAF dev, articles; para@5/ans@5):")
    settings = ChunkingSettings(size, overlap)
    grid_k1 = (0.9, 1.2, 1.5) if args.quick else (0.6, 0.9, 1.2, 1.5, 2.0)
    grid_b = (0.5, 0.75, 0.9) if args.quick else (0.3, 0.5, 0.75, 0.9, 1.0)
    index = LexicalIndex(articles, settings, 1.2, 0.75)
    counts = index.bm25.row_term_counts()
    for k1 in grid_k1:
        row = []
        for b in grid_b:
            index.bm25 = BM25Index(k1=k1, b=b).build_from_counts(counts)
            m = eval_articles(index, dev, spans)
            row.append(f"b={b}: {m['para@5']:.3f}/{m['ans@5']:.3f}")
        print(f"k1={k1}: " + "  ".join(row), flush=True)
    print(f"\n(para@5/ans@5) done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
