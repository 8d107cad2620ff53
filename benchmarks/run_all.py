"""Run every benchmark in one go (`make bench`); each script writes its own section of RESULTS.md.

Usage: python benchmarks/run_all.py [--quick]
  --quick  smaller sizes (minutes instead of ~10 min): for checking the scripts, not for RESULTS.md figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    runs = [
        ["bench_hillas.py"] + (["--n-events", "2000", "--n-sim", "10000", "--no-write"] if quick else []),
        ["bench_flows.py"] + (["--steps", "20", "--repeats", "1", "--no-write"] if quick else ["--repeats", "5"]),
        ["bench_scoring.py"] + (["--rows", "200000"] if quick else ["--rows", "10000000", "--results"]),
    ]
    for script, *args in runs:
        print(f"== {script} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *args], check=True)


if __name__ == "__main__":
    main()
