"""The Python API behind the CLI: read tables the way the CLI does, train a model.

``load_table`` / ``load_dataset`` / ``simulate_table`` are also ``rareflow.load_table``, ... (imported
on first use, so ``import rareflow`` stays light)::

    X, y, w = rareflow.load_dataset("events.parquet", rare_label="gamma", bulk_label=["proton"])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from rareflow.data.tables import parse_feature_list, prepare_dataset, read_table
from rareflow.detectors import Detector, detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.fingerprint import holdout_mask, training_record
from rareflow.persistence import save_model


class LoadedData(NamedTuple):
    """Features (DataFrame), labels (1 rare / 0 bulk, or None without labels) and event weights (or None)."""

    X: pd.DataFrame
    y: np.ndarray | None
    weight: np.ndarray | None


def load_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """The whole table at ``path`` (Parquet, CSV, UCI MAGIC, ctapipe DL1 HDF5), as the CLI reads it."""
    return read_table(path, fmt)


def simulate_table(n_events: int = 4000, rare_fraction: float = 0.5, seed: int = 0, **options: Any) -> pd.DataFrame:
    """The Hillas table of ``rareflow simulate`` (gamma / proton / muon camera images, cleaned).

    ``options`` go to :func:`rareflow.data.simulate.simulate_events` (``muon_fraction``, ``source``,
    ``dead_pixel_fraction``, ...). Rows with ``is_valid`` False (< 3 pixels after cleaning) hold NaN
    parameters.
    """
    from rareflow.data.simulate import simulate_events

    return simulate_events(n_events, rare_fraction, seed, **options).table


def load_dataset(
    data: str | Path | pd.DataFrame,
    *,
    rare_label: str = "gamma",
    bulk_label: str | Sequence[str] | None = None,
    features: str | Sequence[str] | None = None,
    fmt: str | None = None,
    drop_nonfinite: bool = False,
    need_labels: bool | None = None,
) -> LoadedData:
    """``X, y, weight`` of a table, selected and validated exactly as ``rareflow train`` does.

    ``bulk_label``: one label or several (default: every label but ``rare_label``); rows of other
    labels are dropped. ``features``: names or ``"a,b,c"`` (default: every numeric column except
    label, weight, ids and ``true_*``). ``need_labels``: None = use labels when the table has a
    ``label`` column holding ``rare_label``; True = require them.
    """
    df = data if isinstance(data, pd.DataFrame) else read_table(data, fmt)
    source = "DataFrame" if isinstance(data, pd.DataFrame) else str(data)
    bulk = [bulk_label] if isinstance(bulk_label, str) else bulk_label
    ds = prepare_dataset(
        df, source, parse_feature_list(features), rare_label, bulk,
        need_labels=bool(need_labels), drop_nonfinite=drop_nonfinite,
    )  # fmt: skip
    return LoadedData(ds.X, ds.y, ds.weight)


def train_model(
    method: str,
    data: str | Path,
    out: str | Path | None = None,
    *,
    features: str | Sequence[str] | None = None,
    fit_on: str | None = None,
    rare_label: str = "gamma",
    bulk_labels: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    fmt: str | None = None,
    drop_nonfinite: bool = False,
    seed: int = 0,
    holdout: float = 0.0,
) -> Detector:
    """Read ``data``, fit ``method`` and (if ``out``) save the model.

    ``fit_on``: ``bulk``/``rare`` for one-class methods (default bulk), ``both`` (the default) for
    two-class and supervised ones. One-class methods train on the rows of their class when the
    table has labels, on every row otherwise. ``holdout``: fraction of the table's rows left out
    of training (seeded by ``seed``, see :mod:`rareflow.fingerprint`); the model remembers the
    table's fingerprint either way.
    """
    cls = detector_class(method)
    params = dict(params or {})
    if cls.kind == "one-class":
        fit_on = fit_on or params.get("fit_on", "bulk")
        if fit_on not in ("bulk", "rare"):
            raise RareflowError(f"--fit-on {fit_on}: one-class method '{method}' fits on bulk or rare")
        params["fit_on"] = fit_on
    elif fit_on not in (None, "both"):
        raise RareflowError(f"--fit-on {fit_on}: {cls.kind} method '{method}' trains on both classes (--fit-on both)")
    if "random_state" in cls._get_param_names() and "random_state" not in params:
        params["random_state"] = seed
    det = get_detector(method, **params)  # parameter errors before reading the data
    df = read_table(data, fmt)
    held = holdout_mask(len(df), holdout, seed)
    train_df = df.loc[~held].reset_index(drop=True) if held.any() else df
    ds = prepare_dataset(
        train_df, str(data), parse_feature_list(features), rare_label, bulk_labels,
        need_labels=cls.requires_labels or (cls.kind == "one-class" and "label" in df.columns),
        drop_nonfinite=drop_nonfinite,
    )  # fmt: skip
    det.fit(ds.X, ds.y, sample_weight=ds.weight)
    det.training_data_ = training_record(df, ds.features, holdout, seed)
    if out is not None:
        save_model(det, out)
    return det
