"""Generated outliers as feature tables (the ``rareflow outliers`` command is :func:`rareflow.api.outliers_command`).

The table holds the model's feature columns (so ``rareflow score`` accepts it: scoring only reads
the model's features), ``label = "generated"`` and generation columns

* ``gen_method`` — ``extremal`` | ``tail`` | ``gumbel`` | ``inlier`` | ``archetype`` | ``nullspace``,
* ``gen_sigma`` — ``p`` of the radius law (units of :math:`\\mathrm{sd}\\,\\chi_d`) or the Dirichlet
  concentration for ``archetype`` / ``nullspace``,
* ``gen_radius`` — latent radius :math:`\\lVert z \\rVert` of the point,
* ``gen_chi_tail`` — :math:`P(\\chi_d > \\lVert z\\rVert)`,
* ``gen_seed``;

all settings also go to the Parquet schema metadata under ``rareflow_outliers`` (JSON).
Written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rareflow.atomic import atomic_path
from rareflow.errors import RareflowError

METADATA_KEY = b"rareflow_outliers"
CLI_METHODS = ("extremal", "gumbel", "archetype", "nullspace")
ALL_METHODS = ("extremal", "tail", "gumbel", "inlier", "archetype", "nullspace")
GENERATED_LABEL = "generated"


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def outliers_frame(
    X: np.ndarray, feature_names: list[str], params: dict[str, Any], per_row: dict[str, np.ndarray] | None = None
) -> pd.DataFrame:
    """DataFrame of the features, ``label`` and ``gen_*`` columns (``per_row`` values or scalars of ``params``)."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise RareflowError(f"outliers have shape {X.shape} but {len(feature_names)} feature names were given")
    df = pd.DataFrame(X, columns=[str(c) for c in feature_names])
    df["label"] = GENERATED_LABEL
    df["gen_method"] = str(params.get("method", "unknown"))
    for name, values in (per_row or {}).items():
        df[f"gen_{name}"] = np.asarray(values)
    if "gen_seed" not in df.columns and params.get("seed") is not None:
        df["gen_seed"] = int(params["seed"])
    return df


def write_outliers(
    path: str | os.PathLike[str],
    X: np.ndarray,
    feature_names: list[str],
    params: dict[str, Any],
    per_row: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Write generated points ``X`` as a Parquet feature table (atomic); returns the DataFrame.

    ``params``: the generation settings (``method``, ``sigma``, ``seed``, ...; stored as JSON in
    the schema metadata); ``per_row``: columns such as ``{"sigma": p, "radius": r}`` written as
    ``gen_sigma``, ``gen_radius``.
    """
    df = outliers_frame(X, feature_names, params, per_row)
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = json.dumps({"features": list(map(str, feature_names)), **params}, default=_json_default)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: meta.encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return df


def read_outlier_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The generation settings stored by :func:`write_outliers` (empty dict for other tables)."""
    raw = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


# -- the command -------------------------------------------------------------------------------
def parse_sigma(sigma: float | str | tuple[float, float] | None) -> float | tuple[float, float] | None:
    """``2.5`` | ``"2.5"`` | ``"1.5:3"`` / ``"1.5,3"`` (a range) | ``(1.5, 3)`` | None."""
    if sigma is None or isinstance(sigma, (int, float)):
        return None if sigma is None else float(sigma)
    if isinstance(sigma, str):
        parts = [s for s in sigma.replace(",", ":").split(":") if s.strip()]
        try:
            vals = [float(s) for s in parts]
        except ValueError:
            raise RareflowError(f"--sigma {sigma!r}: expected a number or a range lo:hi, e.g. 2.5 or 1.5:3") from None
    else:
        vals = [float(s) for s in sigma]
    if len(vals) == 1:
        return vals[0]
    if len(vals) == 2 and vals[0] <= vals[1]:
        return (vals[0], vals[1])
    raise RareflowError(f"--sigma {sigma!r}: expected a number or a range lo:hi with lo <= hi")


def flow_of(detector: Any, path: str | os.PathLike[str] = "model") -> Any:
    """The unconditional ``FlowModel`` inside a fitted detector (``flow`` or ``outlier-exposure``)."""
    from rareflow.flows.model import FlowModel

    model = getattr(detector, "flow_", None)  # outlier-exposure: its generating flow
    model = model if isinstance(model, FlowModel) else getattr(detector, "model_", None)
    if not isinstance(model, FlowModel):
        raise RareflowError(
            f"{path}: method '{getattr(detector, 'name', '?')}' has no normalizing flow; "
            "train one with `rareflow train flow` (or outlier-exposure) and pass that model"
        )
    if model.config.context:
        raise RareflowError(f"{path}: the flow is conditional; outlier generation needs an unconditional flow")
    return model
