"""Errors meant for people: each names the bad value or the failing part and says how to fix it."""


class RagError(Exception):
    """Base of every error the product shows to a user."""


class BackendError(RagError):
    """An LLM backend is unreachable, misconfigured or failed mid-answer. The chat keeps running."""


class IndexUnavailableError(RagError):
    """There is no usable index at the configured folder."""


class InvalidArgumentError(RagError, ValueError):
    """An argument of the Python API has the wrong type or value; the message names the argument."""
