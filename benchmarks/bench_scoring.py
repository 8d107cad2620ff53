"""Streaming scoring in bounded memory: `rareflow score` on a large Parquet table with a trained flow.

Writes an N-row, 10-feature Parquet table (row groups of 262,144 rows, generated chunk by chunk
so this script itself stays small), trains a small `flow` on 20,000 rows, then runs
`rareflow score` as a separate process and reads its peak resident memory (ru_maxrss of the
child) and wall time. Prints a Markdown row; with --results, writes the section
"## Streaming scoring (issues 4, 8)" of benchmarks/RESULTS.md.

Usage: python benchmarks/bench_scoring.py [--rows 10000000] [--batch-rows 262144] [--results]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

COLUMNS = [f"f{i}" for i in range(10)]


def write_table(path: Path, rows: int, chunk: int = 262_144, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    schema = pa.schema([(c, pa.float32()) for c in COLUMNS] + [("label", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            x = rng.standard_normal((n, len(COLUMNS)), dtype=np.float32)
            x[:, 0] = np.exp(x[:, 0])  # a skewed positive column, like a size
            labels = np.where(rng.random(n) < 0.5, "gamma", "hadron")
            arrays = [pa.array(x[:, j]) for j in range(len(COLUMNS))] + [pa.array(labels)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=chunk)



def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--batch-rows", type=int, default=262_144)
    ap.add_argument("--results", action="store_true", help="write the section into benchmarks/RESULTS.md")
    args = ap.parse_args()
    rareflow = [sys.executable, "-m", "rareflow"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big, small, model, out = tmp / "big.parquet", tmp / "train.parquet", tmp / "flow.rfm", tmp / "scores.parquet"
        t0 = time.perf_counter()
        write_table(big, args.rows)
        write_table(small, 20_000, seed=1)
        t_write = time.perf_counter() - t0
        subprocess.run(
            [*rareflow, "train", "flow", "--data", str(small), "--out", str(model), "-q",
             "--param", "epochs=5", "--param", "transforms=4", "--param", "hidden=[64,64]"],
            check=True,
        )  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [*rareflow, "score", "--model", str(model), "--data", str(big), "--out", str(out), "-q",
             "--batch-rows", str(args.batch_rows)],
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)  # resource usage of this one child
        wall = time.perf_counter() - t0
        peak_mib = usage.ru_maxrss / 1024  # KiB -> MiB (Linux)
        n_out = pq.ParquetFile(out).metadata.num_rows
        assert os.waitstatus_to_exitcode(status) == 0 and n_out == args.rows
        in_mib, out_mib = big.stat().st_size / 2**20, out.stat().st_size / 2**20
    row = (
        f"| {args.rows:,} | {args.batch_rows:,} | {in_mib:,.0f} MiB | {out_mib:,.0f} MiB | {wall:.1f} s | "
        f"{args.rows / wall:,.0f} | {peak_mib:,.0f} MiB |"
    )
    head = "| rows | batch rows | input | output | wall | events/s (incl. I/O) | peak RSS |\n|---|---:|---:|---:|---:|---:|---:|"
    print(head)
    print(row)
    if args.results:
        section = (
            "## Streaming scoring (issues 4, 8)\n\n"
            f"Machine: {os.cpu_count()} cores, {cpu_model()}; Python {platform.python_version()}, numpy {np.__version__}.\n"
            f"Command: `python benchmarks/bench_scoring.py --rows {args.rows} --batch-rows {args.batch_rows} --results` "
            "(flow: RealNVP, 4 couplings of (64, 64), 10 features; `rareflow score` in its own process; "
            "peak RSS = ru_maxrss of the `rareflow score` process from wait4; "
            f"table written in {t_write:.0f} s, not included).\n\n{head}\n{row}\n"
        )
        path = Path(__file__).with_name("RESULTS.md")
        text = path.read_text() if path.exists() else "# Benchmark results\n"
        marker = "## Streaming scoring (issues 4, 8)"
        if marker in text:
            start = text.index(marker)
            nxt = text.find("\n## ", start + 1)
            text = text[:start] + section + (text[nxt + 1 :] if nxt != -1 else "")
        else:
            text = text.rstrip() + "\n\n" + section
        path.write_text(text)


if __name__ == "__main__":
    main()
