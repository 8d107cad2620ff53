"""End-to-end `rareflow compare` wall time: in-process vs `--scheduler local` (Dask LocalCluster).

Runs, as separate processes from the repository root, for each experiment

* ``rareflow compare --out DIR --seed 0 -q`` (the default experiment: simulated events, rare
  scenario, the default methods and seeds), and
* ``rareflow compare --config examples/magic_rare.yaml ...`` when ``../shared/data/magic`` exists,

once in-process and once with ``--scheduler local`` (a cluster sized to the machine, its start-up
included), interleaved, ``--repeats`` times (best kept). It checks that both wrote the same
metrics (timing fields excepted) and reports the wall times and their ratio. Writes/replaces the
section "## End-to-end compare (issue 8)" of RESULTS.md.

Usage: python benchmarks/bench_compare.py [--repeats 2] [--no-magic] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from _common import REPO, command_line, machine_line, rareflow_cmd, run_measured, write_section

SECTION = "## End-to-end compare (issue 8)"
TIMING = {"fit_seconds", "score_events_per_second", "fit_seconds_std", "score_events_per_second_std"}


def strip_timing(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: strip_timing(v) for k, v in obj.items() if k not in TIMING and "seconds" not in k}
    if isinstance(obj, list):
        return [strip_timing(v) for v in obj]
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best wall time is kept")
    ap.add_argument("--no-magic", action="store_true", help="skip examples/magic_rare.yaml")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = ap.parse_args()
    load0 = f"{os.getloadavg()[0]:.2f}"
    experiments: list[tuple[str, list[str]]] = [("default (simulated, no --config)", [])]
    magic = REPO.parent / "shared" / "data" / "magic" / "magic04.data"
    notes = []
    if args.no_magic:
        notes.append("examples/magic_rare.yaml: skipped (--no-magic).")
    elif magic.exists():
        experiments.append(("examples/magic_rare.yaml (UCI MAGIC)", ["--config", str(REPO / "examples" / "magic_rare.yaml")]))
    else:
        notes.append(f"examples/magic_rare.yaml: skipped, {magic} not found.")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in experiments:
            best = {"in-process": float("inf"), "dask": float("inf")}
            metrics = {}
            for rep in range(args.repeats):
                for mode in ("in-process", "dask"):
                    out = Path(tmp) / f"{mode}-{rep}"
                    cmd = [*rareflow_cmd(), "compare", *extra, "--out", str(out), "--seed", "0", "-q"]
                    if mode == "dask":
                        cmd += ["--scheduler", "local"]
                    wall, _, _ = run_measured(cmd)
                    best[mode] = min(best[mode], wall)
                    metrics[mode] = json.loads((out / "metrics.json").read_text())
                    print(f"{name} {mode} repeat {rep + 1}: {wall:.1f} s", file=sys.stderr)
            same = strip_timing(metrics["in-process"]) == strip_timing(metrics["dask"])
            m = metrics["in-process"]
            n_methods, n_seeds = len(m.get("methods", {})), len(m.get("seeds", []))
            if best["in-process"] / best["dask"] > (os.cpu_count() or 1):
                notes.append(
                    f"{name}: a speed-up above the core count means the in-process run lost more to the other jobs "
                    "on this machine: its torch/BLAS pools use all cores and stall when another job takes one, "
                    "while the Dask workers are single-threaded."
                )
            rows.append(
                f"| {name} | {n_methods} x {n_seeds} | {best['in-process']:.1f} s | {best['dask']:.1f} s | "
                f"{best['in-process'] / best['dask']:.2f}x | {'yes' if same else '**no**'} |"
            )
    table = "\n".join(
        [
            "| experiment | methods x seeds | in-process | `--scheduler local` | speed-up | same metrics |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
        ]
    )
    body = f"""
Command: `{command_line()}`

{machine_line("torch", "scikit-learn", "dask", "distributed", load_before=load0)}

Wall time of the whole command (data, splits, fits, scores, metrics, plots, report), best of
{args.repeats} interleaved runs; `--scheduler local` includes starting the LocalCluster
({os.cpu_count()} single-threaded worker processes) and shipping the data set to it. "Same metrics":
metrics.json of both runs equal except the timing fields.

{table}
{chr(10).join(notes)}
"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
