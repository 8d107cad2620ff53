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


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (``...`` marks the cut), for quoting user input.

    A message must never format an unbounded user value: a YAML alias tree or a 100k-digit
    integer would cost memory and time and flood the terminal. :mod:`reprlib` bounds the depth
    and width of containers before any string is built; huge integers are described, not printed.
    """
    import reprlib

    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4 * limit:
        return f"<int of about {int(value.bit_length() * 0.30103)} digits>"
    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxdict, r.maxtuple, r.maxset, r.maxfrozenset = 3, 8, 8, 8, 8, 8
    r.maxstring, r.maxother, r.maxlong = limit, limit, limit
    try:
        text = r.repr(value)
    except Exception:  # a hostile __repr__ or a huge int inside a container
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."
