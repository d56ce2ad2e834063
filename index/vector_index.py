"""The FAISS index of a folder store: exact inner product (IndexFlatIP) up to FLAT_MAX_VECTORS, HNSW above.

Vectors are normalised, so inner product is cosine similarity. FAISS has its own binary format (no pickle).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

# Exact search up to this many vectors, HNSW (approximate, sub-linear) above. Measured with
# `python -m eval.benchmarks.scale` (dim 384, one FAISS thread, 2-core machine): exact search passes 10 ms
# p50 near 84k vectors (36 ms at 100k, 175 ms at 1M) while HNSW stays at 1-2 ms from 100k to 1M.
FLAT_MAX_VECTORS = 80_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 200
HNSW_EF_SEARCH = 128


def vector_index_kind(count: int) -> str:
    return "flat_ip" if count <= FLAT_MAX_VECTORS else "hnsw_ip"


def make_vector_index(vectors: np.ndarray) -> faiss.Index:
    import faiss

    dimension = vectors.shape[1]
    if vector_index_kind(len(vectors)) == "flat_ip":
        index = faiss.IndexFlatIP(dimension)
    else:
        index = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def write_vector_index(vectors: np.ndarray, path: Path) -> None:
    import faiss

    faiss.write_index(make_vector_index(vectors), str(path))


def read_vector_index(path: Path) -> faiss.Index:
    import faiss

    index = faiss.read_index(str(path))
    if hasattr(index, "hnsw"):  # a FAISS type test: only HNSW indexes have this member
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return index
