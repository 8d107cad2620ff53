"""The Python API behind the CLI commands that are more than one call (``train``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rareflow.data.tables import keep_valid, parse_feature_list, prepare_dataset, read_table
from rareflow.detectors import Detector, detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import save_model


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
) -> Detector:
    """Read ``data``, fit ``method`` and (if ``out``) save the model.

    ``fit_on``: ``bulk``/``rare`` for one-class methods (default bulk), ``both`` (the default) for
    two-class and supervised ones. One-class methods train on the rows of their class when the
    table has labels (the other class may be absent), on every row otherwise. Rows flagged
    ``is_valid=False`` (images with < 3 pixels) are skipped by design.
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
    df = keep_valid(read_table(data, fmt), str(data))
    ds = prepare_dataset(
        df, str(data), parse_feature_list(features), rare_label, bulk_labels,
        need_labels=cls.requires_labels or (cls.kind == "one-class" and "label" in df.columns),
        drop_nonfinite=drop_nonfinite, needed=params["fit_on"] if cls.kind == "one-class" else "both",
    )
    det = get_detector(method, **params)
    det.fit(ds.X, ds.y, sample_weight=ds.weight)
    if out is not None:
        save_model(det, out)
    return det
