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
from rareflow.data.tables import Dataset, prepare_dataset, read_table
from rareflow.detectors import Detector, detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.evaluation.metrics import evaluate_scores
from rareflow.progress import make_progress
from rareflow.scenarios import Split, anomaly_split, rare_split
from rareflow.seeding import derive_seed, seed_everything

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

    @property
    def methods(self) -> list[str]:
        return [m.display for m in self.config.methods if m.display not in self.skipped]


def load_experiment_data(cfg: ExperimentConfig, seed: int = 0) -> Dataset:
    """The experiment's feature table, validated (simulated when ``data.source: simulate``)."""
    d = cfg.data
    if d.source == "simulate":
        from rareflow.data.simulate import simulate_events

        sim = simulate_events(
            n_events=d.simulate.n_events,
            rare_fraction=d.simulate.rare_fraction,
            seed=seed,
            muon_fraction=d.simulate.muon_fraction,
            source=d.simulate.source,
            dead_pixel_fraction=d.simulate.dead_pixel_fraction,
        )
        df, source = sim.table, f"simulated events (seed {seed}, {d.simulate.n_events} events)"
    else:
        df = read_table(d.path, "magic" if d.source == "magic" else d.format)
        source = str(d.path)
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
    }


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


def build_detector(cfg: ExperimentConfig, method: MethodConfig, seed: int) -> Detector:
    """A fresh detector for one seed: the method's params + experiment threshold, fit_on and seed."""
    cls = detector_class(method.name)
    params = dict(method.params)
    accepted = cls._get_param_names()
    if "threshold" in accepted and "threshold" not in params:
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
        params["random_state"] = derive_seed(seed, method.name)
    return get_detector(method.name, **params)


def _run_one(det: Detector, ds: Dataset, split: Split, cfg: ExperimentConfig) -> tuple[dict[str, Any], np.ndarray]:
    X, y = ds.X, ds.y
    assert y is not None
    w = ds.weight
    fit_y = y[split.fit_idx] if split.labelled_training else None
    fit_w = None if w is None else w[split.fit_idx]
    t0 = time.perf_counter()
    det.fit(X.iloc[split.fit_idx], fit_y, sample_weight=fit_w)
    fit_seconds = time.perf_counter() - t0
    if len(split.calib_idx):
        cal_y = y[split.calib_idx] if split.labelled_training else None
        det.set_threshold_from(X.iloc[split.calib_idx], cal_y, None if w is None else w[split.calib_idx])
    Xt = X.iloc[split.test_idx]
    t0 = time.perf_counter()
    scores = det.decision_function(Xt)
    score_seconds = max(time.perf_counter() - t0, 1e-9)
    test_w = split.test_weight * (1.0 if w is None else w[split.test_idx])
    m = evaluate_scores(
        y[split.test_idx], scores, test_w, threshold=det.threshold_,
        significance_events=cfg.significance.n_events, significance_alpha=cfg.significance.alpha,
    )
    m.update(fit_seconds=fit_seconds, score_events_per_second=len(Xt) / score_seconds)
    return m, scores


def run_experiment(cfg: ExperimentConfig, data_seed: int = 0) -> RunResult:
    """Run every method of ``cfg`` on identical splits for every seed."""
    ds = load_experiment_data(cfg, data_seed)
    assert ds.y is not None
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
    per_seed: list[dict[str, Any]] = []
    score_frames: list[pd.DataFrame] = []
    splits: dict[int, dict[str, Any]] = {}
    labels = ds.frame["label"].astype(str).to_numpy()
    with make_progress() as progress:
        task = progress.add_task("compare", total=len(cfg.scenario.seeds) * len(runnable), info="")
        for seed in cfg.scenario.seeds:
            split = make_split(cfg, ds.y, seed)
            splits[seed] = split.info
            for method in runnable:
                progress.update(task, info=f"seed {seed} · {method.display}")
                seed_everything(derive_seed(seed, method.name))
                det = build_detector(cfg, method, seed)
                metrics, scores = _run_one(det, ds, split, cfg)
                per_seed.append({"method": method.display, "seed": seed, **metrics})
                idx = split.test_idx
                score_frames.append(
                    pd.DataFrame({
                        "method": method.display, "seed": seed, "row": idx, "label": labels[idx],
                        "y": ds.y[idx], "weight": split.test_weight, "score": scores, "threshold": det.threshold_,
                    })
                )
                progress.advance(task)
    return RunResult(
        config=cfg,
        dataset=describe_dataset(ds),
        per_seed=per_seed,
        scores=pd.concat(score_frames, ignore_index=True),
        splits=splits,
        skipped=skipped,
    )
