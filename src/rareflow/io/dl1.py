"""ctapipe DL1 HDF5 parameter tables read into rareflow's column names.

``read_dl1_parameters`` maps the tables ``/dl1/event/telescope/parameters/tel_XXX`` written by
``ctapipe-process --write-parameters`` to rareflow's column names, derives ``alpha, dist, miss``
relative to the camera centre (:func:`rareflow.io.schema.source_parameters`) and joins the simulated
truth. Needs PyTables (comes with ctapipe: ``pip install 'rareflow[iact]'``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.io.schema import HILLAS_COLUMNS, source_parameters
from rareflow.io.simtel import INSTALL_HINT as _INSTALL_HINT
from rareflow.io.simtel import check_file as _check_file
from rareflow.io.simtel import particle_label

__all__ = ["read_dl1_parameters"]

_DL1_PARAMS = "/dl1/event/telescope/parameters"
_DL1_RENAME = {
    "hillas_fov_lon": "hillas_x",
    "hillas_fov_lat": "hillas_y",
    "morphology_n_pixels": "n_pixels",
    "morphology_n_islands": "n_islands",
    "concentration_pixel": "conc1",
}
_DL1_ANGLES = ("hillas_x", "hillas_y", "hillas_r", "hillas_phi", "hillas_length", "hillas_width", "hillas_psi")


def _import_tables() -> Any:
    try:
        import tables
    except ImportError as exc:
        raise RareflowError(f"reading ctapipe DL1 HDF5 files needs PyTables ({exc}); {_INSTALL_HINT}") from exc
    return tables


def _table_units(node: Any) -> dict[str, str]:
    """Column units stored by ctapipe (attrs CTAFIELD_<i>_UNIT, i = column index)."""
    attrs = node.attrs
    units = {}
    for i, name in enumerate(node.colnames):
        key = f"CTAFIELD_{i}_UNIT"
        if key in attrs._v_attrnames:
            units[name] = str(attrs[key])
    return units


def _read_tel_table(node: Any, path: Path) -> pd.DataFrame:
    data = node.read()
    units = _table_units(node)
    df = pd.DataFrame({name: data[name] for name in data.dtype.names if data[name].ndim == 1})
    for col, unit in units.items():
        if col in df.columns and unit in ("rad", "radian"):
            df[col] = np.degrees(df[col].to_numpy(float))
    if "hillas_x" in df.columns and units.get("hillas_x", "deg") not in ("deg", "rad", "radian"):
        # old camera-frame DL1 (metres): not comparable with rareflow's degrees
        df = df.drop(
            columns=[c for c in ("hillas_x", "hillas_y", "hillas_r", "hillas_length", "hillas_width") if c in df]
        )
        warnings.warn(
            f"{path}: camera-frame (metre) Hillas columns skipped; re-process with ctapipe >= 0.12", stacklevel=3
        )
    return df.rename(columns=_DL1_RENAME)


def _truth_table(h5: Any) -> pd.DataFrame | None:
    if "/simulation/event/subarray/shower" not in h5:
        return None
    data = h5.get_node("/simulation/event/subarray/shower").read()
    cols = [c for c in ("obs_id", "event_id", "true_energy", "true_shower_primary_id", "true_core_x", "true_core_y",
                        "true_x_max", "true_alt", "true_az", "true_h_first_int") if c in data.dtype.names]  # fmt: skip
    return pd.DataFrame({c: data[c] for c in cols})


def _impact_table(h5: Any, tel_name: str) -> pd.DataFrame | None:
    key = f"/simulation/event/telescope/impact/{tel_name}"
    if key not in h5:
        return None
    data = h5.get_node(key).read()
    if "true_impact_distance" not in data.dtype.names:
        return None
    return pd.DataFrame({"obs_id": data["obs_id"], "event_id": data["event_id"], "tel_id": data["tel_id"],
                         "true_impact": data["true_impact_distance"]})  # fmt: skip


def read_dl1_parameters(path: str | os.PathLike[str], tel_id: int | None = None) -> pd.DataFrame:
    """Read ctapipe DL1 parameter tables into rareflow's column names.

    Maps ``hillas_intensity, hillas_fov_lon -> hillas_x, hillas_fov_lat -> hillas_y, hillas_r,
    hillas_phi, hillas_length, hillas_width, hillas_psi, hillas_skewness, hillas_kurtosis,
    leakage_intensity_width_1/2, morphology_n_pixels -> n_pixels, morphology_n_islands -> n_islands,
    concentration_pixel -> conc1`` (only those present) and derives ``alpha, dist, miss`` relative to
    the camera centre. MAGIC's conc2 / asym / m3_* need the images and are not in DL1 tables.
    With simulated truth (``/simulation/event/subarray/shower``) it adds ``label`` (from
    ``true_shower_primary_id``), ``true_particle``, ``true_energy`` [TeV], ... and ``true_impact``.
    ``tel_id`` selects one telescope (default: all). ``is_valid``: finite Hillas parameters (and
    >= 3 pixels when ``n_pixels`` is known).
    """
    p = _check_file(path, "ctapipe DL1 HDF5")
    tables = _import_tables()
    try:
        h5 = tables.open_file(str(p), mode="r")
    except Exception as exc:
        raise RareflowError(f"{p}: not a readable HDF5 file ({type(exc).__name__}); check the file") from exc
    with h5:
        if _DL1_PARAMS not in h5:
            raise RareflowError(f"{p}: no {_DL1_PARAMS} tables; write them with `ctapipe-process --write-parameters`")
        group = h5.get_node(_DL1_PARAMS)
        names = sorted(n._v_name for n in group._f_iter_nodes("Table"))
        if tel_id is not None:
            want = f"tel_{int(tel_id):03d}"
            if want not in names:
                raise RareflowError(f"{p}: no parameter table for tel_id={tel_id} (have {', '.join(names) or 'none'})")
            names = [want]
        if not names:
            raise RareflowError(f"{p}: {_DL1_PARAMS} holds no telescope tables")
        frames = []
        for name in names:
            df = _read_tel_table(h5.get_node(f"{_DL1_PARAMS}/{name}"), p)
            impact = _impact_table(h5, name)
            if impact is not None and {"obs_id", "event_id", "tel_id"} <= set(df.columns):
                df = df.merge(impact, on=["obs_id", "event_id", "tel_id"], how="left")
            frames.append(df)
        truth = _truth_table(h5)
    df = pd.concat(frames, ignore_index=True)
    df = finish_dl1(df, truth)
    return df


def finish_dl1(df: pd.DataFrame, truth: pd.DataFrame | None) -> pd.DataFrame:
    if {"hillas_x", "hillas_y", "hillas_psi"} <= set(df.columns):
        psi = np.radians(df["hillas_psi"].to_numpy(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            src = source_parameters(df["hillas_x"].to_numpy(float), df["hillas_y"].to_numpy(float),
                                     np.cos(psi), np.sin(psi), (0.0, 0.0))  # fmt: skip
        src.pop("_sign_cda")
        for col, val in src.items():
            df[col] = val
    if truth is not None and {"obs_id", "event_id"} <= set(df.columns):
        df = df.merge(truth, on=["obs_id", "event_id"], how="left")
        if "true_shower_primary_id" in df.columns:
            ids = df["true_shower_primary_id"]
            df["label"] = [particle_label(i) if pd.notna(i) else "unknown" for i in ids]
            df["true_particle"] = ids.fillna(-1).astype(np.int64)
            df = df.drop(columns=["true_shower_primary_id"])
    valid = np.ones(len(df), dtype=bool)
    for col in ("hillas_intensity", "hillas_length", "hillas_width", "hillas_psi"):
        if col in df.columns:
            valid &= np.isfinite(df[col].to_numpy(float))
    if "n_pixels" in df.columns:
        valid &= df["n_pixels"].to_numpy() >= 3
    df["is_valid"] = valid
    first = [c for c in ("obs_id", "event_id", "tel_id", "label") if c in df.columns]
    spec = [c for c in HILLAS_COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in first and c not in spec]
    return df[first + spec + rest]
