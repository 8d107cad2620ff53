"""Plots of a compare run: ROC (log bulk acceptance), score distributions, Q-factor curves.

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
from rareflow.evaluation.metrics import BULK_ACCEPTANCES, weighted_roc  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def roc_plot(scores: pd.DataFrame, path: Path, rare_label: str, min_acceptance: float = 1e-4) -> Path:
    """Rare efficiency vs bulk acceptance (log x) per method; band = min/max over seeds.

    The x axis starts where one bulk test event passes (below that the curve is extrapolation).
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    n_bulk = scores.groupby(["method", "seed"])["y"].apply(lambda y: int((y == 0).sum())).min()
    grid = np.logspace(np.log10(max(min_acceptance, 1.0 / max(n_bulk, 1))), 0, 200)
    for method, g in scores.groupby("method", sort=False):
        curves = []
        for _, gs in g.groupby("seed"):
            roc = weighted_roc(gs["y"], gs["score"], gs["weight"])
            curves.append(np.interp(grid, roc.fpr, roc.tpr))
        c = np.array(curves)
        (line,) = ax.plot(grid, c.mean(axis=0), label=str(method))
        if len(c) > 1:
            ax.fill_between(grid, c.min(axis=0), c.max(axis=0), color=line.get_color(), alpha=0.2)
    for a in BULK_ACCEPTANCES:
        ax.axvline(a, color="0.85", lw=0.8, zorder=0)
    ax.set_xscale("log")
    ax.set_xlabel("bulk acceptance (fraction of bulk events selected)")
    ax.set_ylabel(f"rare efficiency ({rare_label} selected)")
    ax.set_ylim(0, 1.02)
    ax.set_title("ROC on the test set (mean over seeds, band = min..max)")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def score_distributions(scores: pd.DataFrame, path: Path, rare_label: str, seed: int | None = None) -> Path:
    """Test-score histograms of rare vs bulk per method (one seed), with the training-data cut."""
    if seed is None:
        seed = int(scores["seed"].min())
    sub = scores[scores["seed"] == seed]
    methods = list(dict.fromkeys(sub["method"]))
    ncol = min(3, len(methods))
    nrow = int(np.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
    for ax, method in zip(axes.ravel(), methods):
        g = sub[sub["method"] == method]
        raw = g["score"].to_numpy()
        q1, q3 = np.quantile(raw, [0.25, 0.75])
        spread = np.ptp(np.quantile(raw, [0.001, 0.999]))
        squash = spread > 10 * max(q3 - q1, 1e-12)  # heavy tails: show sign(s) log10(1 + |s|)
        f = (lambda x: np.sign(x) * np.log10(1 + np.abs(x))) if squash else (lambda x: x)
        s = f(raw)
        lo, hi = np.quantile(s, [0.001, 0.999])
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        bins = np.linspace(lo, hi, 60)
        for cls, name, color in ((0, "bulk", "tab:blue"), (1, rare_label, "tab:orange")):
            v = np.clip(f(g.loc[g["y"] == cls, "score"].to_numpy()), lo, hi)
            if len(v):
                ax.hist(v, bins=bins, density=True, histtype="step", lw=1.5, color=color, label=f"{name} (n={len(v)})")
        thr = float(f(np.float64(g["threshold"].iloc[0])))
        if lo <= thr <= hi:
            ax.axvline(thr, color="k", ls="--", lw=1, label="cut (training data)")
        ax.set_title(str(method), fontsize=10)
        ax.set_xlabel("sign(s)·log10(1+|s|), s = score" if squash else "score (higher = rarer)")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    fig.suptitle(f"Score distributions on the test set (seed {seed}, unweighted densities)")
    fig.tight_layout()
    return _save(fig, path)


def q_factor_plot(scores: pd.DataFrame, path: Path, min_bulk_events: int = 10) -> Path:
    """Q = eps_rare / sqrt(eps_bulk) against bulk acceptance (first seed), where >= min bulk events pass."""
    seed = int(scores["seed"].min())
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for method, g in scores[scores["seed"] == seed].groupby("method", sort=False):
        roc = weighted_roc(g["y"], g["score"], g["weight"])
        ok = (roc.bulk_pass_raw >= min_bulk_events) & (roc.fpr > 0)
        ax.plot(roc.fpr[ok], roc.tpr[ok] / np.sqrt(roc.fpr[ok]), label=str(method))
    ax.set_xscale("log")
    ax.set_xlabel("bulk acceptance")
    ax.set_ylabel("Q = eps_rare / sqrt(eps_bulk)")
    ax.set_title(f"Quality factor (seed {seed}; cuts keeping >= {min_bulk_events} bulk events)")
    ax.legend(fontsize=8)
    return _save(fig, path)
