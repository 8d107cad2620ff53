"""Do anomaly maps localise injected artefacts? (examples/IMAGES.md, "Localisation")

Train an image method on simulated gamma images, inject artefacts into held-out gamma images and
count how often the anomaly map's maximum pixel lies on the artefact (strictly, or on/touching it):

* hot-pixel cluster: a random pixel and its 6 neighbours get +30..100 p.e.;
* muon arc over a gamma: a simulated muon image (no NSB) added to the gamma image; arc = pixels
  with > 5 p.e. of muon light (images with >= 5 arc pixels).

    OMP_NUM_THREADS=1 python examples/image_localisation.py --n-train 2000 --out out/localisation

Writes ``localisation.json`` and ``localisation_examples.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rareflow.iact.images import GridMapping, log1p_charge
from rareflow.iact.simulate import simulate_images
from rareflow.detectors import get_detector
from rareflow.evaluation.gallery import draw_pixels


def artefacts(test: np.ndarray, camera, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{kind: (images with the artefact, artefact pixel mask)}``."""
    rng = np.random.default_rng(seed)
    neighbours = camera.neighbor_lists()
    hot, hot_mask = test.copy(), np.zeros(test.shape, dtype=bool)
    for i in range(len(hot)):
        centre = rng.integers(camera.n_pixels)
        pix = np.r_[centre, neighbours[centre]]
        hot[i, pix] += rng.uniform(30.0, 100.0)
        hot_mask[i, pix] = True
    muons, _, _ = simulate_images(len(test), 0.0, seed + 1, muon_fraction=1.0, nsb_rate=0.0)
    arc_mask = muons > 5.0
    keep = arc_mask.sum(axis=1) >= 5
    return {"hot pixel cluster": (hot, hot_mask), "muon arc over gamma": ((test + muons)[keep], arc_mask[keep])}


def rates(maps: np.ndarray, mask: np.ndarray, camera) -> dict[str, float]:
    top = maps.argmax(axis=1)
    rows = np.arange(len(maps))
    touching = mask | ((mask.astype(np.int8) @ camera.neighbors.toarray().astype(np.int8)) > 0)
    return {"n": int(len(maps)), "on": float(mask[rows, top].mean()), "on_or_touching": float(touching[rows, top].mean())}


def fastflow_params(pairs: list[str]) -> dict:
    """``["feature_stage=0", "position=false"]`` -> ``{"feature_stage": 0, "position": False}``."""
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def detector_params(method: str, args: argparse.Namespace) -> dict:
    """The detector parameters the flags give for ``method``."""
    params = {"progress": False, "random_state": args.seed}
    if args.epochs is not None or method == "fastflow":
        params["epochs"] = 10 if args.epochs is None else args.epochs
    if method == "fastflow":
        params["backbone_epochs"] = params["epochs"]
        params.update(fastflow_params(args.ff))
    if method == "conv-autoencoder":
        params["map"] = args.ae_map
        for name in ("scale", "bottleneck", "loss", "denoise"):
            if getattr(args, f"ae_{name}") is not None:
                params[name] = getattr(args, f"ae_{name}")
        if args.ae_channels is not None:
            params["channels"] = [int(c) for c in args.ae_channels.split(",")]
        if args.ae_smooth is not None:
            params["smooth"] = args.ae_smooth
        if args.ae_pull_cap is not None:
            params["pull_cap"] = None if np.isinf(args.ae_pull_cap) else args.ae_pull_cap
        if args.ae_neighbours is not None:
            params["neighbours"] = args.ae_neighbours
        if args.ae_pull_context is not None:
            params["pull_context"] = args.ae_pull_context
    return params


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs (default: conv-autoencoder its own default; fastflow 10 + 10 backbone epochs)")
    ap.add_argument("--methods", default="fastflow,conv-autoencoder",
                    help="comma-separated detectors; 'brightest' = no model, map = pixel charge (reference)")
    ap.add_argument("--ae-map", default="pull", choices=["pull", "error"], help="conv-autoencoder map")
    ap.add_argument("--ae-scale", default=None, choices=["poisson", "learned"], help="conv-autoencoder pull scale (default: the method's)")
    ap.add_argument("--ae-bottleneck", default=None, choices=["dense", "conv"], help="conv-autoencoder bottleneck (default: the method's)")
    ap.add_argument("--ae-loss", default=None, choices=["poisson", "log"], help="conv-autoencoder training loss (default: the method's)")
    ap.add_argument("--ae-denoise", type=float, default=None, help="conv-autoencoder share of training images with synthetic blobs")
    ap.add_argument("--ae-channels", default=None, help="conv-autoencoder channels, comma-separated (default: the method's)")
    ap.add_argument("--ae-smooth", type=int, default=None, help="conv-autoencoder map smoothing (cells; default: the method's)")
    ap.add_argument("--ae-pull-cap", type=float, default=None, help="conv-autoencoder pull_cap (p.e.; inf = none; default: the method's)")
    ap.add_argument("--ae-neighbours", type=float, default=None, help="conv-autoencoder neighbours weight (default: the method's)")
    ap.add_argument("--ae-pull-context", default=None, choices=["rec_max", "rec_sum", "obs_sum"],
                    help="conv-autoencoder pull_context: 2-D noise scale sigma(u_hat, neighbourhood brightness) (default: none)")
    ap.add_argument("--ff", action="append", default=[], metavar="KEY=VALUE",
                    help="fastflow parameter (repeatable; VALUE parsed as JSON, else a string), e.g. --ff feature_stage=0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("out/localisation"))
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    images, _, camera = simulate_images(args.n_train + args.n_test, 1.0, args.seed, muon_fraction=0.0)
    mapping = GridMapping.from_camera(camera)
    train, test = images[: args.n_train], images[args.n_train :]
    cases = artefacts(test, camera, args.seed + 7)
    result: dict[str, dict] = {}
    fig = Figure(figsize=(2.0 * 8, 2.1 * 2 * len(args.methods.split(","))))
    row = 0
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        det = None
        if method != "brightest":
            det = get_detector(method, **detector_params(method, args)).fit(mapping.to_grid(log1p_charge(train)))
        result[method] = {"fit_seconds": time.perf_counter() - t0}
        for kind, (imgs, mask) in cases.items():
            # "brightest": no model, the map is the pixel charge (the reference any map has to beat)
            maps = log1p_charge(imgs) if det is None else mapping.to_pixels(det.anomaly_map(mapping.to_grid(log1p_charge(imgs))))
            result[method][kind] = rates(maps, mask, camera)
            for k in range(4):
                a = fig.add_subplot(2 * len(args.methods.split(",")), 8, row * 8 + 2 * k + 1)
                b = fig.add_subplot(2 * len(args.methods.split(",")), 8, row * 8 + 2 * k + 2)
                draw_pixels(a, camera, log1p_charge(imgs[k]))
                draw_pixels(b, camera, maps[k], cmap="inferno")
                j = int(np.argmax(maps[k]))
                for ax in (a, b):
                    ax.plot(camera.pix_x[j], camera.pix_y[j], "o", mfc="none", mec="tab:red", ms=8)
                a.set_title(f"{method}: {kind}", fontsize=6)
            row += 1
    fig.tight_layout()
    FigureCanvasAgg(fig)
    fig.savefig(args.out / "localisation_examples.png", dpi=90)
    (args.out / "localisation.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, **result}, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
