"""scikit-learn models inside rareflow model files, through skops (no pickle).

``skops.io`` rebuilds objects from a JSON schema and refuses any type not explicitly trusted.
Each detector passes the few extra types its estimator needs; anything else in a file is an error.
``skops.io`` is imported on first use: it imports every scikit-learn module (and through
scikit-learn's array-API support, torch), seconds that a detector which is only fitted never pays.
"""

from __future__ import annotations

from typing import Any

from rareflow.errors import RareflowError


def dump_sklearn(model: Any) -> bytes:
    """Serialise a fitted scikit-learn estimator with skops."""
    import skops.io as sio

    return sio.dumps(model)


def load_sklearn(blob: bytes, allowed: frozenset[str]) -> Any:
    """Load a skops blob, trusting only ``allowed`` types beyond skops' own safe defaults."""
    import skops.io as sio

    untrusted = set(sio.get_untrusted_types(data=blob))
    unexpected = untrusted - allowed
    if unexpected:
        raise RareflowError(
            f"model file holds unexpected types {sorted(unexpected)}; refusing to load it (retrain the model)"
        )
    return sio.loads(blob, trusted=sorted(untrusted))
