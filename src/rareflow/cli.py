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
from rareflow.cli_help import HelpfulTyper
from rareflow.errors import RareflowError, short_repr
from rareflow.safe_yaml import load_yaml

app = HelpfulTyper(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="rareflow: select rare events and anomalies with normalizing flows and autoencoders, honestly compared.",
)

SEED = typer.Option(
    "0", "--seed", help="Random seed, an integer 0..2**32-1: same seed, same numbers (see rareflow.seeding)."
)
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages.")
THREADS = typer.Option(
    0, "--threads", min=0,
    help="Threads for torch, BLAS and OpenMP alike (0 = min(cores, 4), fewer when the machine is busy).",
)  # fmt: skip


def _setup(seed: str, quiet: bool, threads: int = 0) -> int:
    """Progress/logging, the thread policy and the process seed; returns the checked ``--seed``."""
    from rareflow import progress
    from rareflow.seeding import check_seed, seed_everything
    from rareflow.threads import apply_thread_policy

    value = check_seed(seed)
    progress.set_enabled(not quiet)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("rareflow").setLevel(logging.WARNING if quiet else logging.INFO)
    apply_thread_policy(threads)
    seed_everything(value)
    return value


def _need_file(path: Path | None, option: str) -> None:
    """Fail fast (before heavy imports) when an input file is missing."""
    if path is not None and not path.exists():
        raise RareflowError(f"{path}: file not found (given to {option}); check the path")


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
def methods(threads: int = THREADS) -> None:
    """List the detection methods: name, kind, what each needs, one line (parameters: train METHOD --help)."""
    _setup(0, True, threads)
    from rareflow.cli_help import print_methods

    print_methods()


@app.command()
def simulate(
    n_events: int = typer.Option(20000, "--n-events", min=1, help="Number of events to write (valid ones, unless --keep all)."),
    rare_fraction: float = typer.Option(0.5, "--rare-fraction", min=0.0, max=1.0, help="Fraction of gamma events."),
    out: Path = typer.Option(..., "--out", help="Output Parquet table (Hillas parameters + label + truth)."),
    images_out: Optional[Path] = typer.Option(None, "--images-out", help="Also write the camera images (.npz)."),
    plots: Optional[Path] = typer.Option(None, "--plots", help="Folder for an image gallery and feature histograms."),
    muon_fraction: float = typer.Option(0.02, "--muon-fraction", min=0.0, max=1.0, help="Fraction of muon events."),
    source: str = typer.Option("point", "--source", help="Gamma source: point | diffuse."),
    dead_pixel_fraction: float = typer.Option(0.0, "--dead-pixel-fraction", min=0.0, max=0.99, help="Fraction of dead pixels."),
    keep: str = typer.Option(
        "valid", "--keep", help="valid: draw showers until --n-events are valid (>= 3 pixels after cleaning; thrown "
        "showers counted in the metadata); all: --n-events thrown showers, invalid ones with NaN parameters."
    ),
    camera_from: Optional[Path] = typer.Option(
        None, "--camera-from", help="A sim_telarray file: draw the showers on its camera (e.g. LSTCam) instead of the "
        "toy TAIGA-like one, to train image models that `rareflow score` that file's images with.",
    ),
    tel_id: Optional[int] = typer.Option(None, "--tel-id", min=0, help="With --camera-from: the telescope whose camera "
                                         "is used (default: the first, or the one with most images if cameras differ)."),
    seed: str = SEED,
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Simulate gamma / proton / muon camera images and write their Hillas parameters."""
    seed_value = _setup(seed, quiet, threads)
    _distinct_outputs(out, {"--images-out": images_out, "--plots": plots})
    _need_file(camera_from, "--camera-from")
    if tel_id is not None and camera_from is None:
        raise RareflowError("--tel-id goes with --camera-from FILE (the sim_telarray file whose camera to use)")
    refuse_same_file(out, {"--camera-from": camera_from} if camera_from else {})
    from rareflow.iact.simulate import save_images, simulate_events, simulation_summary
    from rareflow.io.metadata import write_parquet

    if source not in ("point", "diffuse"):
        raise RareflowError(f"--source {short_repr(source)}: use point or diffuse")
    if keep not in ("valid", "all"):
        raise RareflowError(f"--keep {short_repr(keep)}: use valid or all")
    camera = None
    if camera_from is not None:
        from rareflow.iact.simtel_camera import camera_from_simtel

        camera = camera_from_simtel(camera_from, tel_id)
    sim = simulate_events(
        n_events, rare_fraction, seed_value, muon_fraction=muon_fraction, source=source, camera=camera,
        dead_pixel_fraction=dead_pixel_fraction, return_images=images_out is not None or plots is not None, keep=keep,
    )
    write_parquet(sim.table, out, simulation=sim.simulation)  # + what was simulated (sensitivity weights)
    if images_out is not None:
        save_images(images_out, sim.images, sim.camera, sim.table["event_id"].to_numpy())
    if plots is not None:
        from rareflow.iact.sim_plots import write_simulation_plots

        write_simulation_plots(sim.table, sim.images, sim.camera, plots, seed_value)
    on = f" on camera {sim.camera.name} ({sim.camera.n_pixels} pixels)" if camera is not None else ""
    _echo(f"wrote {len(sim.table)} events{on} to {out}: {simulation_summary(sim.table, sim.simulation)}", quiet)


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
    seed: str = SEED,
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Read real sim_telarray events, clean them and write their Hillas parameters (streamed)."""
    _setup(seed, quiet, threads)
    for f in files:
        _need_file(f, "FILES")
    refuse_same_file(out, {"input file": list(files)})
    from rareflow.iact.extract import extract_to_parquet

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
    method: str = typer.Argument(
        ..., help="Method name, e.g. gbdt, mahalanobis, flow (list: `rareflow methods`; its parameters: "
        "`rareflow train METHOD --help`)."
    ),
    data: Path = typer.Option(..., "--data", help="Training table (Parquet, CSV, MAGIC, DL1 HDF5)."),
    out: Path = typer.Option(..., "--out", help="Model file to write."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="Image methods: the .npz of `rareflow simulate --images-out` (--data: the table written "
        "with it); the model remembers the camera.",
    ),
    features: Optional[str] = typer.Option(None, "--features", help="Comma-separated feature columns (default: all numeric)."),
    fit_on: Optional[str] = typer.Option(
        None, "--fit-on", show_default="bulk for one-class methods, both otherwise",
        help="Class a one-class method learns: bulk | rare; two-class and supervised methods: both.",
    ),
    rare_label: str = typer.Option("gamma", "--rare-label", help="Label of the rare class."),
    bulk_label: Optional[list[str]] = typer.Option(None, "--bulk-label", help="Bulk label(s); default: every other label."),
    param: Optional[list[str]] = typer.Option(None, "--param", "-p", help="Method parameter key=value (repeatable)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="parquet | csv | magic | dl1 (default: from the name)."),
    drop_nonfinite: bool = typer.Option(False, "--drop-nonfinite", help="Drop rows with NaN/inf instead of failing."),
    holdout: float = typer.Option(
        0.0, "--holdout", min=0.0, max=0.95,
        help="Keep this fraction of the table's rows out of training (seeded by --seed); `rareflow score` "
        "on the same table then scores only those held-out rows, so `evaluate` numbers are honest.",
    ),
    seed: str = SEED,
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Fit a detector on a table and save it (no code is executed when it is loaded again).

    The model remembers a fingerprint of the table it was trained on: `evaluate` warns when the
    scores come from the training rows (in-sample). With --holdout F a seeded fraction F of the
    rows is left out of training and `score` on the same table scores only those rows.
    """
    seed_value = _setup(seed, quiet, threads)
    _need_file(data, "--data")
    _need_file(images, "--images")
    refuse_same_file(out, {"--data": data, "--images": images} if images else {"--data": data})
    from rareflow.api import train_image_model, train_model
    from rareflow.detectors.working_point import describe_working_point

    if images is not None:
        if holdout or fmt or drop_nonfinite:
            raise RareflowError("--holdout, --format and --drop-nonfinite go with table methods; drop them with --images")
        det = train_image_model(method, data, images, out, features=features, fit_on=fit_on, rare_label=rare_label,
                                bulk_labels=bulk_label, params=_parse_params(param), seed=seed_value)  # fmt: skip
        _echo(f"trained {method} on {len(det.decision_scores_)} images of camera {det.camera_['name']}; wrote {out}", quiet)
        return
    det = train_model(
        method, data, out, features=features, fit_on=fit_on, rare_label=rare_label, bulk_labels=bulk_label,
        params=_parse_params(param), fmt=fmt, drop_nonfinite=drop_nonfinite, seed=seed_value, holdout=holdout,
    )
    held = f" ({holdout:.0%} of the rows held out for `score`)" if holdout else ""
    _echo(f"trained {method} on {len(det.decision_scores_)} events{held}; {describe_working_point(det)}; wrote {out}", quiet)


@app.command()
def score(
    model: Path = typer.Option(..., "--model", help="Model file from `rareflow train`."),
    data: Path = typer.Option(..., "--data", help="Table to score; image models: a sim_telarray file or an .npz of images."),
    out: Path = typer.Option(..., "--out", help="Output Parquet: the input columns + score, prediction, threshold, gammaness."),
    tel_id: Optional[int] = typer.Option(
        None, "--tel-id", min=0,
        help="Image model, sim_telarray file: the telescope (default: every telescope with the model's camera).",
    ),
    chunk_events: Optional[int] = typer.Option(
        None, "--chunk-events", min=1, help="Image model, sim_telarray file: events held in memory at a time (default 1000)."
    ),
    fmt: Optional[str] = typer.Option(
        None, "--format",
        help="Input parquet | csv | magic | dl1; or dl2: a ctapipe DL1 input scored into a ctapipe DL2 HDF5 --out.",
    ),
    gammaness_column: str = typer.Option(
        "gammaness", "--gammaness-column", help="Name of the calibrated gammaness column (e.g. gh_score for pyirf)."
    ),
    dl2_prefix: str = typer.Option("rareflow", "--dl2-prefix", help="With --format dl2: the DL2 algorithm name."),
    batch_rows: int = typer.Option(262144, "--batch-rows", min=1, help="Rows per streamed chunk."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Score Parquet row groups on Dask: 'local' (a cluster sized to this machine) or a scheduler address."
    ),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Workers of the local Dask cluster (default: one per core)."),
    drop_nonfinite: bool = typer.Option(
        False, "--drop-nonfinite", help="Leave rows with NaN/inf features out of the output instead of failing."
    ),
    seed: str = SEED,
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Score a table with a saved model (higher score = rarer), streaming in bounded memory.

    An image model scores a sim_telarray file's camera images instead (docs/images.md). On the
    table the model was trained on with `train --holdout F`, only the held-out rows are scored
    (the training rows are skipped and counted in the output's metadata).
    """
    _setup(seed, quiet, threads)
    _need_file(model, "--model")
    _need_file(data, "--data")
    refuse_same_file(out, {"--model": model, "--data": data})
    import time

    from rareflow.scoring import score_dl2, score_table

    t0 = time.perf_counter()
    from rareflow.image_scoring import reads_images, score_images

    if reads_images(model, data, fmt, scheduler, tel_id, chunk_events):
        n = score_images(model, data, out, tel_id=tel_id, gammaness_column=gammaness_column, chunk_events=chunk_events or 1000)
    elif fmt == "dl2":
        if scheduler is not None:
            raise RareflowError("--format dl2 scores in this process; drop --scheduler")
        n = score_dl2(
            model, data, out, gammaness_column=gammaness_column, prefix=dl2_prefix, batch_rows=batch_rows,
            drop_nonfinite=drop_nonfinite,
        )  # fmt: skip
    else:
        n = score_table(
            model, data, out, fmt=fmt, batch_rows=batch_rows, scheduler=scheduler, n_workers=workers,
            drop_nonfinite=drop_nonfinite, gammaness_column=gammaness_column,
        )  # fmt: skip
    dt = max(time.perf_counter() - t0, 1e-9)
    _echo(f"scored {n} events in {dt:.1f} s ({n / dt:,.{0 if n / dt >= 100 else 1}f} events/s); wrote {out}", quiet)


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
    bin_column: Optional[str] = typer.Option(
        None, "--bin-column", help="Also give metrics per bin of this column (e.g. true_energy; fSize is a proxy)."
    ),
    bin_edges: Optional[str] = typer.Option(None, "--bin-edges", help="Comma-separated bin edges (default: log bins)."),
    per_decade: int = typer.Option(5, "--per-decade", min=1, help="Log bins per decade when --bin-edges is not given."),
    seed: str = SEED,
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Compute ROC AUC, AP, efficiencies, Q and Li & Ma significance of a scores table.

    Warns when the scores come from the model's own training rows (in-sample, optimistic).
    """
    _setup(seed, quiet, threads)
    _need_file(scores, "--scores")
    refuse_same_file(out, {"--scores": scores})
    from rareflow.atomic import write_text_atomic
    from rareflow.evaluation.evaluate import evaluate_file
    from rareflow.evaluation.summary import dumps

    edges = None
    if bin_edges is not None and bin_column is None:
        raise RareflowError("--bin-edges needs --bin-column (the column the edges bin)")
    if bin_edges is not None:
        try:
            edges = [float(e) for e in bin_edges.split(",") if e.strip()]
        except ValueError:
            raise RareflowError(f"--bin-edges {short_repr(bin_edges)}: expected numbers separated by commas, e.g. 0.1,1,10") from None
    binning = None if bin_column is None else {"column": bin_column, "edges": edges, "per_decade": per_decade}
    doc = evaluate_file(
        scores, rare_label, bulk_label, significance_events, alpha, drop_nonfinite=drop_nonfinite, binning=binning
    )
    write_text_atomic(out, dumps(doc))
    for m, v in doc["methods"].items():
        _echo(f"{m}: AUC {v['auc']:.4f}, AP {v['ap']:.4f}", quiet)


@app.command()
def compare(
    config: Optional[Path] = typer.Option(None, "--config", help="Experiment YAML (default: simulated rare scenario)."),
    out: Path = typer.Option(..., "--out", help="Output folder: metrics.json, scores.parquet, *.png, report.html."),
    methods: Optional[str] = typer.Option(None, "--methods", help="Override the config's methods, e.g. gbdt,flow."),
    scheduler: Optional[str] = typer.Option(
        None, "--scheduler", help="Run the sweep on Dask: 'local' (a cluster sized to this machine) or a scheduler address."
    ),
    seed: Optional[list[str]] = typer.Option(
        None, "--seed", help="Seed(s) of the splits and detectors, e.g. --seed 0,1,2 or repeated (default: the config's seeds)."
    ),
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Run every configured method on identical splits and write metrics, plots and an HTML report."""
    from rareflow.seeding import parse_seeds

    seeds = parse_seeds(seed) if seed else None
    _setup(str(seeds[0]) if seeds else "0", quiet, threads)
    _need_file(config, "--config")
    from rareflow.config import load_config, with_overrides
    from rareflow.evaluation.compare import compare as run_compare

    cfg = load_config(config)
    if seeds is not None or methods is not None:
        names = None if methods is None else [m.strip() for m in methods.split(",") if m.strip()]
        cfg = with_overrides(cfg, seeds=seeds, methods=names)
    paths = run_compare(cfg, out, scheduler=scheduler, inputs={"--config": config})
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
    support: bool = typer.Option(
        True, "--support/--no-support",
        help="Reject and redraw points outside the training data's per-feature [min, max] (negative widths, ...).",
    ),
    seed: str = SEED,
    quiet: bool = QUIET,
    threads: int = THREADS,
) -> None:
    """Generate synthetic outliers (or inliers) with a flow: latent extremes, Gumbel, archetypes, null space."""
    seed_value = _setup(seed, quiet, threads)
    _need_file(model, "--model")
    _need_file(data, "--data")
    refuse_same_file(out, {"--model": model, "--data": data})
    from rareflow.api import outliers_command

    value: float | str | None = sigma
    if sigma is not None and ":" not in sigma:
        try:
            value = float(sigma)
        except ValueError:
            raise RareflowError(f"--sigma {short_repr(sigma)}: expected a number or a range lo:hi") from None
    summary = outliers_command(model, n, method, value, seed_value, out, data=data, k=k, support=support)
    where = (f"; {summary['outside_support_rejected']} draws outside the support ({summary['support']}) were rejected and redrawn"
             if summary.get("support") else "; not checked against the training data's support (--no-support)")  # fmt: skip
    _echo(f"wrote {summary.get('rows', n)} {method} points to {out}{where}", quiet)


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
