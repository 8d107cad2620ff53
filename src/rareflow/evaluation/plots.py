"""Plots of a compare run: ROC (log bulk acceptance), score distributions, Q-factor curves, each
marking the cut chosen on training data (efficiency-vs-cut and purity plots: :mod:`.cut_plots`).

Matplotlib with the Agg backend; each function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rareflow.atomic import atomic_path  # noqa: E402
from rareflow.evaluation.metrics import BULK_ACCEPTANCES, at_threshold, weighted_roc  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def cut_points(scores: pd.DataFrame) -> pd.DataFrame:
    """Where each (method, seed)'s cut lands on the test set: bulk acceptance, rare efficiency, purity.

    The cut is the detector's own threshold (chosen on training data), read from the ``threshold``
    column; the numbers are :func:`rareflow.evaluation.metrics.at_threshold` of the test scores.
    """
    rows = []
    for (method, seed), g in scores.groupby(["method", "seed"], sort=False):
        cut = at_threshold(g["y"], g["score"], g["weight"], float(g["threshold"].iloc[0]))
        rows.append({"method": method, "seed": seed, **cut})
    return pd.DataFrame(rows)


def roc_plot(scores: pd.DataFrame, path: Path, rare_label: str, min_acceptance: float = 1e-4) -> Path:
    """Rare efficiency vs bulk acceptance (log x) per method; band = min/max over seeds; marker = the
    cut chosen on training data (mean over seeds of where it lands on the test set).

    The x axis starts where one bulk test event passes (below that the curve is extrapolation).
    """
    fig, ax = plt.subplots(figsize=(6.8, 5.0))
    n_bulk = scores.groupby(["method", "seed"])["y"].apply(lambda y: int((y == 0).sum())).min()
    x_min = max(min_acceptance, 1.0 / max(n_bulk, 1))
    grid = np.logspace(np.log10(x_min), 0, 200)
    cuts = cut_points(scores).groupby("method", sort=False)[["bulk_acceptance", "rare_efficiency"]].mean()
    for k, (method, g) in enumerate(scores.groupby("method", sort=False)):
        curves = []
        for _, gs in g.groupby("seed"):
            roc = weighted_roc(gs["y"], gs["score"], gs["weight"])
            curves.append(np.interp(grid, roc.fpr, roc.tpr))
        c = np.array(curves)
        (line,) = ax.plot(grid, c.mean(axis=0), color=f"C{k % 10}", label=str(method))
        if len(c) > 1:
            ax.fill_between(grid, c.min(axis=0), c.max(axis=0), color=line.get_color(), alpha=0.2)
        bx, ry = cuts.loc[method]
        ax.plot(max(bx, x_min), ry, "o", ms=6, mfc="white", mec=line.get_color(), mew=1.8, zorder=5)
    for a in BULK_ACCEPTANCES:
        ax.axvline(a, color="0.85", lw=0.8, zorder=0)
    ax.plot([], [], "o", mfc="white", mec="k", label="cut (chosen on training data)")
    ax.set_xscale("log")
    ax.set_xlabel("bulk acceptance (fraction of bulk events selected)")
    ax.set_ylabel(f"rare efficiency ({rare_label} selected)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"ROC on the test set (mean over {scores['seed'].nunique()} seeds, band = min..max)")
    ax.legend(fontsize=7, loc="lower right")
    return _save(fig, path)


def bulk_tail(scores: np.ndarray, bulk_scores: np.ndarray) -> np.ndarray:
    """-log10 of the fraction of bulk events scoring at least ``scores``: a scale every method shares.

    A monotone change of a method's score (log, negation of a negated score, ...) leaves it unchanged;
    the bulk events are spread the same way for every method, so the panels compare directly; a cut
    keeping 1 % of the bulk sits at 2. Fractions are floored at 1 / (n_bulk + 1).
    """
    ref = np.sort(np.asarray(bulk_scores, float))
    n_at_least = ref.size - np.searchsorted(ref, np.asarray(scores, float), side="left")
    return -np.log10(np.maximum(n_at_least, 1) / (ref.size + 1))


def score_distributions(scores: pd.DataFrame, path: Path, rare_label: str, seed: int | None = None) -> Path:
    """Test-score histograms per method on the shared bulk-tail scale (:func:`bulk_tail`), every seed
    pooled (or ``seed`` only), each true class apart (protons and muons separately), with the cuts."""
    sub = scores if seed is None else scores[scores["seed"] == seed]
    methods = list(dict.fromkeys(sub["method"]))
    classes = list(dict.fromkeys(sub.sort_values("y", ascending=False)["label"]))
    ncol = min(3, len(methods))
    nrow = int(np.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.4 * nrow), squeeze=False, sharex=True, sharey=True)
    x_max = np.log10(sub.groupby(["method", "seed"])["y"].apply(lambda y: int((y == 0).sum())).max() + 1)
    bins = np.linspace(0, x_max, 41)
    for ax, method in zip(axes.ravel(), methods):
        x, cls, cut_x = _tail_scale(sub[sub["method"] == method])
        for k, name in enumerate(classes):
            v = x[cls == name]
            if len(v):
                ax.hist(v, bins=bins, density=True, histtype="step", lw=1.5, color=f"C{k}", label=f"{name} (n={len(v)})")
        for k, c in enumerate(cut_x):
            ax.axvline(c, color="k", ls="--", lw=0.8, label="cut (training data), per seed" if k == 0 else None)
        ax.set_title(str(method), fontsize=9)
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel("density (unweighted events)")
    for ax in axes[-1, :]:
        ax.set_xlabel("−log10(bulk fraction scoring higher)")
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    which = f"seed {seed}" if seed is not None else f"{sub['seed'].nunique()} seeds pooled"
    fig.suptitle(f"Score distributions on the test set ({which}); higher = rarer, same scale for every method")
    fig.tight_layout()
    return _save(fig, path)


def _tail_scale(g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """One method's scores on the bulk-tail scale, seed by seed; their labels; each seed's cut."""
    xs, labels, cuts = [], [], []
    for _, gs in g.groupby("seed"):
        bulk = gs.loc[gs["y"] == 0, "score"].to_numpy()
        xs.append(bulk_tail(gs["score"].to_numpy(), bulk))
        labels.append(gs["label"].astype(str).to_numpy())
        thr = float(gs["threshold"].iloc[0])
        if np.isfinite(thr):  # the cut passes scores > thr: the bulk fraction strictly above it
            cuts.append(float(-np.log10(max((bulk > thr).sum(), 1) / (bulk.size + 1))))
    return np.concatenate(xs), np.concatenate(labels), cuts


def q_factor_plot(scores: pd.DataFrame, path: Path, min_bulk_events: int = 10) -> Path:
    """Q = eps_rare / sqrt(eps_bulk) against bulk acceptance (first seed), where >= min bulk events
    pass; marker: that seed's cut chosen on training data."""
    seed = int(scores["seed"].min())
    first = scores[scores["seed"] == seed]
    cuts = cut_points(first).set_index("method")
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    for k, (method, g) in enumerate(first.groupby("method", sort=False)):
        roc = weighted_roc(g["y"], g["score"], g["weight"])
        ok = (roc.bulk_pass_raw >= min_bulk_events) & (roc.fpr > 0)
        (line,) = ax.plot(roc.fpr[ok], roc.tpr[ok] / np.sqrt(roc.fpr[ok]), color=f"C{k % 10}", label=str(method))
        bx, ry = cuts.loc[method, ["bulk_acceptance", "rare_efficiency"]]
        if bx > 0:
            ax.plot(bx, ry / np.sqrt(bx), "o", ms=6, mfc="white", mec=line.get_color(), mew=1.8, zorder=5)
    ax.plot([], [], "o", mfc="white", mec="k", label="cut (chosen on training data)")
    ax.set_xscale("log")
    ax.set_xlabel("bulk acceptance")
    ax.set_ylabel("Q = eps_rare / sqrt(eps_bulk)")
    ax.set_title(f"Quality factor (seed {seed}; cuts keeping >= {min_bulk_events} bulk events)")
    ax.legend(fontsize=7)
    return _save(fig, path)
