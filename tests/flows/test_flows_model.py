"""FlowModel: exact inverse, exact log-Jacobian, a normalised density, faithful samples,
the fused RealNVP path equal to zuko, and conditional flows that use their context."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rareflow.errors import RareflowError
from rareflow.flows import FlowConfig, FlowModel, Preprocessor, nll_loss, one_hot
from rareflow.training import Batch, train

KINDS = ["realnvp", "maf", "nsf"]


def _data(n: int = 1000, seed: int = 0) -> np.ndarray:
    r = np.random.default_rng(seed)
    size = r.lognormal(3.0, 0.8, n)
    a = r.normal(0, 1, n) + 0.5 * np.log(size)
    count = r.poisson(6, n).astype(float) + 1
    b = r.normal(0, 2, n) - 0.3 * a
    return np.column_stack([size, a, count, b])


def _perturbed(kind: str, dtype: torch.dtype = torch.float64, context: int = 0, seed: int = 0) -> FlowModel:
    """An untrained model whose weights are pushed far from the identity map."""
    X = _data()
    cfg = FlowConfig(kind, features=4, context=context, transforms=3, hidden=(16, 16))
    model = FlowModel(cfg, Preprocessor.fit(X), seed=seed).to(dtype).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_inverse_of_forward_is_identity(kind: str) -> None:
    model = _perturbed(kind)
    x = torch.as_tensor(_data(200, seed=1))
    with torch.no_grad():
        z = model.transform(x)
        back = model.inverse(z)
    assert not torch.allclose(z, model.pre(x)[0], atol=1e-2)  # the flow is not the identity
    assert torch.allclose(back, x, atol=1e-5, rtol=1e-7), float((back - x).abs().max())
    model32 = _perturbed(kind, torch.float32)
    x32 = x.float()
    with torch.no_grad():
        back32 = model32.inverse(model32.transform(x32))
    assert torch.allclose(back32, x32, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_log_det_equals_autograd_jacobian(kind: str) -> None:
    model = _perturbed(kind)
    x = torch.as_tensor(_data(20, seed=2))
    with torch.no_grad():
        z, logp = model.transform_and_log_prob(x)
    log_base = -0.5 * (z * z).sum(-1) - 2 * math.log(2 * math.pi)
    ladj = logp - log_base  # preprocessing + flow
    for i in range(6):
        J = torch.autograd.functional.jacobian(lambda r: model.transform(r.unsqueeze(0))[0], x[i])
        sign, logdet = torch.linalg.slogdet(J)
        assert float(sign) > 0
        assert torch.allclose(ladj[i], logdet, atol=1e-8), (float(ladj[i]), float(logdet))


def test_fused_realnvp_equals_zuko_on_same_weights() -> None:
    for context in (0, 2):
        fused = _perturbed("realnvp", torch.float32, context=context)
        plain = FlowModel(fused.config, Preprocessor(4), fused=False).float().eval()
        plain.load_state_dict(fused.state_dict())
        assert fused._fast is not None and plain._fast is None
        x = torch.as_tensor(_data(300, seed=3), dtype=torch.float32)
        c = one_hot(np.arange(300) % 2) if context else None
        z1, lp1 = fused.transform_and_log_prob(x, c)
        z2, lp2 = plain.transform_and_log_prob(x, c)
        # zuko's own log_prob on the preprocessed input, as an independent reference
        u, ladj_pre = plain.pre(x)
        lp_zuko = plain.flow(c).log_prob(u) + ladj_pre
        assert torch.allclose(lp1, lp_zuko, atol=1e-4, rtol=1e-5)
        assert torch.allclose(lp1, lp2, atol=1e-4, rtol=1e-5)
        assert torch.allclose(z1, z2, atol=1e-5)
        # identical gradients, so training through the fused path trains the zuko flow
        g1 = torch.autograd.grad(lp1.sum(), list(fused.flow.parameters()))
        g2 = torch.autograd.grad(lp_zuko.sum(), list(plain.flow.parameters()))
        for a, b in zip(g1, g2):
            assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)


def _fit(X: np.ndarray, kind: str = "realnvp", epochs: int = 40, seed: int = 0, **cfg) -> FlowModel:
    pre = Preprocessor.fit(X, log_features=cfg.pop("log_features", None))
    config = FlowConfig(kind, features=X.shape[1], transforms=cfg.pop("transforms", 4), hidden=cfg.pop("hidden", (32, 32)), **cfg)
    model = FlowModel(config, pre, seed=seed)
    x = torch.as_tensor(X, dtype=torch.float32)
    train(model, nll_loss, Batch(x[:-500]), Batch(x[-500:]), epochs=epochs, batch_size=128, lr=3e-3, patience=10, seed=seed, progress=False)
    return model


def test_2d_density_integrates_to_one() -> None:
    r = np.random.default_rng(0)
    n = 4000
    x1 = r.lognormal(0.0, 0.35, n)  # positive and skewed: logged, so the Jacobian of log matters
    x2 = r.normal(0, 1, n) + 1.5 * np.log(x1)
    X = np.column_stack([x1, x2])
    model = _fit(X, epochs=25)
    assert bool(model.pre.log_mask[0]) and not bool(model.pre.log_mask[1])
    g1 = np.linspace(1e-3, 6.0, 500)
    g2 = np.linspace(-7.0, 7.0, 500)
    G1, G2 = np.meshgrid(g1, g2, indexing="ij")
    grid = np.column_stack([G1.ravel(), G2.ravel()])
    dens = np.exp(model.evaluate(grid, latent=False)["log_prob"]).reshape(G1.shape)
    total = np.trapezoid(np.trapezoid(dens, g2, axis=1), g1)
    assert abs(total - 1.0) < 0.02, total


def test_samples_match_training_moments() -> None:
    r = np.random.default_rng(1)
    n = 5000
    cov = np.array([[1.0, 0.6, 0.0], [0.6, 1.0, -0.4], [0.0, -0.4, 1.0]])
    G = r.multivariate_normal([0, 0, 0], cov, n)
    X = np.column_stack([np.exp(0.5 * G[:, 0] + 2), 3 * G[:, 1] + 10, G[:, 2] ** 3 + G[:, 2]])
    model = _fit(X, epochs=30)
    with torch.no_grad():
        S = model.sample(20000, generator=torch.Generator().manual_seed(0)).double().numpy()
    assert np.isfinite(S).all()
    med_x, med_s = np.median(X, axis=0), np.median(S, axis=0)
    iqr_x = np.subtract(*np.percentile(X, [75, 25], axis=0))
    iqr_s = np.subtract(*np.percentile(S, [75, 25], axis=0))
    assert np.all(np.abs(med_s - med_x) < 0.1 * iqr_x), (med_x, med_s)
    assert np.allclose(iqr_s, iqr_x, rtol=0.1), (iqr_x, iqr_s)
    assert np.allclose(X.mean(0)[:2], S.mean(0)[:2], rtol=0.05)
    cx = np.corrcoef(np.log(X[:, 0]), X[:, 1])[0, 1]
    cs = np.corrcoef(np.log(S[:, 0]), S[:, 1])[0, 1]
    assert abs(cx - cs) < 0.05, (cx, cs)


def test_conditional_flow_uses_its_context() -> None:
    r = np.random.default_rng(2)
    n = 3000
    labels = r.integers(0, 2, n)
    X = r.normal(0, 1, (n, 2)) + np.where(labels[:, None] == 1, 2.5, -2.5)
    pre = Preprocessor.fit(X)
    model = FlowModel(FlowConfig("realnvp", features=2, context=2, transforms=4, hidden=(32, 32)), pre, seed=0)
    x, c = torch.as_tensor(X, dtype=torch.float32), one_hot(labels)
    train(model, nll_loss, Batch(x, context=c), epochs=15, batch_size=128, lr=3e-3, patience=0, seed=0, progress=False)
    with torch.no_grad():
        probe = torch.tensor([[-2.5, -2.5], [2.5, 2.5]])
        lp0 = model.log_prob(probe, one_hot([0, 0]))
        lp1 = model.log_prob(probe, one_hot([1, 1]))
    assert lp0[0] > lp1[0] + 5 and lp1[1] > lp0[1] + 5
    # samples follow the context they are drawn with
    with torch.no_grad():
        s1 = model.sample(2000, context=one_hot(np.ones(2000, dtype=int)), generator=torch.Generator().manual_seed(0))
    assert np.allclose(s1.mean(0).numpy(), [2.5, 2.5], atol=0.3)
    with pytest.raises(RareflowError, match="needs a context"):
        model.log_prob(probe)


def test_unconditional_flow_rejects_context_and_bad_shapes() -> None:
    model = _perturbed("maf", torch.float32)
    with pytest.raises(RareflowError, match="unconditional"):
        model.log_prob(torch.zeros(2, 4), torch.zeros(2, 1))
    with pytest.raises(RareflowError, match="4 features"):
        model.log_prob(torch.zeros(2, 3))
    with pytest.raises(RareflowError, match="unknown flow"):
        FlowConfig("glow", features=3)


def test_state_round_trip_gives_identical_log_prob() -> None:
    for kind in KINDS:
        model = _perturbed(kind, torch.float32)
        json, arrays = model.to_state()
        again = FlowModel.from_state(json, arrays)
        x = _data(100, seed=5)
        assert np.array_equal(model.evaluate(x)["log_prob"], again.evaluate(x)["log_prob"])


def test_evaluate_batches_give_the_same_numbers() -> None:
    model = _perturbed("realnvp", torch.float32)
    x = _data(1000, seed=6)
    a = model.evaluate(x, batch_size=1000)
    b = model.evaluate(x, batch_size=97)
    assert np.allclose(a["log_prob"], b["log_prob"], rtol=1e-5, atol=1e-4)
    assert np.allclose(a["z"], b["z"], atol=1e-5)


@pytest.mark.parametrize("activation", ["relu", "elu", "silu", "tanh"])
def test_onednn_scoring_equals_the_autograd_path(activation: str) -> None:
    """Scoring without autograd runs the couplings' linears through oneDNN (bias and activation
    fused); it gives the log-density of the training path (``F.linear``, autograd on) to float32
    round-off, and the latent used by ``inverse`` keeps the training path's kernel."""
    from rareflow.flows import model as flow_model

    X = _data(3000, seed=4)
    cfg = FlowConfig("realnvp", features=4, context=2, transforms=4, hidden=(32, 32), activation=activation)
    model = FlowModel(cfg, Preprocessor.fit(X), seed=1).eval()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in model.flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    x = torch.as_tensor(X, dtype=torch.float32)
    ctx = one_hot(np.arange(len(X)) % 2)
    with_grad = model.log_prob(x, ctx).detach()
    with torch.no_grad():
        scored, z = model.log_prob(x, ctx), model.transform(x, ctx)
    torch.testing.assert_close(scored, with_grad, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(z, model.flow_forward(model.pre(x)[0].detach(), ctx)[0].detach(), rtol=0, atol=0)
    if flow_model._FUSED_LINEAR and flow_model._FUSED_LINEAR[0] is not None:  # the fused kernel really ran
        w, b = model.flow.transform.transforms[0].hyper[0].weight, model.flow.transform.transforms[0].hyper[0].bias
        h = torch.randn(64, w.shape[1])
        with torch.no_grad():
            act = flow_model._ACT[activation]
            torch.testing.assert_close(flow_model.fused_linear(h, w, b, act), act(torch.nn.functional.linear(h, w, b)))
