"""Late interaction's storage: smaller forms of the stored token vectors, measured on PIAF dev.

    .venv/bin/python -m eval.benchmarks.token_storage --model /root/.cache/rag-fr/e5-small
        [--piaf-dir ../shared/bench/piaf] [--cache DIR] [--questions 1200]

Every form is derived from the cached hybrid PIAF index's own token vectors (`tokens.npz`, int8 with a scale
per token, `index.tokens`): nothing is embedded again but the questions. Each question is ranked by the
product's retriever without late interaction (`HybridRetriever.rankings` + `fuse`, the default settings),
then its `late_interaction_candidates` best are rescored by each form's MaxSim with the default weight
(`late_rescore`, the product's rescoring). Printed per form: recall@5 / hit@1 of the gold paragraph for
the French dev questions (1,200, seed 5, as `fusion_sweep`) and the 300 translated ones (en, de), the bytes
per stored token (codes, scale, offsets, token id), the size for PIAF, and the MaxSim's ms per question
(its product only, on one BLAS thread; under load: indicative). PIAF test is never read.

An index written in the projected form (`TokenTable.compacted`) is measured as it is stored, alone.

Forms (the question's tokens go through the same projection as the stored ones):
- `int8 384`: what the index stores today;
- `words`: only the tokens holding a letter or digit (what a question's MaxSim averages over);
- `pca K`: the uncentred principal directions of the corpus's own tokens (fitted on a sample), K kept,
  int8 of the projections (`TokenTable.projected`: their lengths kept); `20k first`: fitted on the first
  20,000 word tokens only (a few articles: what an index that grows from a small one gets); `product`: what
  the folder store writes (`TokenTable.compacted`);
- `random K`: a fixed random orthogonal projection (seed 0), K kept, int8 of the projections;
- `int4`: 4-bit codes with one scale per token;
- `sign`: one bit per dimension after a random rotation, scored by the question's rotated vector against
  the ±1 codes (the asymmetric estimate).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.benchmarks.answer_figures import write_piaf_corpus
from eval.benchmarks.calibrate_hybrid import model_benchmark_parser, open_hybrid
from eval.benchmarks.fusion_sweep import question_sets

OVERHEAD = 4 + 4 + 4 + 4  # per token: float32 scale, int32 start and end, int32 token id
SAMPLE = 60_000  # tokens the principal directions are fitted on


@dataclass
class Form:
    name: str
    table: object  # index.tokens.TokenTable holding the form's codes (scored as the product scores)
    code_bytes: float  # bytes of one token's codes as stored
    transform: Callable[[np.ndarray], np.ndarray] | None = None  # the question tokens' projection
    extra_bytes: int = 0  # a projection matrix stored beside the codes

    def bytes_per_token(self) -> float:
        return self.code_bytes + OVERHEAD

    def megabytes(self) -> float:
        table = self.table
        return (len(table) * self.bytes_per_token() + 8 * len(table.bounds) + self.extra_bytes) / 1e6


def word_tokens(store) -> np.ndarray:
    """Whether each stored token holds a letter or digit (read from the documents' texts)."""
    table = store.token_table
    chunk_of = np.repeat(np.arange(table.chunk_count), np.diff(table.bounds))
    texts = [store.document_text(chunk.doc_id) for chunk in store.chunks]
    return np.array(
        [
            any(ch.isalnum() for ch in texts[c][a:b])
            for c, a, b in zip(chunk_of.tolist(), table.starts.tolist(), table.ends.tolist(), strict=True)
        ],
        dtype=bool,
    )


def forms(store, sample: int) -> Iterator[Form]:
    """Each form in turn (one held at a time: a form of PIAF's tokens is up to 110 MB)."""
    from index.tokens import TokenTable

    table = store.token_table
    if table.basis is not None:  # an index written in the projected form: measured as it is
        yield Form(
            f"as stored: {table.basis.shape[1]} of {table.dimension} directions",
            table,
            table.codes.shape[1],
            extra_bytes=table.basis.nbytes,
        )
        return
    words = word_tokens(store)
    decoded = table.decoded(slice(None))

    def with_codes(codes: np.ndarray, scales: np.ndarray, keep: np.ndarray | None = None) -> TokenTable:
        if keep is None:
            return TokenTable(table.bounds, codes, scales, table.starts, table.ends, table.ids)
        chunk_of = np.repeat(np.arange(table.chunk_count), np.diff(table.bounds))
        counts = np.bincount(chunk_of[keep], minlength=table.chunk_count)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        return TokenTable(
            bounds, codes[keep], scales[keep], table.starts[keep], table.ends[keep], table.ids[keep]
        )

    dimension = table.dimension
    rng = np.random.default_rng(0)
    held = np.flatnonzero(words)
    fit = decoded[np.sort(rng.choice(held, size=min(sample, len(held)), replace=False))]
    principal = np.linalg.eigh(fit.T @ fit)[1][:, ::-1].astype(np.float32)  # strongest direction first
    first = decoded[held[:20_000]]  # the first 20,000 word tokens: a few articles, as a small index grows
    early = np.linalg.eigh(first.T @ first)[1][:, ::-1].astype(np.float32)
    rotation = np.linalg.qr(rng.normal(size=(dimension, dimension)))[0].astype(np.float32)
    del fit, first
    word_table = with_codes(table.codes, table.scales, words)

    yield Form(f"int8 {dimension} (today)", table, dimension)
    yield Form(f"int8 {dimension}, words", word_table, dimension)
    product = word_table.compacted()  # what the folder store writes (`TokenTable.compacted`)
    k = product.codes.shape[1]
    yield Form(f"product: pca {k} int8, words", product, k, extra_bytes=product.basis.nbytes)
    for k in (256, 192, 160, 128, 96, 64):
        for source, label in ((table, ""), (word_table, ", words")):
            basis = principal[:, :k]
            yield Form(f"pca {k} int8{label}", source.projected(basis), k, extra_bytes=basis.nbytes)
    for k in (192, 128):
        basis = early[:, :k]
        yield Form(
            f"pca {k} int8, words, 20k first", word_table.projected(basis), k, extra_bytes=basis.nbytes
        )
    yield Form("random 128 int8, words", word_table.projected(rotation[:, :128]), 128)
    for basis, label in (
        (None, f"int4 {dimension}"),
        (principal[:, :128], "pca 128 int4"),
        (principal[:, :192], "pca 192 int4"),
    ):
        vectors = decoded if basis is None else (word_table.projected(basis).decoded(slice(None)))
        scales = np.abs(vectors).max(1) / 7.0
        scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
        codes = np.clip(np.round(vectors / scales[:, None]), -7, 7).astype(np.int8)
        if basis is None:
            four = with_codes(codes, scales, words)
        else:
            four = TokenTable(
                word_table.bounds, codes, scales, word_table.starts, word_table.ends, word_table.ids, basis
            )
        yield Form(
            f"{label}, words", four, four.codes.shape[1] / 2, extra_bytes=0 if basis is None else basis.nbytes
        )
    signs = np.where(decoded @ rotation >= 0, 1, -1).astype(np.int8)
    ones = np.full(len(signs), 1.0 / np.sqrt(dimension), dtype=np.float32)
    yield Form(
        f"sign {dimension} bits, words",
        with_codes(signs, ones, words),
        dimension / 8 - 4,  # no scale stored
        lambda q: q @ rotation,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = model_benchmark_parser(__doc__)
    parser.add_argument("--questions", type=int, default=1200, help="French PIAF dev questions sampled")
    parser.add_argument("--sample", type=int, default=SAMPLE, help="tokens the PCA is fitted on")
    parser.add_argument("--only", default="", help="comma-separated parts of the names of the forms to run")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from index.tokens import one_blas_thread
    from rag.chain import question_language
    from rag.retrieval import late_rescore

    corpus = args.cache / "piaf-corpus"
    write_piaf_corpus(args.piaf_dir, corpus)
    assistant = open_hybrid(corpus, args.cache / f"piaf-{Path(args.model).name}", args.model)
    store, retriever = assistant.store, assistant.retriever
    table = store.token_table
    settings = assistant.settings.retrieval
    weight, count = settings.late_interaction_weight, settings.late_interaction_candidates
    gold_of_row = [Path(c.doc_id).stem for c in store.chunks]
    sets = question_sets(args.piaf_dir, "dev", args.questions)

    started = time.perf_counter()
    prepared: dict[str, list] = {}
    for name, items in sets.items():
        encodings = store.embedder.encode_queries([q for q, _ in items])
        rows = []
        for (question, gold), encoding in zip(items, encodings, strict=True):
            store._query_vectors[question] = encoding  # the product's memo: one model call per question
            rankings = retriever.rankings(question, question_language(question), settings.candidates)
            fused = retriever.fuse(rankings)
            words = encoding.tokens.words
            vectors = np.asarray(encoding.tokens.vectors[words], dtype=np.float32)
            rows.append((gold, fused, vectors, table.idf(encoding.tokens.ids[words])))
            del store._query_vectors[question]
        prepared[name] = rows
    print(
        f"PIAF dev, {len(store.chunks)} chunks, {len(table)} stored tokens, model {args.model}; rankings in "
        f"{time.perf_counter() - started:.0f} s; late interaction weight {weight} over {count} candidates",
        flush=True,
    )

    def figures(rescore: Callable | None) -> tuple[list[str], float]:
        parts, seconds, asked = [], 0.0, 0
        for name, rows in prepared.items():
            recall = hit = 0
            for gold, fused, vectors, weights in rows:
                if rescore is not None:
                    head = [r for r, _ in fused[:count]]
                    began = time.perf_counter()
                    values = rescore(vectors, weights, head)
                    seconds += time.perf_counter() - began
                    asked += 1
                    fused = late_rescore(fused, [float(v) for v in values], weight)
                top = [gold_of_row[r] for r, _ in fused[:5]]
                recall += gold in top
                hit += bool(top) and top[0] == gold
            parts.append(f"{name.split()[0]} {recall / len(rows):.3f} / {hit / len(rows):.3f}")
        return parts, 1000 * seconds / max(asked, 1)

    parts, _ = figures(None)
    print(f"  {'no late interaction':<28} {'':>24}   " + "   ".join(parts), flush=True)
    wanted = [part.strip() for part in args.only.split(",") if part.strip()]
    for form in forms(store, args.sample):
        if wanted and not any(part in form.name for part in wanted):
            continue

        def rescore(vectors, weights, head, form=form):  # noqa: ANN001, ANN202
            if form.transform is not None:
                vectors = form.transform(vectors)
            return form.table.maxsim(vectors, weights, head)

        with one_blas_thread():
            parts, ms = figures(rescore)
        size = f"{form.bytes_per_token():5.0f} B/token {form.megabytes():6.1f} MB"
        print(f"  {form.name:<28} {size}   " + "   ".join(parts) + f"   MaxSim {ms:.2f} ms", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
