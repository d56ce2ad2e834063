"""How retrieval scales: FAISS flat vs HNSW vs IVF, and the product's BM25, on synthetic chunks.

Prints figures (it is a benchmark script, not a test):

- vectors: random unit vectors (dim 384, seed 0); queries are noisy copies of stored vectors (so each has
  real near neighbours). For each size: build time, bytes held, single-query latency p50/p95 (one query
  at a time, as a chat does), and recall@10 of HNSW and IVF against exact flat search;
- the flat-search threshold: flat p50 measured on growing prefixes of the same matrix, and the size where
  it crosses --flat-budget-ms (10 ms by default): the value to give `index.vector_index.FLAT_MAX_VECTORS`;
- BM25 (`index.lexical.BM25Index`) over random texts (Zipf-distributed vocabulary, 60 words per chunk):
  build time and query latency.

HNSW uses the store's own parameters (HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH); IVF uses
nlist = sqrt(N) rounded, trained on at most 40 * nlist vectors, nprobe = 16. Uniform random vectors
are the hardest case for approximate indexes (no cluster structure), so their recall here is a lower bound.

Usage: python -m eval.benchmarks.scale [--sizes 10000,100000,1000000] [--queries 200] [--skip-bm25]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

DIM = 384
TOP_K = 10


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def unit_rows(rng: np.random.Generator, count: int, dim: int = DIM) -> np.ndarray:
    out = np.empty((count, dim), dtype=np.float32)
    step = 100_000
    for lo in range(0, count, step):
        block = rng.standard_normal((min(step, count - lo), dim), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[lo : lo + len(block)] = block
    return out


def noisy_queries(
    rng: np.random.Generator, vectors: np.ndarray, count: int, noise: float = 0.5
) -> np.ndarray:
    picks = rng.integers(0, len(vectors), count)
    queries = vectors[picks] + noise * unit_rows(rng, count, vectors.shape[1])
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def time_queries(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[float, float, list[Any]]:
    """Median and p95 latency (ms) of one-at-a-time searches on one thread, and their results.

    One thread: a chat serves one query at a time, and OpenMP threads that spin-wait on a shared 2-core
    machine make multi-threaded single-query timings erratic.
    """
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return _time_queries(search, queries)
    finally:
        faiss.omp_set_num_threads(threads)


def _time_queries(search: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[float, float, list[Any]]:
    search(queries[:1])  # warm-up
    times, results = [], []
    for row in range(len(queries)):
        started = time.perf_counter()
        results.append(search(queries[row : row + 1]))
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95)), results


def recall_vs(exact: list[np.ndarray], approx: list[np.ndarray], k: int = TOP_K) -> float:
    """Share of the exact top-k ids that the approximate search also returns in its top-k."""
    hits = sum(
        len(set(e.ravel()[:k].tolist()) & set(a.ravel()[:k].tolist()))
        for e, a in zip(exact, approx, strict=True)
    )
    return hits / (k * len(exact))


def bench_vectors(
    vectors: np.ndarray, queries: np.ndarray, ef_construction: int, ivf_nprobe: int = 16
) -> list[dict[str, Any]]:
    import faiss

    from index.vector_index import HNSW_EF_SEARCH, HNSW_M

    count, dim = vectors.shape
    exact: list[np.ndarray] | None = None  # the flat index's answers: the reference for the approximate ones

    def measure(kind: str, build_s: float, index: Any, mb: float) -> dict[str, Any]:
        nonlocal exact
        p50, p95, found = time_queries(lambda q: index.search(q, TOP_K)[1], queries)
        if exact is None:
            exact = found
        return {
            "kind": kind,
            "n": count,
            "build_s": build_s,
            "p50_ms": p50,
            "p95_ms": p95,
            "recall@10": recall_vs(exact, found),
            "recall@1": recall_vs(exact, found, 1),
            "mb": mb,
        }

    started = time.perf_counter()
    flat = faiss.IndexFlatIP(dim)
    flat.add(vectors)
    rows = [measure("flat", time.perf_counter() - started, flat, count * dim * 4 / 2**20)]

    started = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = ef_construction
    hnsw.add(vectors)
    build = time.perf_counter() - started
    hnsw.hnsw.efSearch = HNSW_EF_SEARCH
    kind = f"hnsw M={HNSW_M} efC={ef_construction} efS={HNSW_EF_SEARCH}"
    rows.append(measure(kind, build, hnsw, (count * dim * 4 + count * HNSW_M * 2 * 4) / 2**20))

    nlist = max(16, int(round(math.sqrt(count))))
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = vectors[np.random.default_rng(1).choice(count, min(count, 40 * nlist), replace=False)]
    ivf.train(sample)
    ivf.add(vectors)
    build = time.perf_counter() - started
    ivf.nprobe = ivf_nprobe
    mb = (count * (dim * 4 + 8) + nlist * dim * 4) / 2**20
    rows.append(measure(f"ivf nlist={nlist} nprobe={ivf_nprobe}", build, ivf, mb))
    return rows


def flat_threshold(
    vectors: np.ndarray, queries: np.ndarray, budget_ms: float
) -> tuple[list[tuple[int, float]], int]:
    """Flat p50 on growing prefixes; the largest size whose p50 fits the budget (linear interpolation)."""
    import faiss

    points: list[tuple[int, float]] = []
    sizes = [
        s
        for s in (10_000, 25_000, 50_000, 100_000, 200_000, 300_000, 500_000, 1_000_000)
        if s <= len(vectors)
    ]
    for size in sizes:
        flat = faiss.IndexFlatIP(vectors.shape[1])
        flat.add(vectors[:size])
        p50, _, _ = time_queries(lambda q, index=flat: index.search(q, TOP_K)[1], queries[:100])
        points.append((size, p50))
    threshold = points[-1][0]
    for (n0, t0), (n1, t1) in zip(points, points[1:], strict=False):
        if t1 > budget_ms >= t0:
            threshold = int(n0 + (budget_ms - t0) * (n1 - n0) / max(t1 - t0, 1e-9))
            break
    else:
        if points and points[0][1] > budget_ms:
            threshold = 0
    return points, threshold


def bench_bm25(count: int, queries: int, rng: np.random.Generator) -> dict[str, Any]:
    from index.lexical import BM25Index

    vocabulary = np.array([f"w{i}" for i in range(50_000)])
    ranks = np.arange(1, len(vocabulary) + 1)
    probabilities = (1.0 / ranks) / np.sum(1.0 / ranks)  # Zipf: like word frequencies of real text
    words = rng.choice(len(vocabulary), size=(count, 60), p=probabilities)
    started = time.perf_counter()
    index = BM25Index().build(vocabulary[row].tolist() for row in words)
    index.scores(["w1"])  # posting weights are computed on first use: count them in the build
    build = time.perf_counter() - started
    query_words = rng.choice(len(vocabulary), size=(queries, 6), p=probabilities)
    times = []
    for row in query_words:
        tokens = vocabulary[row].tolist()
        started = time.perf_counter()
        index.search(tokens, TOP_K)
        times.append((time.perf_counter() - started) * 1000)
    return {
        "n": count,
        "build_s": build,
        "p50_ms": float(np.percentile(times, 50)),
        "p95_ms": float(np.percentile(times, 95)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--flat-budget-ms", type=float, default=10.0)
    parser.add_argument("--skip-bm25", action="store_true")
    parser.add_argument(
        "--hnsw-ef-construction",
        type=int,
        default=None,
        help="HNSW efConstruction (default: index.vector_index.HNSW_EF_CONSTRUCTION); 40 is faiss's default",
    )
    parser.add_argument("--skip-ann", action="store_true", help="only the flat threshold (and BM25)")
    args = parser.parse_args(argv)
    import faiss

    from index.vector_index import HNSW_EF_CONSTRUCTION

    ef_construction = args.hnsw_ef_construction or HNSW_EF_CONSTRUCTION
    sizes = [int(s) for s in args.sizes.split(",") if s]
    rng = np.random.default_rng(0)
    print(
        f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, dim {DIM}, top-{TOP_K}, "
        f"{args.queries} single queries per point"
    )
    started = time.perf_counter()
    vectors = unit_rows(rng, max(sizes))
    queries_all = noisy_queries(rng, vectors, args.queries)
    print(
        f"generated {len(vectors):,} vectors in {time.perf_counter() - started:.1f}s (RSS {rss_mb():.0f} MB)"
    )

    points, threshold = flat_threshold(vectors, queries_all, args.flat_budget_ms)
    print("\nflat (IndexFlatIP) p50 by size:")
    for size, p50 in points:
        print(f"  {size:>9,}  p50 {p50:7.2f} ms")
    print(
        f"flat p50 crosses {args.flat_budget_ms:g} ms at ~{threshold:,} vectors -> FLAT_MAX_VECTORS ≈ {threshold:,}"
    )

    if not args.skip_ann:
        print(
            "\n| N | index | build s | p50 ms | p95 ms | recall@10 vs flat | recall@1 vs flat | MB (vectors+graph/lists) | RSS MB |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for size in sizes:
            queries = noisy_queries(np.random.default_rng(size), vectors[:size], args.queries)
            for row in bench_vectors(vectors[:size], queries, ef_construction):
                print(
                    f"| {row['n']:,} | {row['kind']} | {row['build_s']:.1f} | {row['p50_ms']:.2f} | "
                    f"{row['p95_ms']:.2f} | {row['recall@10']:.3f} | {row['recall@1']:.3f} | {row['mb']:.0f} | {rss_mb():.0f} |",
                    flush=True,
                )
    del vectors
    if not args.skip_bm25:
        print("\n| N chunks | BM25 build s | query p50 ms | query p95 ms |")
        print("| --- | --- | --- | --- |")
        for size in sizes:
            row = bench_bm25(size, args.queries, np.random.default_rng(size))
            print(
                f"| {row['n']:,} | {row['build_s']:.1f} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
