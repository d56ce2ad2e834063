"""Evaluation suite of the product: golden Q&A sets and PIAF, retrieval/answer/citation/abstention metrics,
baselines (plain BM25, naive LangChain RAG), reports and benchmarks.

It drives the product only through `rag`'s public API (and `index` for baselines and benchmarks), and
imports nothing heavy at import time. Entry point: `rag eval` (see `eval.cli`).
"""
