"""The compare runner's energy study: per-bin cuts on training data and the differential sensitivity.

The pure parts live in :mod:`rareflow.evaluation.binned` (cuts and efficiencies per bin, pyirf's
``calculate_percentile_cut`` rule) and :mod:`rareflow.evaluation.sensitivity` (spectral weights and
pyirf's ``calculate_sensitivity``). This module wires them into a compare run:

1. :func:`resolve_binning` — before any training: the bin column (``true_energy`` on simulations,
   else an energy *proxy* such as MAGIC's ``fSize``), the edges (checked against every split's test
   rows: automatic edges merge a bin without test events into its neighbour, explicit edges refuse
   it with one line), the per-bin cut rule.
2. :func:`task_binned` — inside each (seed, method) task: the per-bin cut is chosen on the
   **calibration rows of that split** (the same rows that place the method's global cut; the fit
   rows when there are none) and applied to the test rows.
3. :func:`resolve_sensitivity` / :func:`split_weights` / :func:`sensitivity_of` — per split, the
   test gammas and protons are reweighted to the Crab (HEGRA) and the CTA proton spectrum from the
   simulation record, with ``sample_fraction`` = test rows / table rows of the particle; the
   per-bin cuts of the task then give the differential sensitivity (Li & Ma 5 sigma, 50 h).
4. :func:`aggregate_binned` / :func:`aggregate_sensitivity` — mean and std over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.evaluation.binned import aggregate_seeds, assign_bins, bin_column, evaluate_binned, make_edges

__all__ = [
    "BinSetup",
    "aggregate_binned",
    "aggregate_sensitivity",
    "resolve_binning",
    "resolve_sensitivity",
    "sensitivity_of",
    "split_weights",
    "task_binned",
]

#: Automatic bin columns, in order of preference: (column, is a proxy of the energy).
AUTO_COLUMNS = (("true_energy", False), ("fSize", True), ("hillas_intensity", True))


@dataclass
class BinSetup:
    """Everything a task needs to bin: the column, its values per dataset row, edges and cut rule."""

    column: str
    proxy: bool
    edges: np.ndarray
    rule: str  # rare_efficiency | bulk_acceptance
    value: float
    auto_edges: bool
    values: np.ndarray
    merged: int = 0  # automatic bins merged because a split had no test event in them

    def describe(self) -> dict[str, Any]:
        """The set-up as metrics.json records it."""
        return dict(
            column=self.column, proxy=self.proxy, edges=self.edges.tolist(), edges_auto=self.auto_edges,
            bins_merged=self.merged, rule=self.rule, value=self.value,
            cut_chosen_on="calibration rows of each split's training part, per bin (fit rows when none)",
        )  # fmt: skip


def _column(cfg: Any, frame: pd.DataFrame) -> tuple[str, bool] | None:
    b = cfg.binning
    if b.column is not None:
        return b.column, (not b.column.startswith("true_")) if b.proxy is None else b.proxy
    for name, proxy in AUTO_COLUMNS:
        if name in frame.columns:
            return name, proxy if b.proxy is None else b.proxy
    return None


def _rule(cfg: Any) -> tuple[str, float]:
    """The per-bin cut rule; in the anomaly scenario it must use the class the detectors train on."""
    b, sc = cfg.binning, cfg.scenario
    own_bulk = sc.kind == "anomaly" and sc.fit_on == "bulk"
    rule = b.rule or ("bulk_acceptance" if own_bulk else "rare_efficiency")
    if sc.kind == "anomaly" and (rule == "bulk_acceptance") != own_bulk:
        cls = "rare" if rule == "rare_efficiency" else "bulk"
        raise RareflowError(
            f"binning.rule {rule}: the anomaly scenario trains on {sc.fit_on} events only, so its calibration rows "
            f"hold no {cls} events to place that cut; use rule {'bulk_acceptance' if own_bulk else 'rare_efficiency'}"
        )
    value = b.value if b.value is not None else (0.7 if rule == "rare_efficiency" else cfg.threshold.bulk_acceptance)
    return rule, float(value)


def _empty_bin(edges: np.ndarray, values: np.ndarray, splits: dict[int, Any]) -> int | None:
    """The first bin without any test event in some split, or None."""
    for split in splits.values():
        idx = assign_bins(values[split.test_idx], edges)
        counts = np.bincount(idx[idx >= 0], minlength=len(edges) - 1)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            return int(empty[0])
    return None


def resolve_binning(
    cfg: Any, frame: pd.DataFrame, source: str, splits: dict[int, Any], y: np.ndarray
) -> BinSetup | None:
    """The binning of a compare run (None when off or no bin column exists); bad binning -> one line.

    Automatic edges span the **rare** class's range of the column (the efficiency is about it; e.g.
    the simulator's muons carry muon energies far below the showers'): ``per_decade`` log bins.
    """
    b = cfg.binning
    if not b.enabled:
        return None
    picked = _column(cfg, frame)
    if picked is None:
        return None
    column, proxy = picked
    values = bin_column(frame, column, source)
    rule, value = _rule(cfg)
    auto = b.edges is None and b.range is None
    rare = values[np.asarray(y).astype(bool)] if auto and np.any(y) else values
    edges = make_edges(rare, b.edges, per_decade=b.per_decade, value_range=b.range, column=column)
    merged = 0
    while (empty := _empty_bin(edges, values, splits)) is not None:
        if not auto or len(edges) <= 2:
            raise RareflowError(
                f"binning of {column!r}: bin {empty} [{edges[empty]:.4g}, {edges[empty + 1]:.4g}) holds no test events "
                "in some split; use fewer bins per decade or other edges (binning.edges)"
            )
        edges = np.delete(edges, empty + 1 if empty < len(edges) - 2 else empty)
        merged += 1
    return BinSetup(column, proxy, edges, rule, value, auto, values, merged)


def calibration_rows(split: Any, fit_on: str | None) -> tuple[np.ndarray, Any]:
    """Rows that place the per-bin cut and their labels (a constant class when training is unlabelled)."""
    rows = split.calib_idx if len(split.calib_idx) else split.fit_idx
    return rows, (None if split.labelled_training else int(fit_on == "rare"))


def task_binned(
    setup: BinSetup, y: np.ndarray, cal: tuple[np.ndarray, np.ndarray, Any, Any],
    test: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> pd.DataFrame:  # fmt: skip
    """Per-bin cut on the calibration rows, metrics on the test rows of one (seed, method).

    ``cal = (rows, scores, labels or a constant class, weights or None)``;
    ``test = (rows, scores, weights)``.
    """
    rows, s_cal, lab, w_cal = cal
    y_cal = y[rows] if lab is None else np.full(len(rows), lab)
    t_rows, s_test, w_test = test
    kw = {setup.rule: setup.value}
    return evaluate_binned(
        (s_cal, y_cal, setup.values[rows]), (s_test, y[t_rows], setup.values[t_rows]), setup.edges,
        train_weight=w_cal, test_weight=w_test, column=setup.column, **kw,
    )  # fmt: skip


def aggregate_binned(frames: list[pd.DataFrame]) -> list[dict[str, Any]]:
    """Mean/std over seeds per bin (:func:`aggregate_seeds`) plus ``cut_filled`` of any seed."""
    agg = aggregate_seeds(frames)
    agg["cut_filled"] = pd.concat(frames).groupby("bin")["cut_filled"].any().to_numpy()
    agg["n_test_rare"] = pd.concat(frames).groupby("bin")["n_test_rare"].mean().to_numpy()
    agg["n_test_bulk"] = pd.concat(frames).groupby("bin")["n_test_bulk"].mean().to_numpy()
    return agg.to_dict(orient="records")


# -- sensitivity -----------------------------------------------------------------------------------
def _sensitivity_blocker(cfg: Any, ds: Any, setup: BinSetup | None) -> str | None:
    """Why the sensitivity cannot be computed for this run, or None."""
    from rareflow.io.metadata import SIMULATION_KEY

    if ds.simulation is None:
        return f"the data has no simulation record ({SIMULATION_KEY.decode()}); use a table from `rareflow simulate`"
    if setup is None or setup.column != "true_energy":
        return "sensitivity needs bins of true_energy (binning.column: true_energy)"
    if ds.rare_label != "gamma" or "proton" not in ds.bulk_labels:
        return "sensitivity needs gamma (rare) against proton (bulk) events"
    return None


def resolve_sensitivity(cfg: Any, ds: Any, setup: BinSetup | None) -> str | None:
    """``None`` when the sensitivity will be computed, else the reason it is not (``enabled: auto``).

    With ``sensitivity.enabled: true`` a reason is a one-line error instead, before any training;
    the spectral weights are tried once here so a bad record fails early too.
    """
    s = cfg.sensitivity
    if s.enabled is False:
        return "switched off (sensitivity.enabled: false)"
    why = _sensitivity_blocker(cfg, ds, setup)
    if why is None:
        try:
            labels = ds.frame["label"].astype(str).to_numpy()
            _weights(ds, np.arange(len(labels)), labels, cfg.sensitivity)
        except RareflowError as exc:
            why = str(exc)
    if why is not None and s.enabled is True:
        raise RareflowError(f"sensitivity (enabled: true): {why}")
    return why


def _weights(ds: Any, rows: np.ndarray, labels: np.ndarray, s: Any) -> np.ndarray:
    """Spectral weights of ``rows`` (NaN for particles other than gamma/proton)."""
    from rareflow.evaluation.sensitivity import event_weights

    energy = ds.frame["true_energy"].to_numpy(dtype=float)
    w = np.full(len(rows), np.nan)
    for particle in ("gamma", "proton"):
        own = rows[labels[rows] == particle]
        if not own.size:
            raise RareflowError(f"sensitivity: the test set holds no {particle} events")
        frac = own.size / int(np.sum(labels == particle))
        w[labels[rows] == particle] = event_weights(
            energy[own], ds.simulation, particle, obstime_h=s.obstime_h, sample_fraction=frac,
            on_region_radius_deg=s.on_region_radius_deg, source=ds.source,
        )  # fmt: skip
    return w


def split_weights(cfg: Any, ds: Any, split: Any) -> dict[str, Any]:
    """Spectral weights of one split's test rows and the expected rare fraction they imply."""
    from rareflow.evaluation.sensitivity import expected_rare_fraction

    labels = ds.frame["label"].astype(str).to_numpy()
    rows = split.test_idx
    w = _weights(ds, rows, labels, cfg.sensitivity)
    lab = labels[rows]
    return dict(weight=w, expected=expected_rare_fraction(w[lab == "gamma"], w[lab == "proton"]))


def sensitivity_of(ds: Any, split: Any, scores: np.ndarray, weight: np.ndarray, binned: pd.DataFrame) -> pd.DataFrame:
    """Differential sensitivity of one (seed, method): its test scores after its per-bin training cuts."""
    from rareflow.evaluation.sensitivity import binned_sensitivity

    ok = np.isfinite(weight)  # gamma and proton rows
    rows = split.test_idx[ok]
    energy = ds.frame["true_energy"].to_numpy(dtype=float)[rows]
    return binned_sensitivity(scores[ok], ds.y[rows], energy, weight[ok], binned[["low", "high", "cut"]])


_SENS = ("relative_sensitivity", "flux_sensitivity", "e2_flux_sensitivity", "significance",
         "n_signal", "n_signal_weighted", "n_background", "n_background_weighted", "cut")  # fmt: skip


def aggregate_sensitivity(frames: list[pd.DataFrame]) -> list[dict[str, Any]]:
    """Per bin over seeds: mean/std of the finite values, ``n_finite``, ``limited_by`` (most common)."""
    all_ = pd.concat(frames, ignore_index=True).replace([np.inf, -np.inf], np.nan)
    out = []
    for b, g in all_.groupby("bin", sort=True):
        row: dict[str, Any] = dict(bin=int(b), low=g["low"].iloc[0], high=g["high"].iloc[0], center=g["center"].iloc[0])
        for m in _SENS:
            v = g[m].to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            row[f"{m}_mean"] = float(v.mean()) if v.size else np.nan
            row[f"{m}_std"] = float(v.std(ddof=1)) if v.size > 1 else (0.0 if v.size else np.nan)
        row["n_finite"] = int(np.isfinite(g["relative_sensitivity"].to_numpy(float)).sum())
        row["limited_by"] = g["limited_by"].mode().iloc[0]
        row["low_statistics"] = bool(g["low_statistics"].any())
        out.append(row)
    return out


def aggregate_expected(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean and std over seeds of the expected counts and rare fraction from the spectra."""
    out: dict[str, float] = {}
    for k in per_seed[0]:
        v = np.asarray([d[k] for d in per_seed], dtype=float)
        out[k] = float(v.mean())
        out[f"{k}_std"] = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return out
