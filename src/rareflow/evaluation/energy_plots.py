"""Plots of the energy study: efficiency / acceptance / Q per bin, and sensitivity vs energy.

Input: metrics.json's ``per_bin`` and ``sensitivity`` sections (written by the compare runner), so
the figures show exactly the numbers of the file. All methods share one axis; the band is
mean ± standard deviation over seeds; a bin flagged ``low_statistics`` is drawn with a hollow
marker (kept, never dropped). Each function writes one PNG atomically and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rareflow.evaluation.plots import _save  # noqa: E402

__all__ = ["efficiency_vs_energy", "sensitivity_vs_energy", "write_energy_plots"]

_PANELS = (
    ("rare_efficiency", "rare efficiency", False),
    ("bulk_acceptance", "bulk acceptance", True),
    ("q_factor", "Q = ε_rare / √ε_bulk", False),
)


def _arr(rows: list[dict[str, Any]], key: str) -> np.ndarray:
    return np.asarray([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def _curve(ax: Any, x: np.ndarray, mean: np.ndarray, std: np.ndarray, low: np.ndarray, color: Any, label: str) -> None:
    """Line + seed band, filled markers for trusted bins and hollow ones for low-statistics bins."""
    std = np.nan_to_num(std)
    ax.plot(x, mean, "-", color=color, label=label)
    ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, linewidth=0)
    ax.plot(x[~low], mean[~low], "o", color=color, ms=5)
    ax.plot(x[low], mean[low], "o", mfc="none", color=color, ms=5)


def _axis_label(per_bin: dict[str, Any]) -> str:
    col = per_bin.get("column", "bin column")
    unit = " [TeV]" if col == "true_energy" else ""
    return f"{col}{unit}" + (" (energy proxy)" if per_bin.get("proxy") else "")


def efficiency_vs_energy(per_bin: dict[str, Any], path: Path) -> Path:
    """Three panels against the bin centre: rare efficiency, bulk acceptance (log), Q."""
    fig, axes = plt.subplots(3, 1, figsize=(6.8, 9.0), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, rows) in enumerate(per_bin["methods"].items()):
        x, low = _arr(rows, "center"), np.asarray([bool(r.get("low_statistics")) for r in rows])
        for ax, (key, _, _) in zip(axes, _PANELS):
            _curve(ax, x, _arr(rows, f"{key}_mean"), _arr(rows, f"{key}_std"), low, colors[i % len(colors)], method)
    for ax, (_, label, logy) in zip(axes, _PANELS):
        ax.set_ylabel(label)
        ax.set_yscale("log" if logy else "linear")
        ax.grid(alpha=0.3, which="both")
    if per_bin.get("edges", [0])[0] > 0:
        axes[-1].set_xscale("log")
    axes[-1].set_xlabel(_axis_label(per_bin))
    rule = f"per-bin cut: {per_bin.get('rule')} = {per_bin.get('value')} on training data"
    axes[0].set_title(f"{rule}; hollow: < 20 test events of a class")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def sensitivity_vs_energy(sensitivity: dict[str, Any], per_bin: dict[str, Any], path: Path) -> Path:
    """E² × flux sensitivity per method (log-log), with the cut's gamma efficiency in a panel below."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.8, 7.0), sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (method, rows) in enumerate(sensitivity["methods"].items()):
        c = colors[i % len(colors)]
        x, low = _arr(rows, "center"), np.asarray([bool(r.get("low_statistics")) for r in rows])
        _curve(top, x, _arr(rows, "e2_flux_sensitivity_mean"), _arr(rows, "e2_flux_sensitivity_std"), low, c, method)
        eff = per_bin["methods"].get(method, [])
        if eff:
            flags = np.asarray([bool(r.get("low_statistics")) for r in eff])
            _curve(bottom, _arr(eff, "center"), _arr(eff, "rare_efficiency_mean"), _arr(eff, "rare_efficiency_std"), flags, c, method)
    top.set_xscale("log")
    top.set_yscale("log")
    top.set_ylabel("E² · flux sensitivity [erg cm⁻² s⁻¹]")
    top.set_title(f"5σ differential sensitivity, {sensitivity.get('obstime_h')} h (lower is better)")
    top.grid(alpha=0.3, which="both")
    top.legend(fontsize=8)
    bottom.set_ylabel("gamma efficiency\nat the cut")
    bottom.set_xlabel("true energy [TeV]")
    bottom.grid(alpha=0.3, which="both")
    return _save(fig, path)


def write_energy_plots(doc: dict[str, Any], out: Path) -> list[tuple[str, Path]]:
    """The energy figures of a metrics document as ``(caption, png)`` pairs (empty without ``per_bin``)."""
    per_bin = doc.get("per_bin")
    if not per_bin:
        return []
    figs = [(f"Efficiency, bulk acceptance and Q vs {per_bin['column']}", efficiency_vs_energy(per_bin, out / "efficiency_vs_energy.png"))]
    sens = doc.get("sensitivity") or {}
    if sens.get("available"):
        figs.append(("Differential sensitivity vs energy", sensitivity_vs_energy(sens, per_bin, out / "sensitivity_vs_energy.png")))
    return figs


def _fmt(x: Any, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def _expected_text(sens: dict[str, Any]) -> str:
    exp = sens.get("expected") or {}
    return (
        f"Both views of the mix: the test set was given a rare fraction of {_fmt(sens.get('configured_test_rare_fraction'))} "
        f"(the scenario's choice); the spectra (Crab for gammas, CTA proton spectrum) give an expected rare fraction of "
        f"<b>{_fmt(exp.get('rare_fraction'))}</b> ± {_fmt(exp.get('rare_fraction_std'), 2)} over seeds "
        f"({_fmt(exp.get('n_rare'))} gammas vs {_fmt(exp.get('n_bulk'))} protons in {sens.get('obstime_h')} h)."
    )


def energy_html(doc: dict[str, Any], figs: list[tuple[str, Path]]) -> str | None:
    """The report's energy section: what was binned, how the cut was chosen, the figures."""
    import html

    from rareflow.evaluation.report import _img

    per_bin = doc.get("per_bin")
    if not per_bin:
        return None
    col = html.escape(str(per_bin["column"]))
    proxy = (
        f" <b>{col} is a proxy of the energy</b>, not the energy: bins of it mix energies." if per_bin.get("proxy") else ""
    )
    parts = [
        "<h2>Per energy bin</h2>",
        f"<p>Bins of <code>{col}</code> (edges {', '.join(_fmt(e) for e in per_bin['edges'])}"
        + (f"; {per_bin['bins_merged']} automatic bin(s) without test events merged" if per_bin.get("bins_merged") else "")
        + f").{proxy} In every bin the cut is chosen on the training (calibration) events of that bin so that "
        f"<b>{html.escape(str(per_bin['rule']))} = {per_bin['value']:g}</b> (pyirf's percentile cut), then applied to the "
        "test events. Bands: ± standard deviation over seeds; hollow markers: fewer than 20 test events of a class "
        "(kept, not dropped). The numbers are in metrics.json (<code>per_bin</code>).</p>",
    ]
    sens = doc.get("sensitivity") or {}
    if sens.get("available"):
        parts.append(f"<p>{_expected_text(sens)} Sensitivity: Li &amp; Ma 5σ with α = {sens.get('alpha')}, ≥ 10 excess "
                     "events, excess ≥ 5 % of the background; toy limits in docs/energy.md.</p>")  # fmt: skip
    elif sens:
        parts.append(f"<p class=muted>No sensitivity: {html.escape(str(sens.get('reason')))}.</p>")
    for caption, path in figs:
        parts.append(f"<h3>{html.escape(caption)}</h3>{_img(path, caption)}")
    return "\n".join(parts)
