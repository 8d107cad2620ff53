"""Benchmark: batch cleaning + Hillas (rareflow) vs a per-event ctapipe loop, and simulation speed.

Usage (from the repository root, with the IACT extra installed for the ctapipe comparison)::

    python benchmarks/bench_hillas.py [--n-events 20000] [--n-sim 100000] [--cores 2] [--no-write]

For each camera (a 960-pixel hexagonal camera of 0.16 deg pixels, like H.E.S.S.-I, and the default
TAIGA-IACT-like one) it simulates ``--n-events`` images that keep >= 3 pixels after cleaning
(analysis-level events; empty images would flatter the ctapipe loop, which skips Hillas for them),
then times on the *same* images

* ctapipe: ``tailcuts_clean`` + ``hillas_parameters`` per event, with a ctapipe ``CameraGeometry``
  built from the same pixel positions;
* rareflow: :func:`rareflow.iact.hillas.extract_parameters` on the whole batch (cleaning, Hillas,
  leakage, islands, MAGIC parameters — more work than the ctapipe loop),

checks that both give the same numbers, and prints events/s and the ratio. Finally it times the
simulation + extraction of ``--n-sim`` events. The results are written to the section
"## Hillas extraction (issue 3)" of ``benchmarks/RESULTS.md`` (other sections are kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from rareflow.atomic import write_text_atomic
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.hillas import extract_parameters
from rareflow.iact.simulate import SimulationConfig, simulate_events, simulate_images
from _common import cpu_model  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

SECTION = "## Hillas extraction (issue 3)"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"



def ctapipe_loop(images: np.ndarray, cam: CameraGeometry, cfg: SimulationConfig) -> tuple[float, np.ndarray]:
    """Per-event ctapipe cleaning + Hillas; returns (seconds, hillas length per event or NaN)."""
    import astropy.units as u
    from ctapipe.image import hillas_parameters, tailcuts_clean

    geom = cam.to_ctapipe()
    geom.neighbor_matrix_sparse  # build the lazy neighbour matrix outside the timing  # noqa: B018
    lengths = np.full(len(images), np.nan)
    start = time.perf_counter()
    for k, image in enumerate(images):
        mask = tailcuts_clean(geom, image, picture_thresh=cfg.picture_thresh, boundary_thresh=cfg.boundary_thresh,
                              min_number_picture_neighbors=cfg.min_number_picture_neighbors)  # fmt: skip
        if mask.sum() >= 3:
            lengths[k] = hillas_parameters(geom[mask], image[mask]).length.to_value(u.deg)
    return time.perf_counter() - start, lengths


def rareflow_batch(
    images: np.ndarray, cam: CameraGeometry, cfg: SimulationConfig, repeats: int = 3
) -> tuple[float, np.ndarray]:
    """Best of ``repeats`` wall times of the batch extraction; returns (seconds, lengths)."""
    best, df = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        df = extract_parameters(images, cam, picture_thresh=cfg.picture_thresh, boundary_thresh=cfg.boundary_thresh,
                                min_number_picture_neighbors=cfg.min_number_picture_neighbors)  # fmt: skip
        best = min(best, time.perf_counter() - start)
    assert df is not None
    return best, df["hillas_length"].to_numpy()


def bench_camera(cam: CameraGeometry, n_events: int, seed: int, with_ctapipe: bool) -> dict[str, float | str]:
    cfg = SimulationConfig()
    images = _valid_images(cam, cfg, n_events, seed)
    t_rf, len_rf = rareflow_batch(images, cam, cfg)
    row: dict[str, float | str] = {"camera": f"{cam.name} ({cam.n_pixels} px, {cam.pixel_spacing_deg:.2f} deg)",
                                   "n": n_events, "rareflow_eps": n_events / t_rf}  # fmt: skip
    if with_ctapipe:
        t_ct, len_ct = ctapipe_loop(images, cam, cfg)
        same = np.array_equal(np.isnan(len_rf), np.isnan(len_ct))
        ok = np.isfinite(len_ct)
        rel = float(np.max(np.abs(len_rf[ok] - len_ct[ok]) / len_ct[ok])) if ok.any() else 0.0
        row.update(ctapipe_eps=n_events / t_ct, ratio=t_ct / t_rf, same_valid=str(same), max_rel_diff=rel)
    return row


def _valid_images(cam: CameraGeometry, cfg: SimulationConfig, n_events: int, seed: int) -> np.ndarray:
    """``n_events`` simulated images with >= 3 pixels after cleaning (analysis-level events)."""
    parts, have, k = [], 0, 0
    while have < n_events:
        images, _, _ = simulate_images(2 * n_events, 0.5, seed + k, camera=cam)
        params = extract_parameters(
            images, cam, picture_thresh=cfg.picture_thresh, boundary_thresh=cfg.boundary_thresh,
            min_number_picture_neighbors=cfg.min_number_picture_neighbors,
        )  # fmt: skip
        valid = params["is_valid"].to_numpy()
        parts.append(images[valid])
        have += int(valid.sum())
        k += 1
    return np.concatenate(parts)[:n_events]


def bench_simulation(n_sim: int, seed: int) -> float:
    start = time.perf_counter()
    simulate_events(n_sim, 0.5, seed=seed)
    return time.perf_counter() - start


def write_results(text: str) -> None:
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    new = pattern.sub(lambda _: text, old) if pattern.search(old) else old.rstrip("\n") + "\n\n" + text
    write_text_atomic(RESULTS, new)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-events", type=int, default=20000)
    ap.add_argument("--n-sim", type=int, default=100000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cores", type=int, default=2, help="pin the process to this many cores (0 = all)")
    ap.add_argument("--no-write", action="store_true", help="print only, do not update RESULTS.md")
    args = ap.parse_args(argv)
    if args.cores and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)
    try:
        import ctapipe

        ctapipe_version = ctapipe.__version__
    except ImportError:
        ctapipe_version = None
    cams = [CameraGeometry.hexagonal(960, 0.16, exact_count=True, name="hex-960"), CameraGeometry.hexagonal()]
    rows = []
    for cam in cams:
        row = bench_camera(cam, args.n_events, args.seed, ctapipe_version is not None)
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    t_sim = bench_simulation(args.n_sim, args.seed)
    print(f"simulate_events({args.n_sim}) incl. cleaning + parameters: {t_sim:.1f} s", flush=True)
    cmd = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + (argv or sys.argv[1:]))
    lines = [
        SECTION,
        "",
        f"Command: `{cmd}` (run from the repository root).",
        "",
        f"Machine: {len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()} cores used "
        f"(nproc {os.cpu_count()}), CPU {cpu_model()}, Python {platform.python_version()}, numpy {np.__version__}, "
        f"ctapipe {ctapipe_version or 'not installed'}; load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        "Same simulated images for both paths (gamma/proton/muon mix, only images with >= 3 pixels after",
        "cleaning, i.e. analysis-level events); tail cuts 7 / 3.5 p.e. ctapipe: `tailcuts_clean` +",
        "`hillas_parameters` per event. rareflow: `extract_parameters` on the whole batch (cleaning, Hillas,",
        "leakage, islands, conc/asym/m3: more output than the ctapipe loop; best of 3 runs).",
        "",
        "| camera | events | ctapipe loop [events/s] | rareflow batch [events/s] | ratio | same flags "
        "| max rel. diff (length) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ct = f"{r['ctapipe_eps']:,.0f}" if "ctapipe_eps" in r else "n/a"
        ratio = f"{r['ratio']:.1f}x" if "ratio" in r else "n/a"
        lines.append(f"| {r['camera']} | {r['n']:,} | {ct} | {r['rareflow_eps']:,.0f} | {ratio} | "
                     f"{r.get('same_valid', 'n/a')} | {r.get('max_rel_diff', float('nan')):.1e} |")  # fmt: skip
    lines += ["", f"Simulation + cleaning + parameters of {args.n_sim:,} events (default camera): {t_sim:.1f} s.", ""]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        write_results(text)
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
