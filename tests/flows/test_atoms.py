"""Atoms (point masses) of continuous columns are dequantised into a band beside the atom."""

from __future__ import annotations

import numpy as np
import torch

from rareflow.flows.preprocessing import Preprocessor


def _zero_inflated(n: int = 4000, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    leak = np.where(r.random(n) < 0.7, 0.0, r.exponential(0.05, n))  # 70% exactly zero
    width = r.gamma(4.0, 0.02, n)                                    # continuous, no atom
    pixels = r.integers(3, 40, n).astype(float)                      # integer column: dequantised, not an atom
    return np.column_stack([leak, width, pixels])


def test_atom_detection_band_and_exact_inverse() -> None:
    X = _zero_inflated()
    pre = Preprocessor.fit(X, feature_names=["leak", "width", "n_pixels"])
    assert pre.describe(["leak", "width", "n_pixels"])["atoms"] == ["leak"]
    assert pre.atom_value[0] == 0.0 and pre.atom_width[0] > 0  # band below 0: no other values there
    pre.eval()
    x = torch.as_tensor(X)
    u, ladj = pre(x)
    back = pre.inverse(u)
    assert torch.allclose(back, x, atol=1e-9)
    # the atom rows all sit at the band centre (scoring), strictly below every non-atom value
    centre = float(pre.atom_value[0] - 0.5 * pre.atom_width[0])
    w = u[:, 0] * pre.scale[0] + pre.center[0]
    assert torch.allclose(w[X[:, 0] == 0], torch.full_like(w[X[:, 0] == 0], centre))
    # training draws spread the atom over the band; the Jacobian is unchanged (a shift)
    pre.train()
    u_train, ladj_train = pre(x)
    wt = u_train[:, 0] * pre.scale[0] + pre.center[0]
    band = wt[X[:, 0] == 0]
    assert band.min() >= -pre.atom_width[0] - 1e-12 and band.max() <= 1e-12 and band.std() > 0
    assert torch.allclose(ladj, ladj_train)


def test_no_atoms_when_dequantize_false_or_rare() -> None:
    X = _zero_inflated()
    assert not Preprocessor.fit(X, dequantize=False).atom_mask.any()
    assert not Preprocessor.fit(X, atom_fraction=0.9).atom_mask.any()


def test_old_state_without_atom_buffers_loads() -> None:
    X = _zero_inflated()
    pre = Preprocessor.fit(X)
    state = {k: v for k, v in pre.state_dict().items() if not k.startswith("atom_")}
    fresh = Preprocessor(3)
    fresh.load_state_dict(state, strict=True)
    assert not fresh.atom_mask.any()
