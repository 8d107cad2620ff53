"""``rareflow compare``: run an experiment and write metrics.json, scores.parquet, PNGs, report.html."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rareflow.atomic import atomic_dir, check_replaceable, write_text_atomic
from rareflow.config import ExperimentConfig
from rareflow.io.tables import write_table
from rareflow.evaluation.cut_plots import efficiency_vs_threshold, purity_plot
from rareflow.evaluation.plots import q_factor_plot, roc_plot, score_distributions
from rareflow.evaluation.ranking import method_labels
from rareflow.evaluation.report import render_report
from rareflow.evaluation.runner import RunResult, run_experiment
from rareflow.evaluation.summary import dumps, metrics_document


def result_document(result: RunResult) -> dict[str, Any]:
    """metrics.json for a run (SPEC), plus the context the report needs."""
    cfg = result.config
    return metrics_document(
        dataset=result.dataset["source"],
        scenario=cfg.scenario.model_dump(),
        seeds=list(cfg.scenario.seeds),
        per_seed=result.per_seed,
        extra={
            "data": result.dataset,
            "threshold": cfg.threshold.model_dump(),
            "significance": cfg.significance.model_dump(),
            "methods_config": [m.model_dump() for m in cfg.methods],
            "splits": {str(k): v for k, v in result.splits.items()},
            "skipped": result.skipped,
            **({"per_bin": result.per_bin} if result.per_bin is not None else {}),
            **({"sensitivity": result.sensitivity} if result.sensitivity is not None else {}),
        },
    )


def write_outputs(result: RunResult, out_dir: str | Path) -> dict[str, Path]:
    """Write every output of a compare run into ``out_dir`` (each file atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = result_document(result)
    rare = result.dataset["rare_label"]
    shown = result.scores.assign(method=result.scores["method"].map(method_labels(doc)))  # plots name fit_on
    paths = {
        "metrics": out / "metrics.json",
        "scores": out / "scores.parquet",
        "roc": roc_plot(shown, out / "roc.png", rare),
        "scores_png": score_distributions(shown, out / "score_distributions.png", rare),
        "q": q_factor_plot(shown, out / "q_factor.png"),
        "efficiency": efficiency_vs_threshold(shown, out / "efficiency_vs_threshold.png"),
        "purity": purity_plot(shown, out / "purity.png", rare),
    }
    write_table(result.scores, paths["scores"])
    write_text_atomic(paths["metrics"], dumps(doc))
    images = [
        ("ROC: rare efficiency vs bulk acceptance", paths["roc"]),
        ("Score distributions", paths["scores_png"]),
        ("Quality factor", paths["q"]),
        ("Efficiency vs threshold", paths["efficiency"]),
        ("Purity vs rare efficiency", paths["purity"]),
    ]
    from rareflow.evaluation.energy_plots import energy_html, write_energy_plots

    energy_figs = write_energy_plots(doc, out)
    paths.update({p.stem: p for _, p in energy_figs})
    gallery = []
    if result.gallery and result.camera is not None:
        from rareflow.evaluation.gallery import write_gallery

        lattice = (result.dataset.get("images") or {}).get("lattice") or "hexagonal"
        gallery = write_gallery(result.gallery, result.camera, out, lattice)
        paths.update({f"gallery:{caption.split(':')[0]}": p for caption, p in gallery})
    title = result.config.name and f"rareflow compare — {result.config.name}"
    paths["report"] = out / "report.html"
    write_text_atomic(paths["report"], render_report(doc, images, title, gallery=gallery or None, energy=energy_html(doc, energy_figs)))
    return paths


#: What a previous compare result folder may hold (it is replaced only if it holds nothing else).
RESULT_FILES = frozenset({"metrics.json", "scores.parquet", "report.html", "*.png"})


def compare(
    cfg: ExperimentConfig, out_dir: str | Path, data_seed: int | None = None, scheduler: str | None = None,
    inputs: dict[str, object] | None = None,
) -> dict[str, Path]:  # fmt: skip
    """Run ``cfg`` (in-process, or on Dask with ``scheduler``) and write its outputs.

    The outputs go to a hidden folder beside ``out_dir`` that replaces it only once every file is
    written: a failure half-way leaves no partial folder and an earlier result intact.
    ``inputs`` (``{"--config": path}``) must not lie inside an ``out_dir`` that would be replaced.
    """
    out = Path(out_dir)
    guard = {"data.path": cfg.data.path, **(inputs or {})}
    check_replaceable(out, RESULT_FILES, guard)  # before the (long) run; atomic_dir checks again
    result = run_experiment(cfg, data_seed, scheduler)
    with atomic_dir(out, RESULT_FILES, guard) as tmp:
        paths = write_outputs(result, tmp)
    return {k: out / Path(p).relative_to(tmp) for k, p in paths.items()}
