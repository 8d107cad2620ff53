"""2-D coupling flow: exact inverse, log-det equal to the autograd Jacobian, the self-supervised loss."""

from __future__ import annotations

import math

import pytest
import torch

from rareflow.flows.conv import AffineCoupling2d, FlowSteps2d, selfsup_image_loss


def _randomised(flow: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-zero weights everywhere (the last subnet layers start at zero = identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return flow


@pytest.mark.parametrize("position", [False, True])
def test_inverse_of_forward_is_identity(position: bool) -> None:
    flow = _randomised(FlowSteps2d(4, steps=4, hidden=8, position=position).double())
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z, _ = flow(x)
    assert not torch.allclose(z, x)
    torch.testing.assert_close(flow.inverse(z), x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kernel,swap", [(3, False), (1, True), (3, True)])
def test_logdet_matches_autograd_jacobian(kernel: int, swap: bool) -> None:
    c, h, w = 3, 3, 3
    layer = _randomised(AffineCoupling2d(c, 5, kernel=kernel, swap=swap).double(), seed=kernel + swap)
    x = torch.randn(1, c, h, w, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    jac = torch.autograd.functional.jacobian(lambda v: layer(v.reshape(1, c, h, w))[0].reshape(-1), x.reshape(-1))
    _, logabsdet = torch.linalg.slogdet(jac)
    _, logdet_map = layer(x)
    assert logdet_map.shape == (1, h, w)
    torch.testing.assert_close(logdet_map.sum(), logabsdet, rtol=1e-9, atol=1e-9)


def test_flow_log_prob_is_a_density_of_the_whole_map() -> None:
    flow = _randomised(FlowSteps2d(2, steps=2, hidden=4, position=True).double(), seed=3)
    x = torch.randn(1, 2, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    jac = torch.autograd.functional.jacobian(lambda v: flow(v.reshape(1, 2, 2, 2))[0].reshape(-1), x.reshape(-1))
    z, _ = flow(x)
    expected = -0.5 * (z**2).sum() - 0.5 * z.numel() * math.log(2 * math.pi) + torch.linalg.slogdet(jac)[1]
    torch.testing.assert_close(flow.log_prob_map(x).sum(), expected, rtol=1e-9, atol=1e-9)


def test_selfsup_loss_follows_the_formula() -> None:
    log_p = torch.tensor([-1.0, -3.0, -0.5, -2.0, -10.0])
    own = torch.tensor([True, True, False, False, False])
    # L_B = mean(1, 3) = 2; R terms: -0.5 (> c=-5 and > min_b=-3: active), -2 (active), -10 (< c: inactive)
    expected = 2.0 - (0.5 + 2.0)
    assert float(selfsup_image_loss(log_p, own, floor=-5.0)) == pytest.approx(expected)
    # a floor above -2 switches that term off
    assert float(selfsup_image_loss(log_p, own, floor=-1.5)) == pytest.approx(2.0 - 0.5)
    # no R events: L_B alone
    assert float(selfsup_image_loss(log_p[:2], own[:2])) == pytest.approx(2.0)
