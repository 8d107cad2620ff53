"""The compare runner: every configured method on identical splits, one tidy result table.

source -> Dataset -> (per seed) Split -> detector.fit on the fit part -> threshold on the
calibration part (training data) -> scores on the test part -> metrics. Everything written
afterwards (metrics.json, scores.parquet, plots, report.html) is derived from the result.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.config import ExperimentConfig, MethodConfig
from rareflow.io.tables import Dataset, detect_format, prepare_dataset, read_table
from rareflow.detectors import Detector, detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.evaluation.metrics import evaluate_scores
from rareflow.progress import make_progress
from rareflow.scenarios import Split, anomaly_split, rare_split
from rareflow.seeding import method_seed, seed_everything

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Everything a compare run produced; the writers derive all outputs from it."""

    config: ExperimentConfig
    dataset: dict[str, Any]
    per_seed: list[dict[str, Any]]  # one row per (method, seed): metrics + timings
    scores: pd.DataFrame  # long: method, seed, row, label, y, weight, score, threshold
    splits: dict[int, dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)
    extra_scores: dict[str, dict[int, dict[str, np.ndarray]]] = field(default_factory=dict)
    gallery: dict[str, dict[str, Any]] = field(default_factory=dict)  # image methods: top test images + maps
    camera: Any = None  # CameraGeometry of the images (gallery drawing)
    per_bin: dict[str, Any] | None = None  # binning set-up + per method per bin mean/std over seeds
    sensitivity: dict[str, Any] | None = None  # differential sensitivity, or why it is not available

    @property
    def methods(self) -> list[str]:
        return [m.display for m in self.config.methods if m.display not in self.skipped]


def _load_source(cfg: ExperimentConfig, seed: int) -> tuple[pd.DataFrame, str, Any, dict | None]:
    """``(table, description, ImageSet or None, simulation record or None)`` of the configured source."""
    d = cfg.data
    if d.source == "simulate":
        from rareflow.iact.simulate import simulate_events

        camera = None
        if d.simulate.camera_from:
            from rareflow.iact.simtel_camera import camera_from_simtel

            camera = camera_from_simtel(d.simulate.camera_from, d.simulate.tel_id)
        sim = simulate_events(
            camera=camera,
            n_events=d.simulate.n_events,
            rare_fraction=d.simulate.rare_fraction,
            seed=seed,
            muon_fraction=d.simulate.muon_fraction,
            source=d.simulate.source,
            dead_pixel_fraction=d.simulate.dead_pixel_fraction,
            return_images=bool(d.images),
        )
        on = f", camera {sim.camera.name} of {Path(d.simulate.camera_from).name}" if camera is not None else ""
        source = f"simulated events (seed {seed}, {d.simulate.n_events} events{on})"
        if not d.images:
            return sim.table, source, None, sim.simulation
        from rareflow.iact.images import GridMapping, ImageSet

        imgs = ImageSet(sim.images, sim.camera, GridMapping.from_camera(sim.camera), sim.table, source)
        return sim.table, source, imgs, sim.simulation
    if d.source in ("simtel", "idx"):
        from rareflow.iact.images import load_idx_pair_set, load_simtel

        if d.source == "simtel":
            imgs = load_simtel(d.path)
        else:
            assert d.idx is not None
            bulk = (d.bulk_label or ["bulk"])[0]
            imgs = load_idx_pair_set(d.idx.bulk_path, d.idx.rare_path, bulk, d.rare_label, d.idx.n_per_class, seed)
        return imgs.table, imgs.source, imgs, None
    fmt = "magic" if d.source == "magic" else d.format
    df = read_table(d.path, fmt)
    record = None
    if detect_format(Path(d.path), fmt) == "parquet":  # the simulator's record (rareflow.io.metadata)
        from rareflow.io.metadata import read_simulation

        record = read_simulation(d.path)
    if isinstance(d.images, str):
        from rareflow.iact.images import load_simulated

        imgs = load_simulated(d.images, df)
        return imgs.table, str(d.path), imgs, record
    return df, str(d.path), None, record


def load_experiment_data(cfg: ExperimentConfig, seed: int = 0) -> Dataset:
    """The experiment's feature table, validated (simulated when ``data.source: simulate``), with
    grid images aligned to its rows when the source has images (``data.images``)."""
    d = cfg.data
    df, source, imgs, record = _load_source(cfg, seed)
    if imgs is not None:
        df = df.copy()
        df["image_index"] = np.arange(len(df))
    n_flagged = 0
    if "is_valid" in df.columns:
        valid = df["is_valid"].astype(bool).to_numpy()
        n_flagged = int((~valid).sum())
        df = df.loc[valid].reset_index(drop=True)
    ds = prepare_dataset(
        df, source, features=d.features, rare_label=d.rare_label, bulk_labels=d.bulk_label,
        need_labels=True, drop_nonfinite=d.drop_nonfinite,
    )
    ds.n_flagged = n_flagged  # type: ignore[attr-defined]
    ds.simulation = record
    if imgs is not None:
        ds.images = imgs.grids()[ds.frame["image_index"].to_numpy()]
        ds.image_mapping, ds.camera = imgs.mapping, imgs.camera
    return ds


def describe_dataset(ds: Dataset) -> dict[str, Any]:
    counts = ds.frame["label"].value_counts().to_dict()
    return {
        "source": ds.source,
        "n_events": int(len(ds.frame)),
        "label_counts": {str(k): int(v) for k, v in counts.items()},
        "rare_label": ds.rare_label,
        "bulk_labels": ds.bulk_labels,
        "features": ds.features,
        "n_flagged_dropped": int(getattr(ds, "n_flagged", 0)),
        "images": None if ds.images is None else {
            "grid": list(ds.images.shape[1:]), "camera": getattr(ds.camera, "name", None),
            "n_pixels": getattr(ds.camera, "n_pixels", None),
            "lattice": getattr(ds.image_mapping, "lattice", None),
        },
    }  # fmt: skip


def make_split(cfg: ExperimentConfig, y: np.ndarray, seed: int) -> Split:
    sc, cal = cfg.scenario, cfg.threshold.calibration_fraction
    if sc.kind == "anomaly":
        return anomaly_split(y, seed, sc.fit_on, sc.test_size, sc.contamination, cal)  # type: ignore[arg-type]
    return rare_split(y, seed, sc.test_size, sc.test_rare_fraction, sc.fraction_mode, sc.min_rare_events, cal)


def applicability(cfg: ExperimentConfig, method: MethodConfig) -> str | None:
    """Why ``method`` cannot run in this scenario, or None."""
    cls = detector_class(method.name)
    if cfg.scenario.kind == "anomaly" and cls.kind != "one-class":
        return (
            f"{cls.kind} method: needs both classes in training, and the anomaly scenario trains on "
            f"the {cfg.scenario.fit_on} class only"
        )
    return None


def threshold_source(cfg: ExperimentConfig, method: MethodConfig) -> str:
    """Who sets a method's threshold rule: its params, the experiment's threshold section, or itself."""
    if "threshold" in method.params:
        return "method params"
    return "experiment" if cfg.threshold.overrides() else "detector default"


def build_detector(cfg: ExperimentConfig, method: MethodConfig, seed: int) -> Detector:
    """A fresh detector for one seed: the method's params, the experiment's threshold rule when the
    experiment gives one explicitly, fit_on, and ``random_state = method_seed(seed, name)``
    (the one meaning of a seed, see :mod:`rareflow.seeding`)."""
    cls = detector_class(method.name)
    params = dict(method.params)
    accepted = cls._get_param_names()
    if "threshold" in accepted and "threshold" not in params and cfg.threshold.overrides():
        params["threshold"] = cfg.threshold.rule_dict()
    if cls.kind == "one-class":
        want = cfg.scenario.fit_on if cfg.scenario.kind == "anomaly" else params.get("fit_on", "bulk")
        if params.get("fit_on", want) != want:
            raise RareflowError(
                f"method '{method.display}' has fit_on={params['fit_on']!r} but the anomaly scenario "
                f"trains on '{want}'; remove fit_on from its params"
            )
        params["fit_on"] = want
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = method_seed(seed, method.name)
    return get_detector(method.name, **params)


@dataclass
class TaskResult:
    """One (seed, method) cell of a sweep."""

    method: str
    seed: int
    metrics: dict[str, Any]
    scores: np.ndarray
    threshold: float
    gallery: dict[str, Any] | None = None
    binned: pd.DataFrame | None = None  # per-bin cuts (calibration rows) and test metrics


GALLERY_SIZE = 8


def _inputs(det: Detector, ds: Dataset) -> Any:
    """What the detector reads: grid images for image methods (with the feature table beside them
    when the detector ``uses_features``), the feature table otherwise."""
    if getattr(det, "input", "table") != "image":
        return ds.X
    if ds.images is None:
        raise RareflowError(
            f"method '{det.name}' needs camera images; set data.images: true (simulator), give a table the "
            ".npz from `rareflow simulate --images-out`, or use source simtel / idx"
        )
    if getattr(det, "uses_features", False):  # hybrid image methods (cnn-classifier hillas: true): images + table rows
        from rareflow.iact.images import ImagesWithFeatures

        return ImagesWithFeatures(ds.images, ds.X)
    return ds.images


def _rows(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]


def _gallery(det: Detector, ds: Dataset, test_idx: np.ndarray, scores: np.ndarray) -> dict[str, Any] | None:
    """The highest-scoring test images with their anomaly maps on the camera pixels."""
    if not hasattr(det, "anomaly_map") or ds.images is None or ds.image_mapping is None:
        return None
    order = np.argsort(-scores, kind="stable")[:GALLERY_SIZE]
    rows = test_idx[order]
    maps = ds.image_mapping.to_pixels(det.anomaly_map(ds.images[rows]))
    return {"rows": rows, "scores": scores[order], "maps": maps, "pixels": ds.image_mapping.to_pixels(ds.images[rows])}


def run_task(cfg: ExperimentConfig, ds: Dataset, split: Split, method: MethodConfig) -> TaskResult:
    """Fit one method on one split, cut on the calibration part, score and evaluate the test part.

    Pure given its inputs (seeded inside), so it runs the same in-process or on a Dask worker.
    """
    seed = split.seed
    seed_everything(method_seed(seed, method.name))
    det = build_detector(cfg, method, seed)
    X, y = _inputs(det, ds), ds.y
    assert y is not None
    w = ds.weight
    fit_y = y[split.fit_idx] if split.labelled_training else None
    fit_w = None if w is None else w[split.fit_idx]
    t0 = time.perf_counter()
    det.fit(_rows(X, split.fit_idx), fit_y, sample_weight=fit_w)
    fit_seconds = time.perf_counter() - t0
    if hasattr(det, "remember_camera") and ds.camera is not None:
        det.remember_camera(ds.camera, ds.image_mapping)
    if len(split.calib_idx):
        cal_y = y[split.calib_idx] if split.labelled_training else None
        det.set_threshold_from(_rows(X, split.calib_idx), cal_y, None if w is None else w[split.calib_idx])
    Xt = _rows(X, split.test_idx)
    t0 = time.perf_counter()
    scores = det.decision_function(Xt)
    score_seconds = max(time.perf_counter() - t0, 1e-9)
    test_w = split.test_weight * (1.0 if w is None else w[split.test_idx])
    m = evaluate_scores(
        y[split.test_idx], scores, test_w, threshold=det.threshold_,
        significance_events=cfg.significance.n_events, significance_alpha=cfg.significance.alpha,
    )
    m.update(fit_seconds=fit_seconds, score_events_per_second=len(Xt) / score_seconds)
    m.update(kind=det.kind, fit_on=getattr(det, "fit_on", None), threshold_rule=det.threshold_rule_, threshold_source=threshold_source(cfg, method))
    gallery = _gallery(det, ds, split.test_idx, scores) if seed == cfg.scenario.seeds[0] else None
    binned = _binned(det, cfg, ds, split, X, scores, test_w)
    return TaskResult(method.display, seed, m, scores, float(det.threshold_), gallery, binned)


def _binned(det: Detector, cfg: ExperimentConfig, ds: Dataset, split: Split, X: Any, scores: np.ndarray, test_w: np.ndarray) -> pd.DataFrame | None:
    """Per-bin cuts chosen on this split's calibration rows, applied to its test rows (or None)."""
    if ds.binning is None:
        return None
    from rareflow.evaluation.energy import calibration_rows, task_binned

    fit_on = cfg.scenario.fit_on if cfg.scenario.kind == "anomaly" else None
    rows, lab = calibration_rows(split, fit_on)
    cal_scores = det.decision_function(_rows(X, rows))
    cal_w = None if ds.weight is None else ds.weight[rows]
    assert ds.y is not None
    return task_binned(ds.binning, ds.y, (rows, cal_scores, lab, cal_w), (split.test_idx, scores, test_w))


def run_experiment(cfg: ExperimentConfig, data_seed: int | None = None, scheduler: str | None = None) -> RunResult:
    """Run every method of ``cfg`` on identical splits for every seed.

    ``data_seed`` seeds the simulator (``source: simulate``); default: the first split seed.

    ``scheduler``: None runs in this process; ``"local"`` or a Dask scheduler address runs the
    (seed, method) tasks on Dask (see :mod:`rareflow.parallel`) with identical results.
    """
    ds = load_experiment_data(cfg, cfg.scenario.seeds[0] if data_seed is None else data_seed)
    assert ds.y is not None
    runnable, skipped = _runnable(cfg)
    splits = {seed: make_split(cfg, ds.y, seed) for seed in cfg.scenario.seeds}
    from rareflow.evaluation.energy import resolve_binning, resolve_sensitivity

    ds.binning = resolve_binning(cfg, ds.frame, ds.source, splits, ds.y)  # bad binning: one line, before training
    no_sensitivity = resolve_sensitivity(cfg, ds, ds.binning)
    tasks = [(splits[seed], method) for seed in cfg.scenario.seeds for method in runnable]
    results = _execute(cfg, ds, tasks, scheduler)
    labels = ds.frame["label"].astype(str).to_numpy()
    per_seed, frames = [], []
    gallery = {}
    for (split, _), res in zip(tasks, results):
        if getattr(res, "gallery", None) is not None:
            gallery[res.method] = {**res.gallery, "labels": labels[res.gallery["rows"]]}
        per_seed.append({"method": res.method, "seed": res.seed, **res.metrics})
        idx = split.test_idx
        frame = pd.DataFrame({
            "method": res.method, "seed": res.seed, "row": idx, "label": labels[idx], "y": ds.y[idx],
            "weight": split.test_weight, "score": res.scores, "threshold": res.threshold,
        })  # fmt: skip
        if ds.binning is not None and ds.binning.column not in frame.columns:  # `evaluate --bin-column` reads it
            frame[ds.binning.column] = ds.binning.values[idx]
        frames.append(frame)
    per_bin, sensitivity = _energy_outputs(cfg, ds, splits, tasks, results, no_sensitivity)
    return RunResult(
        config=cfg,
        dataset=describe_dataset(ds),
        per_seed=per_seed,
        scores=pd.concat(frames, ignore_index=True),
        splits={seed: s.info for seed, s in splits.items()},
        skipped=skipped,
        gallery=gallery,
        camera=ds.camera,
        per_bin=per_bin,
        sensitivity=sensitivity,
    )


def _runnable(cfg: ExperimentConfig) -> tuple[list[MethodConfig], dict[str, str]]:
    """The methods that apply to the scenario, and why each other one is skipped."""
    skipped: dict[str, str] = {}
    runnable: list[MethodConfig] = []
    for m in cfg.methods:
        why = applicability(cfg, m)
        if why:
            skipped[m.display] = why
        else:
            runnable.append(m)
    if not runnable:
        raise RareflowError(f"no configured method can run in the {cfg.scenario.kind} scenario: {skipped}")
    return runnable, skipped


def _execute(cfg: ExperimentConfig, ds: Dataset, tasks: list[tuple[Split, MethodConfig]], scheduler: str | None) -> list[Any]:
    """Every (split, method) task, in this process (with a progress bar) or on Dask; results in task order."""
    if scheduler is not None:
        from rareflow.parallel import run_tasks

        return run_tasks(scheduler, run_task, [(s, m) for s, m in tasks], shared=(cfg, ds), label="compare")
    results = []
    with make_progress() as progress:
        bar = progress.add_task("compare", total=len(tasks), info="")
        for split, method in tasks:
            progress.update(bar, info=f"seed {split.seed} · {method.display}")
            results.append(run_task(cfg, ds, split, method))
            progress.advance(bar)
    return results


def _energy_outputs(
    cfg: ExperimentConfig, ds: Dataset, splits: dict[int, Split], tasks: list, results: list, no_sensitivity: str | None
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """metrics.json's ``per_bin`` and ``sensitivity`` from the tasks' per-bin frames (mean/std over seeds)."""
    from rareflow.evaluation import energy
    from rareflow.evaluation.sensitivity import ALPHA

    if ds.binning is None:
        return None, None
    by_method: dict[str, list[pd.DataFrame]] = {}
    for res in results:
        by_method.setdefault(res.method, []).append(res.binned)
    per_bin = {**ds.binning.describe(), "methods": {m: energy.aggregate_binned(f) for m, f in by_method.items()}}
    sens: dict[str, Any] = {"available": no_sensitivity is None, "reason": no_sensitivity}
    if no_sensitivity is not None:
        return per_bin, sens
    weights = {seed: energy.split_weights(cfg, ds, s) for seed, s in splits.items()}
    curves: dict[str, list[pd.DataFrame]] = {}
    for (split, _), res in zip(tasks, results):
        w = weights[split.seed]["weight"]
        curves.setdefault(res.method, []).append(energy.sensitivity_of(ds, split, res.scores, w, res.binned))
    expected = energy.aggregate_expected([w["expected"] for w in weights.values()])
    sens.update(
        obstime_h=cfg.sensitivity.obstime_h, on_region_radius_deg=cfg.sensitivity.on_region_radius_deg,
        alpha=ALPHA, gamma_spectrum="CRAB_HEGRA (point source)", proton_spectrum="IRFDOC_PROTON_SPECTRUM",
        expected=expected, configured_test_rare_fraction=cfg.scenario.test_rare_fraction,
        methods={m: energy.aggregate_sensitivity(f) for m, f in curves.items()},
    )  # fmt: skip
    return per_bin, sens
