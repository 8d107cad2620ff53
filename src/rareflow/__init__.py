"""rareflow: rare-event selection and anomaly detection with normalizing flows and autoencoders.

``import rareflow`` is light; the table loaders are imported on first use:

* :func:`rareflow.load_table` — a table (Parquet, CSV, UCI MAGIC, DL1 HDF5) as a DataFrame;
* :func:`rareflow.load_dataset` — ``X, y, weight`` selected and validated as ``rareflow train`` does;
* :func:`rareflow.simulate_table` — simulated IACT events (the table of ``rareflow simulate``).
"""

from __future__ import annotations

from typing import Any

from rareflow.errors import RareflowError

__version__ = "0.1.0"

_LAZY = {"load_table": "rareflow.api", "load_dataset": "rareflow.api", "simulate_table": "rareflow.api"}

__all__ = ["RareflowError", "__version__", "load_dataset", "load_table", "simulate_table"]


def __getattr__(name: str) -> Any:
    """Import the heavy API (pandas, scikit-learn) only when it is used (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rareflow' has no attribute {name!r}")
