"""Scaling curves: wall time and peak memory vs number of events, 10^3 .. 10^7.

Two pipelines, each run as a separate process per size (peak RSS = ``ru_maxrss`` of that process,
from ``wait4``; wall = the command's wall time):

* ``rareflow score`` with a trained ``flow`` (RealNVP, 4 couplings of (64, 64), 10 features, as
  bench_scoring.py) on an N-row Parquet table (row groups of 262,144 rows; writing the table is not
  timed), sizes 10^3 .. ``--max-rows`` (default 10^7);
* ``rareflow simulate`` (camera images -> cleaning -> Hillas parameters -> Parquet), sizes
  10^3 .. ``--max-sim`` (default 10^6: ~100 s on 2 cores; 10^7 would take ~20 min).

Writes ``benchmarks/scaling.png`` (matplotlib, Agg: time and memory vs events, log-log) and the
section "## Scaling (issue 8)" of RESULTS.md. The default run takes ~5-10 min on 2 busy cores.

Usage: python benchmarks/bench_scaling.py [--max-rows 10000000] [--max-sim 1000000] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import command_line, machine_line, rareflow_cmd, run_measured, write_section
from bench_scoring import write_table

SECTION = "## Scaling (issue 8)"
PNG = Path(__file__).resolve().parent / "scaling.png"


def sizes(top: int) -> list[int]:
    out, n = [], 1000
    while n <= top:
        out.append(n)
        n *= 10
    if out and out[-1] != top and top > 1000:
        out.append(top)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-rows", type=int, default=10_000_000, help="largest table scored")
    ap.add_argument("--max-sim", type=int, default=1_000_000, help="largest simulation + extraction")
    ap.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md / scaling.png")
    args = ap.parse_args()
    load0 = f"{os.getloadavg()[0]:.2f}"
    rf = rareflow_cmd()
    results: dict[str, list[tuple[int, float, float]]] = {"score": [], "simulate": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, train = tmp / "flow.rfm", tmp / "train.parquet"
        write_table(train, 20_000, seed=1)
        run_measured([*rf, "train", "flow", "--data", str(train), "--out", str(model), "-q",
                      "--param", "epochs=5", "--param", "transforms=4", "--param", "hidden=[64,64]"])  # fmt: skip
        for n in sizes(args.max_rows):
            data, out = tmp / "data.parquet", tmp / "scores.parquet"
            write_table(data, n)
            wall, rss, _ = run_measured([*rf, "score", "--model", str(model), "--data", str(data), "--out", str(out), "-q"])
            results["score"].append((n, wall, rss))
            print(f"score {n:>10,}: {wall:7.1f} s, {rss:6.0f} MiB", file=sys.stderr)
            data.unlink()
            out.unlink()
        for n in sizes(args.max_sim):
            out = tmp / "sim.parquet"
            wall, rss, _ = run_measured([*rf, "simulate", "--n-events", str(n), "--out", str(out), "--seed", "0", "-q"])
            results["simulate"].append((n, wall, rss))
            print(f"simulate {n:>10,}: {wall:7.1f} s, {rss:6.0f} MiB", file=sys.stderr)
            out.unlink()
    load1 = f"{os.getloadavg()[0]:.2f}"

    lines = ["| pipeline | events | wall | events/s | peak RSS |", "|---|---:|---:|---:|---:|"]
    for name, label in (("score", "`rareflow score` (flow)"), ("simulate", "`rareflow simulate` (images -> Hillas)")):
        for n, wall, rss in results[name]:
            lines.append(f"| {label} | {n:,} | {wall:.1f} s | {n / wall:,.0f} | {rss:,.0f} MiB |")
    table = "\n".join(lines)
    summary = []
    for name, what in (("score", "`rareflow score` streams 262,144-row chunks"), ("simulate", "`rareflow simulate` parametrises 8,192-event chunks and keeps only the parameter table")):
        pts = results[name]
        if len(pts) >= 2:
            (n0, _, m0), (n1, w1, m1) = pts[0], pts[-1]
            summary.append(
                f"{what}: from {n0:,} to {n1:,} events ({n1 // n0:,}x) its peak RSS goes from {m0:,.0f} to {m1:,.0f} MiB "
                f"({m1 / m0:.1f}x); at {n1:,} events it runs at {n1 / w1:,.0f} events/s."
            )
    summary = " ".join(summary)
    if not args.no_write:
        plot(results)
    body = f"""
Command: `{command_line()}`

{machine_line("torch", "pyarrow", "numpy", load_before=load0)} Load average (1 min) at the end: {load1}.

Each row is one process (`python -m rareflow ...`): wall time of the command including its start-up
(imports, model loading: the flat part of the curves at small sizes), peak RSS = `ru_maxrss` of that
process. {summary}

{table}

![scaling curves](scaling.png)
"""
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


def plot(results: dict[str, list[tuple[int, float, float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    labels = {"score": "rareflow score (flow, streamed)", "simulate": "rareflow simulate (images -> Hillas)"}
    for name, pts in results.items():
        if not pts:
            continue
        n = [p[0] for p in pts]
        ax_t.plot(n, [p[1] for p in pts], "o-", label=labels[name])
        ax_m.plot(n, [p[2] for p in pts], "o-", label=labels[name])
    for ax, ylabel in ((ax_t, "wall time [s]"), (ax_m, "peak RSS [MiB]")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("events")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    ax_m.axhline(2048, color="grey", ls="--", lw=1)
    ax_m.text(1e3, 2048 * 1.08, "2 GiB", color="grey", fontsize=8)
    fig.suptitle(f"rareflow scaling ({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})")
    fig.savefig(PNG, dpi=110)
    plt.close(fig)
    print(f"wrote {PNG}", file=sys.stderr)


if __name__ == "__main__":
    main()
