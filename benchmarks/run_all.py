"""Run every benchmark in one go (`make bench`); each script writes its own section of RESULTS.md.

Usage: python benchmarks/run_all.py [--quick] [--only NAME[,NAME...]]
  --quick  small sizes, one repeat, RESULTS.md untouched (~7 min on a busy 2-core machine): for checking that the scripts run,
           not for figures.
  --only   run a subset, e.g. --only flows,autoencoder (names: hillas, flows, scoring, autoencoder,
           compare, scaling, fit, ensemble, images).
  --device cuda  passed on to the scripts that take it (flows, autoencoder, fit, ensemble, images): GPU figures.

The full run takes ~30-40 min on 2 cores (the 10^7-row scoring runs dominate). Peers that are
not installed (nflows, normflows, pyod, ctapipe) are skipped by their script with a note; they are
not rareflow dependencies: `pip install nflows normflows pyod` to measure them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

FULL = {
    "hillas": ["bench_hillas.py"],
    # one torch thread: on a shared 2-core machine, 2-thread OpenMP barriers stall whenever another
    # job takes a core (10-20x slowdowns seen); all implementations and the sgemm bound use the same threads
    "flows": ["bench_flows.py", "--repeats", "3", "--threads", "1", "--profile"],
    "scoring": ["bench_scoring.py", "--rows", "10000000", "--results"],
    "autoencoder": ["bench_autoencoder.py", "--repeats", "3", "--threads", "1"],
    "compare": ["bench_compare.py", "--repeats", "2"],
    "scaling": ["bench_scaling.py"],
    # issue 18: fit time of every method on MAGIC's training split (1 and 2 threads, ratios vs gbdt)
    # and the stacked flow ensemble against sequential training and sequential zuko
    "fit": ["bench_fit.py", "--threads", "1,2", "--results"],
    "ensemble": ["bench_ensemble.py", "--epochs", "5", "--threads", "1", "--results"],
    # issue 19: 10^5 grid images written to disk and trained on from the file; images/s per image method
    "images": ["bench_images.py", "--events", "240000", "--epochs", "1", "--threads", "1", "--results"],
}
QUICK = {
    "hillas": ["bench_hillas.py", "--n-events", "2000", "--n-sim", "10000", "--no-write"],
    "flows": ["bench_flows.py", "--steps", "20", "--repeats", "1", "--threads", "1", "--no-write"],
    "scoring": ["bench_scoring.py", "--rows", "200000"],
    "autoencoder": ["bench_autoencoder.py", "--n-train", "4096", "--n-test", "4096", "--epochs", "1", "--repeats", "1", "--threads", "1", "--no-write"],
    "compare": ["bench_compare.py", "--repeats", "1", "--no-magic", "--no-write"],
    "scaling": ["bench_scaling.py", "--max-rows", "100000", "--max-sim", "10000", "--no-write"],
    "fit": ["bench_fit.py", "--threads", "1", "--epochs", "1", "--rows", "2000"],
    "ensemble": ["bench_ensemble.py", "--epochs", "1", "--rows", "1000"],
    "images": ["bench_images.py", "--events", "2000"],
}

DEVICE_AWARE = ("flows", "autoencoder", "fit", "ensemble", "images")


def main() -> None:
    argv = sys.argv[1:]
    runs = QUICK if "--quick" in argv else FULL
    if "--only" in argv:
        names = argv[argv.index("--only") + 1].split(",")
        unknown = [n for n in names if n not in runs]
        if unknown:
            sys.exit(f"unknown benchmark(s) {unknown}; choose from {', '.join(runs)}")
        runs = {n: runs[n] for n in names}
    device = argv[argv.index("--device") + 1] if "--device" in argv else None
    for name, (script, *args) in runs.items():
        if device and name in DEVICE_AWARE:
            args = [*args, "--device", device]
        print(f"== {name}: python benchmarks/{script} {' '.join(args)}", flush=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, str(HERE / script), *args], check=True, cwd=HERE.parent)
        print(f"== {name}: {time.perf_counter() - t:.0f} s", flush=True)


if __name__ == "__main__":
    main()
