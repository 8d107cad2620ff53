"""The one error type users see.

Every check at the edge of the library (files, columns, configs, CLI arguments) raises
:class:`RareflowError` with a one-line message that names the file / column / row and the fix.
The CLI turns it into one line on stderr and exit status 2; inside the library arrays are trusted.
"""

from __future__ import annotations


class RareflowError(Exception):
    """A user-facing error: bad input, a missing column, a model that does not match the data."""

    def __init__(self, message: str) -> None:
        # One line only: a multi-line message would break the CLI contract.
        super().__init__(" ".join(str(message).split()))
