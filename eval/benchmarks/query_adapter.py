"""A query-side adapter for the dense model, learned on PIAF dev and cross-validated by article (issue 10).

    .venv/bin/python -m eval.benchmarks.query_adapter --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--cache DIR] [--folds 5] [--method ridge|contrastive]
        [--penalties P ...] [--fixed P] [--rank R]

The question's unit vector q becomes q' = normalize(q + q A), A a 384 x 384 matrix started at zero (or at
the identity map, q' = q) and pulled towards it by an L2 penalty; the stored passage vectors are not touched.
Trained on French questions only, their target the gold paragraph's chunk (of a paragraph cut in two, the
chunk nearer the question):
- `ridge` (default): least squares of q + q A towards the gold chunk's vector, in closed form;
- `contrastive`: softmax cross-entropy of q' against every chunk of the training articles (in-batch and the
  retriever's hard negatives are a subset of them), temperature `TAU`, full-batch Adam, optionally of rank R.

Honest evaluation: the 3,263 French dev questions' articles are split into `--folds` folds (seed 7). For each
fold, the adapter is trained on the other folds' questions (contrastive negatives: their chunks only), its
penalty (and epoch count) chosen on an inner split of those articles (a fifth of them: the dense ranking's
MRR over every chunk of the index), retrained on all of them and applied to the held-out fold's French
questions and to the translated en/de ones (`data/piaf_dev_xling.jsonl`) of the held-out articles; `--fixed P`
trains every fold with penalty P instead (no inner choice). Scored: recall@5 / hit@1 of the product's whole
ranking (`HybridRetriever.fuse` over BM25, dense, sentence max-sim and coverage, then `late_rescore`, the
defaults of `RetrievalSettings`), the adapted vector read by the dense ranking only ("dense"), or by the
dense and sentence max-sim rankings ("dense+sentence"); late interaction's token vectors stay the raw ones.
Per fold and pooled, with the questions gained / lost against the raw vector and the paired standard error
of the difference. The questions' rankings are computed afresh each run (a few minutes; nothing is
unpickled from disk). PIAF test is never read. PIAF v1.1 (Etalab / DINUM, Keraron et al., LREC 2020; MIT License; paragraphs
from French Wikipedia, CC BY-SA): ../shared/bench/piaf/README.md.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from eval.benchmarks.answer_figures import read_jsonl, write_piaf_corpus
from eval.benchmarks.calibrate_hybrid import DATA, model_benchmark_parser, open_hybrid

TAU = 0.05
PENALTIES = (1e-3, 1e-2, 1e-1)
RIDGE_PENALTIES = (10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0)
MAX_EPOCHS = 300
CHECK_EVERY = 25


def article(context_id: str) -> str:
    return context_id.split("-")[0]


def prepare(args) -> tuple[object, dict]:
    """The opened index and, per dev question (fr, and the translated en / de), everything the product's
    ranking reads besides the dense vector."""
    from rag.chain import question_language

    corpus = args.cache / "piaf-corpus"
    write_piaf_corpus(args.piaf_dir, corpus)
    assistant = open_hybrid(corpus, args.cache / f"piaf-{Path(args.model).name}", args.model)
    store, retriever = assistant.store, assistant.retriever
    dev = [q for q in read_jsonl(args.piaf_dir / "questions.jsonl") if q["split"] == "dev"]
    sets = {"fr": [(q["question"], q["context_id"]) for q in dev]}
    xling = read_jsonl(DATA / "piaf_dev_xling.jsonl")
    for lang in ("en", "de"):
        sets[lang] = [(x[f"question_{lang}"], x["context_id"]) for x in xling]
    chunk_vectors = store.stored_vectors()
    table = store.token_table
    prepared = {}
    for name, items in sets.items():
        texts = [q for q, _ in items]
        encodings = store.embedder.encode_queries(texts)
        rows = []
        for (question, gold), encoding in zip(items, encodings, strict=True):
            language = question_language(question)
            queries = retriever.lexical_queries(question, language)
            lexical = retriever.lexical_ranking(question, language, 200, queries)
            scores = chunk_vectors @ encoding.vector
            dense = [int(r) for r in np.argsort(-scores)[:200]]
            union = list(dict.fromkeys([*(r for r, _ in lexical), *dense]))
            coverage = retriever.term_coverage(queries, union)
            words = encoding.tokens.words
            tokens = (encoding.tokens.vectors[words], table.idf(encoding.tokens.ids[words]))
            rows.append(
                {
                    "question": question,
                    "gold": gold,
                    "vector": np.asarray(encoding.vector, dtype=np.float32),
                    "lexical": lexical,
                    "coverage": coverage,
                    "tokens": tokens,
                    "queries": queries,
                }
            )
        prepared[name] = rows
        print(f"prepared {name}: {len(rows)} questions", flush=True)
    return assistant, prepared


def train(
    questions: np.ndarray,
    targets: np.ndarray,
    chunks: np.ndarray,
    penalty: float,
    epochs: int,
    *,
    rank: int | None = None,
    seed: int = 11,
    checkpoints: Sequence[int] = (),
) -> list[np.ndarray]:
    """A (d x d) for q' = normalize(q + q A), trained by full-batch Adam; the A of each checkpoint epoch
    (and of the last one)."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    q = torch.from_numpy(questions)
    c = torch.from_numpy(chunks)
    y = torch.from_numpy(targets.astype(np.int64))
    d = q.shape[1]
    if rank:
        left = torch.nn.Parameter(torch.zeros(d, rank))
        right = torch.nn.Parameter(torch.randn(rank, d) * 0.01)
        params = [left, right]

        def matrix():
            return left @ right
    else:
        full = torch.nn.Parameter(torch.zeros(d, d))
        params = [full]

        def matrix():
            return full

    optimiser = torch.optim.Adam(params, lr=1e-3)
    kept = []
    for epoch in range(1, epochs + 1):
        optimiser.zero_grad()
        a = matrix()
        adapted = torch.nn.functional.normalize(q + q @ a, dim=1)
        loss = torch.nn.functional.cross_entropy(adapted @ c.T / TAU, y) + penalty * (a * a).sum()
        loss.backward()
        optimiser.step()
        if epoch in checkpoints or epoch == epochs:
            kept.append(matrix().detach().numpy().copy())
    return kept


def ridge(questions: np.ndarray, targets: np.ndarray, penalty: float) -> np.ndarray:
    """A minimising |Q + Q A - P|^2 + penalty |A|^2 (P: the gold chunks' vectors), in closed form."""
    d = questions.shape[1]
    gram = questions.T @ questions + penalty * np.eye(d)
    return np.linalg.solve(gram, questions.T @ (targets - questions)).astype(np.float32)


def adapt(vectors: np.ndarray, a: np.ndarray | None) -> np.ndarray:
    if a is None:
        return vectors
    out = vectors + vectors @ a
    return (out / np.linalg.norm(out, axis=-1, keepdims=True)).astype(np.float32)


def dense_mrr(vectors: np.ndarray, targets: np.ndarray, chunks: np.ndarray) -> float:
    scores = vectors @ chunks.T
    gold = scores[np.arange(len(targets)), targets]
    ranks = (scores > gold[:, None]).sum(axis=1) + 1
    return float(np.mean(1.0 / ranks))


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--rank", type=int, default=None, help="Low-rank A (default: full).")
    parser.add_argument("--penalties", type=float, nargs="*", default=None)
    parser.add_argument(
        "--fixed",
        type=float,
        default=None,
        help="Train every fold with this penalty (no inner choice; a figure to set beside the nested one).",
    )
    parser.add_argument(
        "--method",
        choices=("ridge", "contrastive"),
        default="ridge",
        help="ridge: least squares towards the gold chunk vector; contrastive: softmax over the chunks.",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.retrieval import HybridRetriever, late_rescore

    assistant, prepared = prepare(args)
    store, retriever = assistant.store, assistant.retriever
    settings = assistant.settings.retrieval
    fuser = HybridRetriever(store, settings)
    chunk_vectors = np.asarray(store.stored_vectors(), dtype=np.float32)
    gold_of_row = [Path(c.doc_id).stem for c in store.chunks]
    rows_of_paragraph: dict[str, list[int]] = {}
    for row, paragraph in enumerate(gold_of_row):
        rows_of_paragraph.setdefault(paragraph, []).append(row)
    rows_of_article: dict[str, list[int]] = {}
    for row, paragraph in enumerate(gold_of_row):
        rows_of_article.setdefault(article(paragraph), []).append(row)
    windows = [retriever._chunk_window_vectors(row, store.windows) for row in range(len(store.chunks))]
    table = store.token_table
    memo: dict[tuple[str, int], float] = {}

    def ranked(item: dict, vector: np.ndarray, sentence_vector: np.ndarray) -> list[int]:
        """The product's ranking of `item` with `vector` for the dense ranking and `sentence_vector` for
        sentence max-sim (the rest as prepared)."""
        candidates = settings.candidates
        lexical = item["lexical"][:candidates]
        scores = chunk_vectors @ vector
        top = np.argpartition(-scores, candidates)[:candidates]
        dense = sorted(((int(r), float(scores[r])) for r in top), key=lambda x: -x[1])
        rankings = {"lexical": lexical, "dense": dense}
        union = list(dict.fromkeys(r for ranking in rankings.values() for r, _ in ranking))
        sentence = []
        for r in union:
            if windows[r] is not None and len(windows[r]):
                sentence.append((r, float(np.max(windows[r] @ sentence_vector))))
        rankings["sentence"] = sentence
        coverage = item["coverage"]
        missing = [r for r in union if r not in coverage]
        if missing:
            coverage.update(retriever.term_coverage(item["queries"], missing))
        rankings["coverage"] = [(r, coverage[r]) for r in union if r in coverage]
        fused = fuser.fuse(rankings)
        head = [r for r, _ in fused[: settings.late_interaction_candidates]]
        key = item["question"]
        todo = [r for r in head if (key, r) not in memo]
        if todo:
            values = table.maxsim(item["tokens"][0], item["tokens"][1], todo)
            for r, value in zip(todo, values, strict=True):
                memo[key, r] = float(value)
        fused = late_rescore(
            fused, [memo[key, r] for r in head], settings.late_interaction_weight, settings.cosine_span_floor
        )
        return [gold_of_row[r] for r, _ in fused[:5]]

    def outcome(item: dict, vector: np.ndarray, sentence_vector: np.ndarray) -> tuple[bool, bool]:
        top = ranked(item, vector, sentence_vector)
        return item["gold"] in top, bool(top) and top[0] == item["gold"]

    articles = sorted({article(item["gold"]) for item in prepared["fr"]})
    random.Random(7).shuffle(articles)
    fold_of = {a: i % args.folds for i, a in enumerate(articles)}

    def target_row(item: dict) -> int:
        rows = rows_of_paragraph[item["gold"]]
        return max(rows, key=lambda r: float(chunk_vectors[r] @ item["vector"]))

    variants = ("raw", "dense", "dense+sentence")
    results: dict[str, dict[str, list[tuple[int, bool, bool]]]] = {
        v: {s: [] for s in prepared} for v in variants
    }
    for fold in range(args.folds):
        train_items = [it for it in prepared["fr"] if fold_of[article(it["gold"])] != fold]
        train_articles = sorted({article(it["gold"]) for it in train_items})
        # Inner split of the training articles: choose the penalty and the epoch count (dense MRR over
        # every chunk).
        rng = random.Random(100 + fold)
        inner_out = set(rng.sample(train_articles, len(train_articles) // 5))
        inner_fit = [it for it in train_items if article(it["gold"]) not in inner_out]
        inner_val = [it for it in train_items if article(it["gold"]) in inner_out]

        def matrices(items: list[dict]):
            rows = sorted({r for it in items for r in rows_of_article[article(it["gold"])]})
            index = {r: i for i, r in enumerate(rows)}
            q = np.stack([it["vector"] for it in items])
            y = np.array([index[target_row(it)] for it in items])
            return q, y, chunk_vectors[rows]

        fit_q, fit_y, fit_c = matrices(inner_fit)
        # Validation over every chunk of the index (the dense ranking's task; no held-out question read).
        val_q = np.stack([it["vector"] for it in inner_val])
        val_y, val_c = np.array([target_row(it) for it in inner_val]), chunk_vectors
        dense_mrr_base = dense_mrr(val_q, val_y, val_c)
        checkpoints = list(range(CHECK_EVERY, MAX_EPOCHS + 1, CHECK_EVERY))
        best = (dense_mrr_base, None, 0)
        penalties = args.penalties or (RIDGE_PENALTIES if args.method == "ridge" else PENALTIES)
        if args.fixed is not None:
            best, penalties = (0.0, args.fixed, MAX_EPOCHS), ()
        for penalty in penalties:
            if args.method == "ridge":
                checkpoints, kept = [0], [ridge(fit_q, fit_c[fit_y], penalty)]
            else:
                kept = train(
                    fit_q, fit_y, fit_c, penalty, MAX_EPOCHS, rank=args.rank, checkpoints=checkpoints
                )
            for epochs, a in zip(checkpoints, kept, strict=True):
                mrr = dense_mrr(adapt(val_q, a), val_y, val_c)
                if mrr > best[0]:
                    best = (mrr, penalty, epochs)
        if args.fixed is not None:
            print(f"fold {fold}: penalty {args.fixed} (fixed)", flush=True)
        else:
            print(
                f"fold {fold}: inner dense MRR {dense_mrr_base:.4f} -> {best[0]:.4f} "
                f"(penalty {best[1]}, {best[2]} epochs)",
                flush=True,
            )
        if best[1] is None:
            a = None
        else:
            all_q, all_y, all_c = matrices(train_items)
            if args.method == "ridge":
                a = ridge(all_q, all_c[all_y], best[1])
            else:
                a = train(all_q, all_y, all_c, best[1], best[2], rank=args.rank)[-1]
            print(f"  |A| = {np.linalg.norm(a):.3f}", flush=True)
        for name, items in prepared.items():
            held = [it for it in items if fold_of.get(article(it["gold"])) == fold]
            for it in held:
                raw = it["vector"]
                new = adapt(raw, a)
                results["raw"][name].append((fold, *outcome(it, raw, raw)))
                results["dense"][name].append((fold, *outcome(it, new, raw)))
                results["dense+sentence"][name].append((fold, *outcome(it, new, new)))
        line = []
        for name in prepared:
            parts = []
            for v in variants:
                got = [r for r in results[v][name] if r[0] == fold]
                if got:
                    parts.append(
                        f"{v} {np.mean([r[1] for r in got]):.3f} / {np.mean([r[2] for r in got]):.3f}"
                    )
            line.append(f"{name} ({len(got)}): " + ", ".join(parts))
        print("  held-out fold " + "; ".join(line), flush=True)

    print("Pooled over the folds (recall@5 / hit@1; gained / lost vs raw; paired standard error):")
    for name in prepared:
        base = results["raw"][name]
        n = len(base)
        print(f"  {name} ({n}) raw {np.mean([r[1] for r in base]):.3f} / {np.mean([r[2] for r in base]):.3f}")
        for v in variants[1:]:
            got = results[v][name]
            parts = []
            for i, label in ((1, "recall@5"), (2, "hit@1")):
                diff = np.array([int(g[i]) - int(b[i]) for g, b in zip(got, base, strict=True)])
                gained, lost = int((diff > 0).sum()), int((diff < 0).sum())
                se = float(diff.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
                parts.append(
                    f"{label} {np.mean([r[i] for r in got]):.3f} ({diff.mean():+.4f}, +{gained} -{lost}, "
                    f"se {se:.4f})"
                )
            print(f"    {v}: " + "; ".join(parts), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
