"""Plots of where to cut: efficiency vs threshold per true class, purity vs rare efficiency.

* Efficiency vs threshold: for each method, the fraction of each true class (the rare class and
  every bulk label apart, e.g. protons and muons) scoring above a threshold, against the
  threshold in the method's own score units; dashed lines: the cuts chosen on training data.
* Purity vs rare efficiency: purity = selected rare / all selected events, with the test
  weights, i.e. at the test set's rare fraction. In the rare scenario that is the fraction the
  experiment stands for (e.g. 1e-3), so purities are small; in the anomaly scenario the test set
  is balanced and purity is correspondingly high.

Matplotlib with the Agg backend; each function writes one PNG atomically (``plots._save``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rareflow.evaluation.metrics import weighted_roc
from rareflow.evaluation.plots import _save, cut_points, plt


def class_efficiency(scores: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """``{class: fraction of its events with score > t for each t}`` (unweighted, per true class)."""
    out = {}
    for name in dict.fromkeys(labels):
        s = np.sort(scores[labels == name])
        out[str(name)] = (s.size - np.searchsorted(s, thresholds, side="right")) / max(s.size, 1)
    return out


def efficiency_vs_threshold(scores: pd.DataFrame, path: Path, seed: int | None = None) -> Path:
    """One panel per method: each class's efficiency (log y) against the threshold (first seed by default)."""
    seed = int(scores["seed"].min()) if seed is None else seed
    sub = scores[scores["seed"] == seed]
    methods = list(dict.fromkeys(sub["method"]))
    classes = list(dict.fromkeys(sub.sort_values("y", ascending=False)["label"].astype(str)))
    ncol = min(3, len(methods))
    nrow = int(np.ceil(len(methods) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.4 * ncol, 3.4 * nrow), squeeze=False, sharey=True)
    for ax, method in zip(axes.ravel(), methods):
        g = sub[sub["method"] == method]
        s, labels = g["score"].to_numpy(float), g["label"].astype(str).to_numpy()
        thr = float(g["threshold"].iloc[0])
        rare = s[g["y"].to_numpy() == 1]  # from where the rare efficiency starts to drop to the top score
        lo = min(np.quantile(rare if rare.size else s, 0.005), thr if np.isfinite(thr) else np.inf)
        hi = s.max()
        grid = np.linspace(lo, hi if hi > lo else lo + 1, 300)
        eff = class_efficiency(s, labels, grid)
        for k, name in enumerate(classes):
            if name in eff:
                ax.plot(grid, np.maximum(eff[name], 1e-5), color=f"C{k}", label=name)
        if np.isfinite(thr):
            ax.axvline(thr, color="k", ls="--", lw=0.8, label="cut (training data)")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, 1.3)
        ax.set_title(str(method), fontsize=9)
        ax.set_xlabel("threshold on the score (method's own units)")
        ax.legend(fontsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel("fraction of the class selected")
    for ax in axes.ravel()[len(methods):]:
        ax.axis("off")
    fig.suptitle(f"Efficiency vs threshold per true class (test set, seed {seed}; events with score > threshold)")
    fig.tight_layout()
    return _save(fig, path)


def purity_plot(scores: pd.DataFrame, path: Path, rare_label: str) -> Path:
    """Purity against rare efficiency per method (mean over seeds), marker at the training-data cut."""
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    grid = np.linspace(0.02, 1.0, 99)
    cuts = cut_points(scores).groupby("method", sort=False)[["rare_efficiency", "purity"]].mean()
    fraction = []
    for k, (method, g) in enumerate(scores.groupby("method", sort=False)):
        curves = []
        for _, gs in g.groupby("seed"):
            roc = weighted_roc(gs["y"], gs["score"], gs["weight"])
            sel_r, sel_b = roc.tpr * roc.rare_total, roc.fpr * roc.bulk_total
            purity = np.divide(sel_r, sel_r + sel_b, out=np.full_like(sel_r, np.nan), where=sel_r + sel_b > 0)
            ok = roc.tpr > 0
            curves.append(np.interp(grid, roc.tpr[ok], purity[ok]))
            fraction.append(roc.rare_total / (roc.rare_total + roc.bulk_total))
        (line,) = ax.plot(grid, np.mean(curves, axis=0), color=f"C{k % 10}", label=str(method))
        eff, pur = cuts.loc[method]
        if np.isfinite(pur) and pur > 0:
            ax.plot(eff, pur, "o", ms=6, mfc="white", mec=line.get_color(), mew=1.8, zorder=5)
    ax.plot([], [], "o", mfc="white", mec="k", label="cut (chosen on training data)")
    ax.axhline(np.mean(fraction), color="0.5", ls=":", lw=1, label="no selection (the test rare fraction)")
    ax.set_yscale("log")
    ax.set_xlabel(f"rare efficiency ({rare_label} selected)")
    ax.set_ylabel(f"purity ({rare_label} / all selected, test weights)")
    ax.set_title(f"Purity at the test rare fraction {np.mean(fraction):.3g} (mean over {scores['seed'].nunique()} seeds)")
    ax.legend(fontsize=7)
    return _save(fig, path)
