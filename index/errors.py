"""Errors of the indexing side, written for people: each names the folder, file or setting at fault and
says how to fix it. `rag` maps them to its own errors; nothing here imports `rag`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


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


class IndexWriteError(IndexError_):
    """The index folder cannot be written (full disk, read-only folder); the previous index is unchanged."""


class IndexPathError(IndexError_):
    """A path given to index does not exist or cannot be read; raised before the index is touched."""


class EmbeddingUnavailable(IndexError_):  # noqa: N818 - name fixed by the shared contract
    """The configured embedding model cannot be loaded (offline and not cached, bad folder, ...)."""


def missing(what: str, key: object, where: str) -> KeyError:
    """The KeyError of every index lookup: "No chunk 'd#3' in the index /path" names what and where."""
    return KeyError(f"No {what} {key!r} in {where}")


def look_up(table: Mapping[K, V], key: K, what: str, where: str) -> V:
    """`table[key]`, or `missing(what, key, where)` instead of a bare KeyError."""
    try:
        return table[key]
    except KeyError:
        raise missing(what, key, where) from None
