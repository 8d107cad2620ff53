"""ctapipe interchange: DL1 parameters in through ``TableLoader``, gammaness out as DL2.

Read (:func:`read_dl1`): ctapipe's own :class:`~ctapipe.io.TableLoader` reads the DL1 parameter
tables of every (or the chosen) telescope, with the simulated shower and impact where present;
``obs_id``, ``event_id`` and ``tel_id`` are kept, columns are renamed to rareflow's Hillas names
(``hillas_fov_lon -> hillas_x`` ...), angles in deg, energies in TeV, lengths in m.

Write (:func:`write_dl2`): the layout ``ctapipe-apply-models`` writes for a gamma/hadron classifier
(ctapipe 0.28 ``ParticleClassificationContainer``): the input DL1 file is copied with
:class:`~ctapipe.io.HDF5Merger`, then

* ``/dl2/event/telescope/particle_type/<prefix>/tel_XXX``: ``obs_id, event_id, tel_id,
  <prefix>_tel_prediction, <prefix>_tel_is_valid`` — one row per row of the telescope's DL1
  parameter table, same order (ctapipe reads them by row range);
* ``/dl2/event/subarray/particle_type/<prefix>``: ``obs_id, event_id, <prefix>_prediction,
  <prefix>_is_valid, <prefix>_goodness_of_fit, <prefix>_telescopes`` — one row per triggered event
  in trigger-table order; the prediction is the mean over the telescopes with a valid prediction
  (ctapipe's ``StereoMeanCombiner`` with ``weights="none"``).

``prediction`` is a gammaness in [0, 1] (1 = gamma-like; :mod:`rareflow.calibration`); events
without a finite gammaness get ``is_valid = False``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError

__all__ = ["read_dl1", "write_dl2"]

_KEYS = ["obs_id", "event_id", "tel_id"]
_RENAME = {
    "hillas_fov_lon": "hillas_x", "hillas_fov_lat": "hillas_y", "morphology_n_pixels": "n_pixels",
    "morphology_n_islands": "n_islands", "concentration_pixel": "conc1", "true_impact_distance": "true_impact",
}  # fmt: skip
_HINT = "install the iact extra (pip install 'rareflow[iact]') for ctapipe"


def _ctapipe_io() -> Any:
    try:
        import ctapipe.io as cio
    except ImportError as exc:
        raise RareflowError(f"reading/writing ctapipe DL1/DL2 files needs ctapipe ({exc}); {_HINT}") from exc
    return cio


def _check(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise RareflowError(f"{p}: no such {what} file; write one with `ctapipe-process --write-parameters`")
    return p


def _to_frame(table: Any) -> pd.DataFrame:
    """QTable -> DataFrame: 1-d columns only, quantities in deg / TeV / m (others: bare values)."""
    import astropy.units as u

    cols = {}
    for name in table.colnames:
        col = table[name]
        if getattr(col, "ndim", 1) != 1 or name == "time" or name.startswith("time_"):
            continue
        if getattr(col, "unit", None) is not None:  # Column with a unit (Table) or Quantity (QTable)
            q = u.Quantity(col, copy=False)
            col = q.to_value(next((t for t in (u.deg, u.TeV, u.m) if q.unit.is_equivalent(t)), q.unit))
        cols[_RENAME.get(name, name)] = np.asarray(col)
    return pd.DataFrame(cols)


def read_dl1(path: str | os.PathLike[str], telescopes: list[int] | None = None) -> pd.DataFrame:
    """DL1 parameters of a ctapipe file via ``TableLoader``, one row per telescope event.

    Adds ``label`` / ``true_particle`` from ``true_shower_primary_id`` when simulated, ``alpha,
    dist, miss`` relative to the camera centre and ``is_valid`` (as :func:`read_dl1_parameters`).
    """
    from rareflow.io.dl1 import finish_dl1  # rareflow's Hillas conventions (alpha, is_valid, labels)

    cio = _ctapipe_io()
    p = _check(path, "ctapipe DL1 HDF5")
    try:
        with cio.TableLoader(p) as loader:
            known = sorted(loader.subarray.tel_ids)
            bad = sorted(set(telescopes or []) - set(known))
            if bad:
                raise RareflowError(f"{p}: no telescope {bad} (has tel_ids {known})")
            table = loader.read_telescope_events(
                telescopes=telescopes, dl1_parameters=True, simulated=True, true_parameters=False,
                observation_info=False, instrument=False, dl2=False, pointing=False,
            )  # fmt: skip
    except RareflowError:
        raise
    except Exception as exc:  # tables.HDF5ExtError, KeyError on a non-ctapipe layout ...
        raise RareflowError(f"{p}: ctapipe cannot read it as DL1 ({type(exc).__name__}: {exc})") from exc
    df = _to_frame(table)
    if not {"hillas_intensity"} <= set(df.columns):
        raise RareflowError(f"{p}: no DL1 parameters; write them with `ctapipe-process --write-parameters`")
    truth = None
    shower = [c for c in df.columns if c.startswith("true_") and c != "true_impact"]
    if "true_shower_primary_id" in df.columns:
        truth = df[["obs_id", "event_id", *shower]].drop_duplicates(["obs_id", "event_id"])
        df = df.drop(columns=shower)
    return finish_dl1(df, truth)


def _read_keys(h5: Any, node: str) -> pd.DataFrame:
    data = h5.get_node(node).read()
    return pd.DataFrame({k: data[k] for k in _KEYS if k in data.dtype.names})


def _predictions(df: pd.DataFrame, column: str) -> pd.DataFrame:
    missing = [c for c in [*_KEYS, column] if c not in df.columns]
    if missing:
        raise RareflowError(f"write_dl2: the scored table lacks column(s) {', '.join(missing)}; score a ctapipe DL1 file")
    out = df[[*_KEYS, column]].rename(columns={column: "prediction"})
    if out.duplicated(_KEYS).any():
        raise RareflowError("write_dl2: duplicate (obs_id, event_id, tel_id) rows in the scored table")
    g = out["prediction"].to_numpy(float)
    if np.any((g < 0) | (g > 1)):
        raise RareflowError(f"write_dl2: {column!r} must be a gammaness in [0, 1]; calibrate the score first")
    return out


def write_dl2(
    df: pd.DataFrame, path: str | os.PathLike[str], *, template: str | os.PathLike[str],
    prefix: str = "rareflow", column: str = "gammaness", overwrite: bool = False,
) -> None:  # fmt: skip
    """Copy the DL1 file ``template`` to ``path`` and add ``df[column]`` as ctapipe DL2 classification."""
    import tables

    cio = _ctapipe_io()
    from ctapipe.io.hdf5dataformat import DL1_SUBARRAY_TRIGGER_TABLE, DL1_TEL_PARAMETERS_GROUP

    src, out = _check(template, "ctapipe DL1 HDF5"), Path(path)
    if out.exists() and not overwrite:
        raise RareflowError(f"{out}: exists; remove it or pass overwrite")
    if out.resolve() == src.resolve():
        raise RareflowError(f"{out}: the DL2 output must differ from the DL1 input")
    pred = _predictions(df, column)
    with cio.HDF5Merger(out, overwrite=True) as merger:
        merger(src)
    with tables.open_file(out, mode="r") as h5:
        trigger = _read_keys(h5, DL1_SUBARRAY_TRIGGER_TABLE)
        tel_nodes = {n._v_name: n._v_pathname for n in h5.get_node(DL1_TEL_PARAMETERS_GROUP)._f_iter_nodes("Table")}
        tel_keys = {name: _read_keys(h5, node) for name, node in sorted(tel_nodes.items())}
    tel_ids = sorted(int(name.split("_")[1]) for name in tel_keys)
    merged = []
    for name, keys in tel_keys.items():
        t = keys.merge(pred, on=_KEYS, how="left", validate="one_to_one")
        merged.append(t)
        _write(t.rename(columns={"prediction": f"{prefix}_tel_prediction"}), out, prefix, f"tel/{name}")
    _write(_combine(trigger, pd.concat(merged), tel_ids, prefix), out, prefix, "subarray")


def _write(frame: pd.DataFrame, out: Path, prefix: str, where: str) -> None:
    from astropy.table import Table
    from ctapipe.io import write_table
    from ctapipe.io.hdf5dataformat import DL2_SUBARRAY_GROUP, DL2_TEL_GROUP

    t = Table({c: np.stack(frame[c].to_list()) if c.endswith("_telescopes") else frame[c].to_numpy() for c in frame})
    if where == "subarray":
        key = f"{DL2_SUBARRAY_GROUP}/particle_type/{prefix}"
    else:
        t[f"{prefix}_tel_is_valid"] = np.isfinite(t[f"{prefix}_tel_prediction"])
        key = f"{DL2_TEL_GROUP}/particle_type/{prefix}/{where.split('/')[1]}"
    write_table(t, out, key, overwrite=True)


def _combine(trigger: pd.DataFrame, tel: pd.DataFrame, tel_ids: list[int], prefix: str) -> pd.DataFrame:
    """Subarray rows in trigger order: mean of valid telescope predictions, telescope mask."""
    ok = tel[np.isfinite(tel["prediction"].to_numpy(float))]
    mean = ok.groupby(["obs_id", "event_id"])["prediction"].mean().rename(f"{prefix}_prediction")
    res = trigger[["obs_id", "event_id"]].merge(mean.reset_index(), on=["obs_id", "event_id"], how="left")
    mask = np.zeros((len(res), len(tel_ids)), dtype=bool)
    pos = {(o, e): i for i, (o, e) in enumerate(zip(res["obs_id"], res["event_id"]))}
    col = {t: j for j, t in enumerate(tel_ids)}
    for o, e, t in zip(ok["obs_id"], ok["event_id"], ok["tel_id"]):
        mask[pos[(o, e)], col[int(t)]] = True
    res[f"{prefix}_is_valid"] = np.isfinite(res[f"{prefix}_prediction"].to_numpy(float))
    res[f"{prefix}_goodness_of_fit"] = np.nan
    res[f"{prefix}_telescopes"] = list(mask)
    return res
