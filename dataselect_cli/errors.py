"""The two failures a user can cause, and how the CLI reports them.

Everything the tool rejects because of the user's input raises :class:`InputError`; the CLI
prints its one-line message on stderr and exits 2. Any other exception is a bug (exit 1).
"""

from __future__ import annotations


class DataselectError(Exception):
    """Base class of the errors this package raises on purpose."""


class InputError(DataselectError):
    """Bad input or bad usage: one line naming the file, column or row, and what to do.

    Parameters
    ----------
    message : str
        What is wrong and what to do about it.
    path : str or None, default=None
        The file at fault; prefixed to the message when given.
    """

    exit_code = 2

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


def with_article(word: str) -> str:
    """``"a scores"``, ``"an embeddings"``: a noun with its indefinite article, for messages."""
    return ("an " if word[:1] in "aeiou" else "a ") + word
