"""Images at scale (issue 19): 10^5 simulated grid images written to disk and trained on from the
file in bounded memory; training and scoring images/s of every image method.

1. ``simulate``: :func:`rareflow.iact.grid_files.simulate_grids` throws ``--events`` gamma/proton
   showers chunk by chunk and writes the grids of the valid ones to one ``.npy`` (one chunk in memory).
2. Each image method is fitted in a fresh process on the memory-mapped file (the training loop
   streams it: :class:`rareflow.training.StreamedRows`), ``--epochs`` epochs (fastflow and
   image-flow-classifier: also ``--epochs`` backbone epochs), then scores the whole file. The
   two-class methods fit on both classes (cnn-classifier, image-flow-classifier); the one-class
   ones (conv-autoencoder, fastflow) fit without labels on every image, which keeps them on the
   file (a one-class fit *with* labels copies its class's rows into memory: Detector.fit selects them).
3. ``cnn-classifier (in memory)``: the same fit with the grids loaded into memory first, for the
   memory and throughput the streaming saves or costs.

Columns: fit wall seconds (with validation passes and the scoring of the training images for the
threshold); training images/s = training images x epochs / the loop's own seconds (the history's
``samples_per_second``); scoring images/s of ``decision_function`` on every image; the worker's
peak private memory during fit + scoring (RssAnon, sampled every 20 ms: what the process allocated,
torch and its libraries included) and its peak RSS (``ru_maxrss``, which also counts the file pages
read through the memory map; the kernel can drop those at will).

Usage: ``python benchmarks/bench_images.py [--events 220000] [--epochs 1] [--threads 1] [--results]``
(smoke: ``--events 3000``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _common import REPO, load, publish

SECTION = "## Images at scale (issue 19)"
METHODS = ("cnn-classifier", "image-flow-classifier", "conv-autoencoder", "fastflow", "cnn-classifier (in memory)")
TWO_CLASS = ("cnn-classifier", "image-flow-classifier")


class AnonPeak:
    """Peak private (anonymous) resident memory of this process, sampled from /proc every 20 ms: the
    memory the process allocated itself, without the file pages a memory map brings in (which
    ``ru_maxrss`` counts and the kernel can drop at will)."""

    def __enter__(self) -> "AnonPeak":
        self.peak, self._stop = 0.0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.02):
            self.sample()

    def sample(self) -> None:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def simulate(folder: Path, events: int) -> dict[str, float]:
    from rareflow.iact.grid_files import simulate_grids

    t0 = time.perf_counter()
    with AnonPeak() as anon:
        table = simulate_grids(folder / "grids.npy", events, seed=0)
    seconds = time.perf_counter() - t0
    np.save(folder / "labels.npy", (table["label"] == "gamma").to_numpy().astype(np.int64))
    return {"seconds": seconds, "n": len(table), "events": events, "mb": (folder / "grids.npy").stat().st_size / 2**20,
            "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "anon": anon.peak}  # fmt: skip


def worker(method: str, folder: Path, epochs: int, threads: int, device: str) -> dict[str, float]:
    from rareflow.detectors import get_detector
    from rareflow.iact.grid_files import open_grids

    grids, y = open_grids(folder / "grids.npy"), np.load(folder / "labels.npy")
    name = method.replace(" (in memory)", "")
    if name != method:
        grids = np.array(grids)
    params: dict = {"training": {"epochs": epochs, "progress": False, "n_threads": threads, "device": device}}
    if name in ("fastflow", "image-flow-classifier"):
        params["backbone_epochs"] = epochs
    det = get_detector(name, random_state=0, **params)
    with AnonPeak() as anon:
        t0 = time.perf_counter()
        det.fit(grids, y if name in TWO_CLASS else None)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        s = det.decision_function(grids)
        score_s = time.perf_counter() - t0
    assert np.isfinite(s).all()
    return {"fit": fit_s, "train_ips": float(det.history_.get("samples_per_second", float("nan"))),
            "score_ips": len(grids) / score_s, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "anon": anon.peak}  # fmt: skip


def child(args: list[str], threads: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO / "src")}  # fmt: skip
    out = subprocess.run([sys.executable, __file__, *args], env=env, cwd=REPO / "benchmarks", capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{args} failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=220_000, help="showers thrown (about half are valid)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--results", action="store_true", help="write the section of benchmarks/RESULTS.md")
    ap.add_argument("--worker", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, folder = args.worker
        res = simulate(Path(folder), args.events) if kind == "simulate" else worker(kind, Path(folder), args.epochs, args.threads, args.device)
        print(json.dumps(res))
        return
    before = load()
    with tempfile.TemporaryDirectory(prefix="rareflow-bench-images-") as tmp:
        sim = child(["--worker", "simulate", tmp, "--events", str(args.events)], args.threads)
        print(f"simulate: {sim}", file=sys.stderr, flush=True)
        rows = {}
        for m in args.methods.split(","):
            rows[m] = child(["--worker", m, tmp, "--epochs", str(args.epochs), "--threads", str(args.threads),
                             "--device", args.device], args.threads)  # fmt: skip
            print(f"{m}: {rows[m]}", file=sys.stderr, flush=True)
    lines = [
        f"{sim['n']:,} valid grid images (29 x 29, float32, {sim['mb']:.0f} MiB on disk) from {sim['events']:,} thrown "
        f"gamma/proton showers, written by `simulate_grids` in {sim['seconds']:.1f} s "
        f"({sim['events'] / sim['seconds']:,.0f} showers/s; peak private memory {sim['anon']:.0f} MiB, peak RSS {sim['rss']:.0f} MiB); "
        f"{args.epochs} epoch(s) per method, {args.threads} thread(s), device {args.device}.",
        "",
        "| method | input | fit s | training images/s | scoring images/s | peak private MiB | peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m, r in rows.items():
        where = "in memory" if m.endswith("(in memory)") else "memory-mapped file (streamed)"
        lines.append(f"| {m.replace(' (in memory)', '')} | {where} | {r['fit']:.1f} | {r['train_ips']:,.0f} | "
                     f"{r['score_ips']:,.0f} | {r['anon']:.0f} | {r['rss']:.0f} |")  # fmt: skip
    publish(SECTION, lines, ("torch",), load_before=before, write=args.results)


if __name__ == "__main__":
    main()
