"""Synthetic light blobs (outliers/blobs.py) and the denoising / poisson training of conv-autoencoder."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import torch

from rareflow.iact.images import expm1_charge
from rareflow.detectors import get_detector
from rareflow.detectors.conv_autoencoder import reconstruction_loss
from rareflow.nets.conv import ConvAutoencoderNet
from rareflow.training import Batch
from rareflow.outliers.blobs import AMPLITUDE, COVER, add_light_blobs, blob_masks
from rareflow.persistence import load_model, save_model


def _cells() -> torch.Tensor:
    cells = torch.zeros(20, 24)
    cells[2:18, 3:21] = 1.0  # a "camera" of 16 x 18 cells inside the grid
    return cells


def test_masks_cover_the_stated_share_of_camera_cells_only() -> None:
    cells = _cells()
    masks = blob_masks(200, cells, torch.Generator().manual_seed(0))
    assert torch.all(masks[:, 0][:, cells == 0] == 0)
    share = masks.flatten(1).sum(1) / cells.sum()
    assert share.min() >= COVER[0] - 1e-6 and share.max() <= COVER[1] + 1.0 / float(cells.sum())


def test_light_is_added_in_charge_units_to_the_chosen_share_and_nowhere_else() -> None:
    cells = _cells()
    rng = np.random.default_rng(1)
    q = rng.poisson(3.0, (400, 1, 20, 24)).astype(np.float32) * cells.numpy()
    u = torch.from_numpy(np.log1p(q))
    out = add_light_blobs(u, cells, 0.5, torch.Generator().manual_seed(2))
    added = torch.expm1(out) - torch.expm1(u)
    assert torch.all(added >= -1e-3) and torch.all(added[:, 0][:, cells == 0].abs() < 1e-6)
    touched = (added.flatten(1) > 1e-3).any(1).float()
    assert 0.4 < float(touched.mean()) < 0.6  # binomial(400, 0.5): 6 sigma band
    lit = added[added > 1e-3]
    assert float(lit.min()) >= 0.5 * AMPLITUDE[0] - 1e-2 and float(lit.max()) <= AMPLITUDE[1] + 1e-2
    again = add_light_blobs(u, cells, 0.5, torch.Generator().manual_seed(2))
    assert torch.equal(out, again)


def test_denoising_loss_corrupts_inputs_only_when_training() -> None:
    cells = _cells()
    net = ConvAutoencoderNet((4, 8), 4, bottleneck="dense", grid=(20, 24), hidden=16)
    x = torch.log1p(torch.rand(8, 1, 20, 24) * 3.0) * cells
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda mod, args: seen.append(args[0].clone()))
    loss = reconstruction_loss("poisson", 1.0, cells)
    net.eval()
    loss(net, Batch(x=x))
    assert torch.equal(seen[-1], x)  # validation / scoring: clean input
    net.train()
    torch.manual_seed(0)
    loss(net, Batch(x=x))
    assert not torch.equal(seen[-1], x)  # training: blobs added (every image, share 1.0)
    noisy = seen[-1]
    value = loss(net.eval(), Batch(x=noisy, context=x))  # fixed corrupted validation: target = context
    rec = net(noisy)
    qh = torch.expm1(rec.abs()) * torch.sign(rec)
    z = (torch.expm1(x) - qh) / torch.sqrt(4.0 + qh.clamp_min(0.0))
    huber = torch.where(z.abs() <= 3.0, z**2, 2 * 3.0 * (z.abs() - 1.5))
    torch.testing.assert_close(value, huber.flatten(1).mean(1).mean(), rtol=1e-5, atol=1e-6)


def test_dense_bottleneck_reconstructs_any_grid_size_it_was_built_for() -> None:
    for grid in ((29, 29), (28, 28), (13, 17)):
        net = ConvAutoencoderNet((4, 8, 16), 6, bottleneck="dense", grid=grid, hidden=32)
        assert net(torch.zeros(3, 1, *grid)).shape == (3, 1, *grid)


def test_poisson_pull_map_is_the_counting_noise_pull(mixed_grids) -> None:
    X, _ = mixed_grids
    det = get_detector("conv-autoencoder", epochs=2, progress=False, neighbours=0.0).fit(X[:200])
    q, qh = expm1_charge(X[200:210]), expm1_charge(det._reconstruct(X[200:210]))
    expect = np.clip((q - qh) / np.sqrt(det.pull_s0_**2 + np.clip(qh, 0.0, None)), 0.0, None) * det.pull_cells_
    np.testing.assert_allclose(det.anomaly_map(X[200:210]), expect, rtol=1e-4, atol=1e-4)
    assert 0.5 < det.pull_s0_ < 5.0  # the simulator's night-sky noise is ~2 p.e.


def test_files_saved_before_the_poisson_scale_still_load(tmp_path, mixed_grids) -> None:
    X, _ = mixed_grids
    old = {"bottleneck": "conv", "loss": "log", "denoise": 0.0, "scale": "learned", "channels": [8, 16, 32], "latent": 4}
    det = get_detector("conv-autoencoder", epochs=2, progress=False, **old).fit(X[:200])
    path = tmp_path / "old.rfm"
    save_model(det, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["meta.json"])
    for key in ("bottleneck", "hidden", "loss", "denoise", "scale"):  # the parameters older files lack
        del meta["params"][key]
    for key in ("bottleneck", "grid", "hidden"):
        del meta["state"]["config"][key]
    members["meta.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    back = load_model(path)
    assert back.scale == "learned" and back.bottleneck == "conv"
    np.testing.assert_allclose(back.anomaly_map(X[200:205]), det.anomaly_map(X[200:205]), rtol=1e-6, atol=1e-6)
