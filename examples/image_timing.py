"""Training time of the image methods on 20k simulated images, a few epochs (examples/IMAGES.md).

    OMP_NUM_THREADS=1 python examples/image_timing.py --n-images 20000 --epochs 3 --threads 1

Simulates ``--n-images`` events (gammas and protons; every image, valid or not), maps them to the
grid and fits ``conv-autoencoder`` and ``fastflow`` (backbone and flow ``--epochs`` each) with
``--threads`` torch threads; prints seconds per method and per epoch as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rareflow.iact.images import GridMapping, log1p_charge
from rareflow.iact.simulate import simulate_images
from rareflow.detectors import get_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-images", type=int, default=20000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    images, _, camera = simulate_images(args.n_images, 0.5, 0, muon_fraction=0.0)
    grids = GridMapping.from_camera(camera).to_grid(log1p_charge(images))
    out = {"n_images": args.n_images, "grid": list(grids.shape[1:]), "simulate_seconds": time.perf_counter() - t0}
    for method, extra in (("conv-autoencoder", {}), ("fastflow", {"backbone_epochs": args.epochs})):
        t0 = time.perf_counter()
        det = get_detector(method, epochs=args.epochs, patience=args.epochs, progress=False, n_threads=args.threads, **extra)
        det.fit(grids)
        out[method] = {"fit_seconds": round(time.perf_counter() - t0, 1), "epochs_run": det.history_["epochs_run"]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
