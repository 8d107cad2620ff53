"""Post-hoc anomaly maps of ONE fitted fastflow: the exploratory table of IMAGES.md section 2
("FastFlow localisation (issue 19)").

Fits fastflow on 2,000 simulated gamma images of ``SEED`` exactly as ``image_localisation.py``
does (same images, artefacts and parameters, so the ``raw`` row equals that script's ``map: nll``
figures), then scores the share of artefact images whose map maximum is on / on or touching an
artefact pixel, for maps derived from the same network in camera-pixel space (``nb``: the six
hexagonal neighbours). The z-score and brightness-binned pulls use 500 of the *training* images
as the clean reference (in-sample: exploration only).

    OMP_NUM_THREADS=1 python examples/fastflow_map_variants.py 2                     # seed 2
    OMP_NUM_THREADS=1 python examples/fastflow_map_variants.py 3 feature_stage=0     # + fastflow parameters
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from image_localisation import artefacts, fastflow_params, rates  # noqa: E402

from rareflow.detectors import get_detector  # noqa: E402
from rareflow.iact.images import GridMapping, log1p_charge  # noqa: E402
from rareflow.iact.simulate import simulate_images  # noqa: E402


def pulls(maps: np.ndarray, q: np.ndarray, clean: np.ndarray, qc: np.ndarray) -> dict[str, np.ndarray]:
    """NLL z-scored per pixel, and a robust pull in 20 bins of the pixel's log1p charge."""
    mu, sd = clean.mean(0), clean.std(0) + 1e-6
    b_c, b = np.log1p(np.clip(qc, 0, None)), np.log1p(np.clip(q, 0, None))
    edges = np.quantile(b_c, np.linspace(0, 1, 21))
    edges[-1] = np.inf
    ic, it = (np.clip(np.searchsorted(edges, x, "right") - 1, 0, 19) for x in (b_c, b))
    med = np.array([np.median(clean[ic == k]) for k in range(20)])
    mad = np.array([1.4826 * np.median(np.abs(clean[ic == k] - med[k])) for k in range(20)])
    return {"z-scored per pixel": (maps - mu) / sd, "brightness-binned pull": (maps - med[it]) / mad[it]}


def variants(raw: np.ndarray, grad: np.ndarray, u: np.ndarray, nb: np.ndarray) -> dict[str, np.ndarray]:
    """Maps from the NLL map ``raw``, its input gradient ``grad`` and the log1p charge ``u``."""
    up, med = np.maximum(u, 0), np.median(raw, 1, keepdims=True)
    near = nb | np.eye(len(nb), dtype=bool)
    dil = np.stack([np.where(near, r[None, :], -np.inf).max(1) for r in raw])  # max over the neighbours
    gated = np.maximum(dil - med, 0)
    return {
        "raw (the detector's map)": raw, "raw + 0.2 x neighbours": raw + 0.2 * (raw @ nb),
        "gradient x input": np.maximum(grad, 0) * up, "neighbour max, ties by charge": dil + 1e-3 * up,
        "max(0, neighbour max - median) x u": gated * up, "... squared": gated**2 * up, "... cubed": gated**3 * up,
        "... x u^2": gated * up**2, "... x sqrt(u)": gated * np.sqrt(up), "... squared x sqrt(u)": gated**2 * np.sqrt(up),
        "u alone (brightest pixel)": up,
    }  # fmt: skip


def main() -> None:
    seed, extra = int(sys.argv[1]), fastflow_params(sys.argv[2:])
    torch.set_num_threads(1)
    images, _, camera = simulate_images(2200, 1.0, seed, muon_fraction=0.0)
    mapping = GridMapping.from_camera(camera)
    train, test = images[:2000], images[2000:]
    cases = artefacts(test, camera, seed + 7)
    det = get_detector("fastflow", progress=False, random_state=seed, epochs=10, backbone_epochs=10, **extra)
    grid = lambda a: mapping.to_grid(log1p_charge(a))  # noqa: E731
    det.fit(grid(train))
    pix, nb = mapping.to_pixels, camera.neighbors.toarray().astype(bool)
    clean, qc = pix(det.anomaly_map(grid(train[-500:]))), train[-500:]
    res: dict[str, dict[str, dict[str, float]]] = {}
    for kind, (imgs, mask) in cases.items():
        g = grid(imgs)
        x = torch.from_numpy(np.ascontiguousarray(g[:, None])).float().requires_grad_(True)
        (gx,) = torch.autograd.grad(-det.model_.log_prob_map(x).sum(), x)
        raw = pix(det.anomaly_map(g))
        maps = {**variants(raw, pix(gx[:, 0].numpy()), pix(g), nb), **pulls(raw, imgs, clean, qc)}
        maps["z-scored + 0.2 x neighbours"] = maps["z-scored per pixel"] + 0.2 * (maps["z-scored per pixel"] @ nb)
        for name, m in maps.items():
            res.setdefault(name, {})[kind[:3]] = rates(m, mask, camera)
    print(f"seed {seed} {' '.join(sys.argv[2:])}: share on / on or touching")
    for name, d in res.items():
        print(f"{name:38s} hot {d['hot']['on']:.3f} / {d['hot']['on_or_touching']:.3f}   "
              f"arc {d['muo']['on']:.3f} / {d['muo']['on_or_touching']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
