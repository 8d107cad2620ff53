"""The ``rareflow`` command line: parses arguments and calls the Python API, nothing more.

Every command takes ``--seed`` and ``--help``; a :class:`RareflowError` becomes one line on
stderr and exit status 2, with no partial output (outputs are written atomically).
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from rareflow.atomic import Terminated, refuse_same_file
from rareflow.errors import RareflowError, short_repr
from rareflow.safe_yaml import load_yaml

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="rareflow: select rare events and anomalies with normalizing flows and autoencoders, honestly compared.",
)

SEED = typer.Option(0, "--seed", help="Random seed: same seed, same numbers on the same machine.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages.")


def _setup(seed: int, quiet: bool) -> None:
    from rareflow import progress
    from rareflow.seeding import seed_everything

    progress.set_enabled(not quiet)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("rareflow").setLevel(logging.WARNING if quiet else logging.INFO)
    seed_everything(seed)


def _echo(msg: str, quiet: bool) -> None:
    if not quiet:
        typer.echo(msg, err=True)


def _distinct_outputs(out: Path, others: dict[str, Path | None]) -> None:
    """Two outputs of one command must not be the same file."""
    for name, other in others.items():
        if other is not None:
            refuse_same_file(other, {"--out": out}, option=name)


def _parse_params(items: list[str] | None) -> dict[str, Any]:
    """``key=value`` pairs; values parsed as YAML (numbers, lists, dicts)."""
    params: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise RareflowError(f"--param {short_repr(item)}: expected key=value, e.g. --param n_estimators=300")
        key, value = item.split("=", 1)
        params[key.strip()] = load_yaml(value, f"--param {short_repr(key.strip(), 40)}")
    return params


@app.command()
def simulate(
    n_events: int = typer.Option(20000, "--n-events", min=1, help="Number of events to simulate."),
    rare_fraction: float = typer.Option(0.5, "--rare-fraction", min=0.0, max=1.0, help="Fraction of gamma events."),
    out: Path = typer.Option(..., "--out", help="Output Parquet table (Hillas parameters + label + truth)."),
    images_out: Optional[Path] = typer.Option(None, "--images-out", help="Also write the camera images (.npz)."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for an image gallery and feature histograms."),
    muon_fraction: float = typer.Option(0.02, "--muon-fraction", min=0.0, max=1.0, help="Fraction of muon events."),
    source: str = typer.Option("point", "--source", help="Gamma source: point | diffuse."),
    dead_pixel_fraction: float = typer.Option(0.0, "--dead-pixel-fraction", min=0.0, max=0.99, help="Fraction of dead pixels."),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Simulate gamma / proton / muon camera images and write their Hillas parameters."""
    _setup(seed, quiet)
    _distinct_outputs(out, {"--images-out": images_out, "--plots": plots})
    from rareflow.data.simulate import save_images, simulate_events
    from rareflow.data.tables import write_table

    if source not in ("point", "diffuse"):
        raise RareflowError(f"--source {short_repr(source)}: use point or diffuse")
    sim = simulate_events(
        n_events, rare_fraction, seed, muon_fraction=muon_fraction, source=source,
        dead_pixel_fraction=dead_pixel_fraction, return_images=images_out is not None or plots is not None,
    )
    write_table(sim.table, out)
    if images_out is not None:
        save_images(images_out, sim.images, sim.camera, sim.table["event_id"].to_numpy())
    if plots is not None:
        from rareflow.data.sim_plots import write_simulation_plots

        write_simulation_plots(sim.table, sim.images, sim.camera, plots, seed)
    _echo(f"wrote {len(sim.table)} events to {out}", quiet)


@app.command()
def extract(
    files: list[Path] = typer.Argument(..., help="sim_telarray file(s) (.simtel, .simtel.gz, .simtel.zst); rows concatenated in this order."),
    out: Path = typer.Option(..., "--out", help="Output Parquet table."),
    picture_threshold: float = typer.Option(10.0, "--picture-threshold", help="Tail-cuts picture threshold (p.e.)."),
    boundary_threshold: float = typer.Option(5.0, "--boundary-threshold", help="Tail-cuts boundary threshold (p.e.)."),
    min_neighbors: int = typer.Option(2, "--min-neighbors", help="Minimum picture neighbours."),
    max_events: Optional[int] = typer.Option(None, "--max-events", min=1, help="Read at most this many events per file."),
    chunk_events: int = typer.Option(1000, "--chunk-events", min=1, help="Events held in memory at a time (streamed)."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="One Dask task per file: 'local' (a cluster sized to this machine) or a scheduler address."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Workers of the local Dask cluster (default: one per core)."),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Read real sim_telarray events, clean them and write their Hillas parameters (streamed)."""
    _setup(seed, quiet)
    refuse_same_file(out, {"input file": list(files)})
    from rareflow.data.simtel import extract_to_parquet

    info = extract_to_parquet(
        files, out, picture_threshold=picture_threshold, boundary_threshold=boundary_threshold,
        min_neighbors=min_neighbors, max_events=max_events, chunk_events=chunk_events,
        scheduler=scheduler, n_workers=workers,
    )  # fmt: skip
    rate = info["events"] / max(info["seconds"], 1e-9)
    _echo(
        f"wrote {info['rows']} rows ({info['events']} events from {len(files)} file(s), "
        f"{info['seconds']:.1f} s, {rate:,.1f} events/s) to {out}",
        quiet,
    )


@app.command()
def train(
    method: str = typer.Argument(..., help="Method name (see SPEC), e.g. gbdt, mahalanobis, flow."),
    data: Path = typer.Option(..., "--data", help="Training table (Parquet, CSV, MAGIC, DL1 HDF5)."),
    out: Path = typer.Option(..., "--out", help="Model file to write."),
    features: Optional[str] = typer.Option(None, "--features", help="Comma-separated feature columns (default: all numeric)."),
    fit_on: Optional[str] = typer.Option(None, "--fit-on", help="bulk | rare (one-class methods) | both (two-class)."),
    rare_label: str = typer.Option("gamma", "--rare-label", help="Label of the rare class."),
    bulk_label: Optional[list[str]] = typer.Option(None, "--bulk-label", help="Bulk label(s); default: every other label."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Method parameter key=value (repeatable)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="parquet | csv | magic | dl1 (default: from the name)."),
    drop_nonfinite: bool = typer.Option(False, "--drop-nonfinite", help="Drop rows with NaN/inf instead of failing."),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Fit a detector on a table and save it (no code is executed when it is loaded again)."""
    _setup(seed, quiet)
    refuse_same_file(out, {"--data": data})
    from rareflow.api import train_model

    det = train_model(
        method, data, out, features=features, fit_on=fit_on, rare_label=rare_label, bulk_labels=bulk_label,
        params=_parse_params(param), fmt=fmt, drop_nonfinite=drop_nonfinite, seed=seed,
    )
    _echo(f"trained {method} on {len(det.decision_scores_)} events; threshold {det.threshold_:.6g}; wrote {out}", quiet)


@app.command()
def score(
    model: Path = typer.Option(..., "--model", help="Model file from `rareflow train`."),
    data: Path = typer.Option(..., "--data", help="Table to score."),
    out: Path = typer.Option(..., "--out", help="Output Parquet: the input columns + score, prediction, threshold."),
    fmt: Optional[str] = typer.Option(None, "--format", help="parquet | csv | magic | dl1."),
    batch_rows: int = typer.Option(262144, "--batch-rows", min=1, help="Rows per streamed chunk."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Score Parquet row groups on Dask: 'local' (a cluster sized to this machine) or a scheduler address."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Workers of the local Dask cluster (default: one per core)."),
    drop_nonfinite: bool = typer.Option(
        False, "--drop-nonfinite", help="Leave rows with NaN/inf features out of the output instead of failing."
    ),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Score a table with a saved model (higher score = rarer), streaming in bounded memory."""
    _setup(seed, quiet)
    refuse_same_file(out, {"--model": model, "--data": data})
    import time

    from rareflow.scoring import score_table

    t0 = time.perf_counter()
    n = score_table(
        model, data, out, fmt=fmt, batch_rows=batch_rows, scheduler=scheduler, n_workers=workers,
        drop_nonfinite=drop_nonfinite,
    )
    dt = max(time.perf_counter() - t0, 1e-9)
    _echo(f"scored {n} events in {dt:.1f} s ({n / dt:,.0f} events/s); wrote {out}", quiet)


@app.command()
def evaluate(
    scores: Path = typer.Option(..., "--scores", help="Scores table (from `rareflow score` or `compare`)."),
    out: Path = typer.Option(..., "--out", help="metrics.json to write."),
    rare_label: str = typer.Option("gamma", "--rare-label"),
    bulk_label: Optional[list[str]] = typer.Option(None, "--bulk-label"),
    significance_events: float = typer.Option(1e6, "--significance-events", help="ON-region events before cuts."),
    alpha: float = typer.Option(0.2, "--alpha", help="Li & Ma on/off exposure ratio (> 0)."),
    drop_nonfinite: bool = typer.Option(
        False, "--drop-nonfinite", help="Skip rows with a NaN/inf score instead of failing."
    ),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Compute ROC AUC, AP, efficiencies, Q and Li & Ma significance of a scores table."""
    _setup(seed, quiet)
    refuse_same_file(out, {"--scores": scores})
    from rareflow.atomic import write_text_atomic
    from rareflow.evaluation.evaluate import evaluate_file
    from rareflow.evaluation.summary import dumps

    doc = evaluate_file(scores, rare_label, bulk_label, significance_events, alpha, drop_nonfinite=drop_nonfinite)
    write_text_atomic(out, dumps(doc))
    for m, v in doc["methods"].items():
        _echo(f"{m}: AUC {v['auc']:.4f}, AP {v['ap']:.4f}", quiet)


@app.command()
def compare(
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (default: simulated rare scenario)."),
    out: Path = typer.Option(..., "--out", help="Output folder: metrics.json, scores.parquet, *.png, report.html."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Override the config's split seeds, e.g. 0,1,2."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Override the config's methods, e.g. gbdt,flow."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Run the sweep on Dask: 'local' (a cluster sized to this machine) or a scheduler address."
    ),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Run every configured method on identical splits and write metrics, plots and an HTML report."""
    _setup(seed, quiet)
    from rareflow.config import MethodConfig, load_config
    from rareflow.evaluation.compare import compare as run_compare

    cfg = load_config(config)
    if seeds:
        try:
            cfg.scenario.seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise RareflowError(f"--seeds {short_repr(seeds)}: expected comma-separated integers") from None
    if methods:
        cfg.methods = [MethodConfig(name=m.strip()) for m in methods.split(",") if m.strip()]
    paths = run_compare(cfg, out, data_seed=seed, scheduler=scheduler, inputs={"--config": config})
    _echo(f"wrote {paths['report']} and metrics.json, scores.parquet, plots in {out}", quiet)


@app.command()
def outliers(
    model: Path = typer.Option(..., "--model", help="A saved `flow` model (rareflow train flow ...)."),
    n: int = typer.Option(1000, "--n", min=1, help="Number of points to generate."),
    method: str = typer.Option("extremal", "--method", help="extremal | gumbel | archetype | nullspace (also tail, inlier)."),
    sigma: Optional[str] = typer.Option(
        None, "--sigma", help="Radius in sigmas of chi_d (or a range lo:hi); Dirichlet concentration for archetype/nullspace."
    ),
    data: Optional[Path] = typer.Option(None, "--data", help="Table whose latent fits DeepAA (archetype/nullspace)."),
    k: Optional[int] = typer.Option(None, "--k", min=2, help="Number of archetypes (default: reconstruction-error elbow)."),
    out: Path = typer.Option(..., "--out", help="Output Parquet table: the model's feature columns + gen_* columns."),
    seed: int = SEED,
    quiet: bool = QUIET,
) -> None:
    """Generate synthetic outliers (or inliers) with a flow: latent extremes, Gumbel, archetypes, null space."""
    _setup(seed, quiet)
    refuse_same_file(out, {"--model": model, "--data": data})
    from rareflow.outliers.io import outliers_command

    value: float | str | None = sigma
    if sigma is not None and ":" not in sigma:
        try:
            value = float(sigma)
        except ValueError:
            raise RareflowError(f"--sigma {short_repr(sigma)}: expected a number or a range lo:hi") from None
    summary = outliers_command(model, n, method, value, seed, out, data=data, k=k)
    _echo(f"wrote {summary.get('rows', n)} {method} points to {out}", quiet)


def _debug(argv: list[str]) -> tuple[list[str], bool]:
    """``--debug`` anywhere on the command line (removed) or ``RAREFLOW_DEBUG=1``: show tracebacks."""
    debug = os.environ.get("RAREFLOW_DEBUG", "").strip() not in ("", "0")
    if "--debug" in argv:
        argv = [a for a in argv if a != "--debug"]
        debug = True
    return argv, debug


def _os_error_line(exc: OSError) -> str:
    """One line for an operating-system error: what failed, on which path."""
    what = exc.strerror or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    target = f" {' -> '.join(paths)}" if paths else ""
    hint = {
        errno.ENOSPC: "free some disk space or write elsewhere",
        errno.EROFS: "the file system is read-only: write elsewhere",
        errno.EACCES: "check the permissions or write elsewhere",
        errno.EISDIR: "give a file name, not a folder",
        errno.ENOTDIR: "a folder in the path is a file",
    }.get(exc.errno or 0, "check the path")
    return f"error: cannot write or read{target}: {what}; {hint}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app; every failure becomes one stderr line and a non-zero exit status.

    A :class:`RareflowError` or an OS error (disk full, read-only target, a folder given as a
    file) exits 2; any other exception exits 1 with a pointer to ``RAREFLOW_DEBUG=1`` / ``--debug``,
    which show the traceback. SIGTERM/SIGHUP exit 128+signal after removing temporary files.
    Usage errors and ``--help`` are typer's own (exit 2 and 0); the return value is the exit code.
    """
    argv, debug = _debug(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, prog_name="rareflow")
    except RareflowError as exc:
        typer.echo(f"error: {exc}", err=True)
        return 2
    except SystemExit as exc:  # typer's standalone mode always exits
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except KeyboardInterrupt:
        typer.echo("aborted", err=True)
        return 130
    except Terminated as exc:
        typer.echo(f"aborted: {exc}", err=True)
        return 128 + exc.signum
    except OSError as exc:
        if debug:
            raise
        typer.echo(" ".join(_os_error_line(exc).split()), err=True)
        return 2
    except Exception as exc:  # a bug or an unforeseen input: one line unless debugging
        if debug:
            raise
        detail = " ".join(str(exc).split())[:200]
        typer.echo(f"error: unexpected {type(exc).__name__}: {detail}; run with RAREFLOW_DEBUG=1 for the traceback", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
