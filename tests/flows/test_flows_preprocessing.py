"""Preprocessing stored with the models: automatic choices, exact inverse, exact log-Jacobian."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rareflow.errors import RareflowError
from rareflow.flows import Preprocessor


def _table(n: int = 2000, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    intensity = r.lognormal(4.0, 1.0, n)  # positive, heavy-tailed -> log
    width = r.normal(0.1, 0.02, n)  # symmetric -> no log
    n_pixels = r.poisson(20, n).astype(float) + 5  # integer-valued -> dequantise (and skew is small)
    signed = r.standard_t(5, n) * 3  # not positive -> no log
    return np.column_stack([intensity, width, n_pixels, signed])


NAMES = ["hillas_intensity", "hillas_width", "n_pixels", "m3_long"]


def test_automatic_choices() -> None:
    pre = Preprocessor.fit(_table(), NAMES)
    assert pre.describe(NAMES) == {"log": ["hillas_intensity"], "dequantize": ["n_pixels"], "atoms": []}
    none = Preprocessor.fit(_table(), NAMES, log_features=False, dequantize=False)
    assert none.describe(NAMES) == {"log": [], "dequantize": [], "atoms": []}
    named = Preprocessor.fit(_table(), NAMES, log_features=["hillas_intensity", "n_pixels"], dequantize=[])
    assert named.describe(NAMES)["log"] == ["hillas_intensity", "n_pixels"]


def test_bad_names_and_non_positive_log_columns() -> None:
    with pytest.raises(RareflowError, match="unknown feature column"):
        Preprocessor.fit(_table(), NAMES, log_features=["nope"])
    with pytest.raises(RareflowError, match="values <= 0"):
        Preprocessor.fit(_table(), NAMES, log_features=["m3_long"])


def test_robust_standardisation_centres_and_scales() -> None:
    X = _table()
    pre = Preprocessor.fit(X, NAMES).eval()
    u, _ = pre(torch.as_tensor(X))
    u = u.numpy()
    assert np.allclose(np.median(u, axis=0), 0.0, atol=0.05)
    iqr = np.subtract(*np.percentile(u, [75, 25], axis=0))
    assert np.allclose(iqr, 1.349, rtol=0.05)


def test_inverse_is_exact_and_dequantisation_only_in_training() -> None:
    X = torch.as_tensor(_table())
    pre = Preprocessor.fit(X.numpy(), NAMES).eval()
    u, _ = pre(X)
    assert torch.allclose(pre.inverse(u), X, atol=1e-9, rtol=1e-9)
    assert torch.equal(pre.round_discrete(pre.inverse(u))[:, 2], X[:, 2])
    pre.train()
    u1, _ = pre(X)
    u2, _ = pre(X)
    moved = (u1 != u2).any(dim=0)
    assert moved.tolist() == [False, False, True, False]  # noise only on the integer column
    shift = pre.inverse(u1)[:, 2] - X[:, 2] + 0.5  # inverse subtracts the cell centre
    assert float(shift.min()) >= 0.0 and float(shift.max()) < 1.0


def test_log_det_matches_autograd() -> None:
    X = torch.as_tensor(_table(50))
    pre = Preprocessor.fit(X.numpy(), NAMES).eval()
    _, ladj = pre(X)
    for i in range(5):
        J = torch.autograd.functional.jacobian(lambda r: pre(r.unsqueeze(0))[0][0], X[i])
        assert torch.allclose(ladj[i], torch.linalg.slogdet(J)[1], atol=1e-10)


def test_scoring_values_below_training_range_stay_finite() -> None:
    pre = Preprocessor.fit(_table(), NAMES).eval()
    x = torch.as_tensor([[0.0, 0.1, 0.0, 0.0], [-5.0, 0.1, 25.0, 1.0]], dtype=torch.float64)
    u, ladj = pre(x)
    assert torch.isfinite(u).all() and torch.isfinite(ladj).all()


def test_state_round_trip() -> None:
    pre = Preprocessor.fit(_table(), NAMES)
    fresh = Preprocessor(4)
    fresh.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in pre.state_dict().items()})
    x = torch.as_tensor(_table(10, seed=3))
    assert torch.equal(fresh.eval()(x)[0], pre.eval()(x)[0])
