"""Errors of the indexing side, written for people: each names the folder, file or setting at fault and
says how to fix it. `rag` maps them to its own errors; nothing here imports `rag`."""

from __future__ import annotations


class IndexError_(Exception):  # noqa: N801 - trailing underscore: `IndexError` is a builtin
    """Base of every error raised by the `index` package."""


class IndexNotFoundError(IndexError_):
    """There is no index (no CURRENT pointer) in the folder."""


class IndexFormatError(IndexError_):
    """The index was written by another version of the format, or its files are damaged."""


class IndexMismatchError(IndexError_):
    """The index was built with other settings (embedding model, mode) than the ones configured now."""


class IndexLockedError(IndexError_):
    """Another process is writing the index."""


class IndexPathError(IndexError_):
    """A path given to index does not exist or cannot be read; raised before the index is touched."""


class EmbeddingUnavailable(IndexError_):  # noqa: N818 - name fixed by the shared contract
    """The configured embedding model cannot be loaded (offline and not cached, bad folder, ...)."""
