"""Turn folders of documents into a persisted, incrementally updated search index.

Pipeline: load (txt, md, html, pdf, docx) -> chunk (sentences, token budget, exact char offsets)
-> embed (sentence-transformers) -> store (FAISS + BM25 lexical index + chunk table + manifest).

This package knows nothing of question answering (`rag` builds on it, never the reverse), and importing
it loads neither torch nor a model: the heavy pieces are imported on first use.
"""

from index.config import IndexConfig
from index.records import Chunk, Document, Section

__all__ = ["Chunk", "Document", "IndexConfig", "Section"]
