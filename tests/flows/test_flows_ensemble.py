"""Stacked ensemble training (flows/ensemble.py) against the sequential loop ``rareflow.training.train``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from rareflow.detectors.flow_classifier import ClassFlows
from rareflow.errors import RareflowError
from rareflow.flows import FlowConfig, FlowModel, Preprocessor
from rareflow.flows.losses import nll_loss
from rareflow.training import Batch, TrainingDiverged, train
from rareflow.flows.ensemble import class_context_nll_loss, train_ensemble
from rareflow.flows.selfsup import class_nll_loss
from rareflow.training import evaluate_loss

KW = dict(epochs=4, batch_size=100, lr=3e-3, patience=2, progress=False)


def _one_class(n: int = 1200) -> tuple[Preprocessor, FlowConfig, Batch, Batch]:
    r = np.random.default_rng(0)
    X = np.column_stack([r.normal(0, 1, n), r.gamma(2.0, 1.0, n), r.normal(0, 1, n)])
    x = torch.as_tensor(X, dtype=torch.float32)
    return Preprocessor.fit(X), FlowConfig("realnvp", features=3, transforms=3, hidden=(16, 16)), Batch(x[:1000]), Batch(x[1000:])


def _two_class(n: int, seed: int, shift: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bulk N(0, I) and rare N(shift, 0.8^2 I) (30 %), 3 features, with positive sample weights."""
    r = np.random.default_rng(seed)
    y = (r.random(n) < 0.3).astype(np.float32)
    X = r.normal(0, 1, (n, 3)) * np.where(y[:, None] > 0, 0.8, 1.0) + shift * y[:, None]
    return X, y, r.uniform(0.5, 1.5, n).astype(np.float32)


def _batch(X: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Batch:
    return Batch(
        torch.as_tensor(X, dtype=torch.float32),
        label=torch.as_tensor(y),
        weight=None if w is None else torch.as_tensor(w),
    )


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(float((p - q).detach().abs().max()) for p, q in zip(a.parameters(), b.parameters()))


def _conditional(pre: Preprocessor, seed: int) -> FlowModel:
    return FlowModel(FlowConfig("realnvp", features=3, context=2, transforms=3, hidden=(16, 16)), pre, seed=seed)


# -- (a) one member == the sequential loop --------------------------------------------------------
def test_one_member_equals_sequential_train_nll() -> None:
    pre, cfg, tr, va = _one_class()
    seq, ens = FlowModel(cfg, pre, seed=3), FlowModel(cfg, pre, seed=3)
    h1 = train(seq, nll_loss, tr, va, seed=7, **KW)
    (h2,) = train_ensemble([ens], nll_loss, tr, va, seeds=[7], **KW)
    assert _max_diff(seq, ens) < 1e-5
    np.testing.assert_allclose(h2["train_loss"], h1["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(h2["val_loss"], h1["val_loss"], rtol=1e-5)
    assert h2["lr"] == pytest.approx(h1["lr"]) and h2["best_epoch"] == h1["best_epoch"]
    assert not ens.training


def test_one_member_equals_sequential_class_nll_with_weights() -> None:
    """flow-classifier's loss: class NLL with one-hot context and sample weights, trimmed validation."""
    X, y, w = _two_class(1200, seed=0)
    pre = Preprocessor.fit(X)
    tr, va = _batch(X[:1000], y[:1000], w[:1000]), _batch(X[1000:], y[1000:], w[1000:])
    seq, ens, one_pass = _conditional(pre, 3), _conditional(pre, 3), _conditional(pre, 3)
    h1 = train(ClassFlows([seq], True), class_nll_loss(), tr, va, val_loss_fn=class_nll_loss(trim=0.01), seed=7, **KW)
    wrap = lambda m: ClassFlows([m], conditional=True)  # noqa: E731
    (h2,) = train_ensemble([ens], class_nll_loss(), tr, va, val_loss_fn=class_nll_loss(trim=0.01), wrap=wrap, seeds=[7], **KW)
    # the one-pass class NLL (own class as context) is the same loss
    (h3,) = train_ensemble(
        [one_pass], class_context_nll_loss(), tr, va, val_loss_fn=class_context_nll_loss(trim=0.01), seeds=[7], **KW
    )
    for model, h in ((ens, h2), (one_pass, h3)):
        assert _max_diff(seq, model) < 1e-5
        np.testing.assert_allclose(h["train_loss"], h1["train_loss"], rtol=1e-5)
        np.testing.assert_allclose(h["val_loss"], h1["val_loss"], rtol=1e-5)


# -- (b) early stopping per member ----------------------------------------------------------------
def test_stopped_member_frozen_at_best_while_others_train() -> None:
    pre, cfg, tr, va = _one_class()
    models = [FlowModel(cfg, pre, seed=s) for s in (0, 1, 2)]
    seen: list[tuple[int, dict[str, torch.Tensor], torch.Tensor]] = []

    def record(epoch: int, params: dict[str, torch.Tensor], active: torch.Tensor) -> None:
        seen.append((epoch, {n: p.detach().clone() for n, p in params.items()}, active))

    hs = train_ensemble(models, nll_loss, tr, va, epochs=12, batch_size=100, lr=0.01, patience=2,
                        schedule="none", progress=False, callback=record)  # fmt: skip
    runs = [h["epochs_run"] for h in hs]
    assert all(h["stopped_early"] for h in hs) and len(set(runs)) > 1  # they stop at different epochs
    first = int(np.argmin(runs))
    later = [k for k in range(3) if runs[k] > runs[first]]
    after = [(e, p) for e, p, a in seen if e >= runs[first]]
    assert len(after) >= 2 and not bool(seen[runs[first] - 1][2][first])
    for _, params in after:  # bitwise the best weights from the stop on, although AdamW ran on
        for n, p in models[first].named_parameters():
            assert torch.equal(params[n][first], p.detach())
    k = later[0]
    moved = [n for n, p in seen[runs[first]][1].items() if not torch.equal(p[k], seen[runs[first] - 1][1][n][k])]
    assert moved, "a member still training must keep changing"
    for model, h in zip(models, hs):  # each member ends on its own best weights
        assert evaluate_loss(model, nll_loss, va, 4096) == pytest.approx(h["best_loss"], rel=1e-6)
        assert h["epochs_run"] - h["best_epoch"] == 2


# -- (c) members are independent -------------------------------------------------------------------
def test_members_own_init_and_data_order_equal_separate_runs() -> None:
    pre, cfg, tr, va = _one_class()
    models = [FlowModel(cfg, pre, seed=s) for s in (0, 1)]
    assert _max_diff(models[0], models[1]) > 0.01  # own initialisation
    hs = train_ensemble(models, nll_loss, tr, va, seeds=[5, 6], **KW)
    for k, (s_init, s_data) in enumerate(((0, 5), (1, 6))):
        alone = FlowModel(cfg, pre, seed=s_init)
        h = train(alone, nll_loss, tr, va, seed=s_data, **KW)
        assert _max_diff(alone, models[k]) < 1e-5
        np.testing.assert_allclose(hs[k]["val_loss"], h["val_loss"], rtol=1e-5)
    # same initialisation, different data order -> different members
    twins = [FlowModel(cfg, pre, seed=0) for _ in range(2)]
    train_ensemble(twins, nll_loss, tr, va, seeds=[5, 6], **KW)
    assert _max_diff(twins[0], twins[1]) > 1e-3


# -- (d) ensemble scores vs sequential ensemble, tolerance from the seed spread ------------------
def _ratio_auc(models: list[FlowModel], X: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        bulk, rare = ClassFlows(models, conditional=True).eval().log_prob_pair(torch.as_tensor(X, dtype=torch.float32))
    return float(roc_auc_score(y, (rare - bulk).numpy()))


def test_likelihood_ratio_auc_matches_sequential_within_seed_spread() -> None:
    X, y, w = _two_class(1500, seed=1)
    Xt, yt, _ = _two_class(4000, seed=2)
    pre = Preprocessor.fit(X)
    tr, va = _batch(X[:1200], y[:1200], w[:1200]), _batch(X[1200:], y[1200:], w[1200:])
    kw = dict(epochs=12, batch_size=128, lr=3e-3, patience=4, progress=False)
    seq_auc = []
    for base in (0, 10, 20):  # the spread of the sequential ensemble over seeds
        members = [_conditional(pre, base + k) for k in range(3)]
        for k, m in enumerate(members):
            train(m, class_context_nll_loss(), tr, va, val_loss_fn=class_context_nll_loss(trim=0.01), seed=100 + base + k, **kw)
        seq_auc.append(_ratio_auc(members, Xt, yt))
    stacked = [_conditional(pre, k) for k in range(3)]
    train_ensemble(stacked, class_context_nll_loss(), tr, va, val_loss_fn=class_context_nll_loss(trim=0.01),
                   seeds=[100, 101, 102], **kw)  # fmt: skip
    spread = max(seq_auc) - min(seq_auc)
    assert spread > 0
    assert abs(_ratio_auc(stacked, Xt, yt) - seq_auc[0]) <= 0.5 * spread
    # and the ratio learns the problem: close to the AUC of the exact likelihood ratio
    lr_true = -0.5 * ((Xt - 1.0) ** 2).sum(1) / 0.64 - 3 * np.log(0.8) + 0.5 * (Xt**2).sum(1)
    assert _ratio_auc(stacked, Xt, yt) > roc_auc_score(yt, lr_true) - 0.02


# -- divergence, options, bad input ----------------------------------------------------------------
def test_diverging_member_keeps_best_weights_others_finish() -> None:
    pre, cfg, tr, va = _one_class()
    good, bad = FlowModel(cfg, pre, seed=0), FlowModel(cfg, pre, seed=1)
    with torch.no_grad():
        last = list(bad.flow.transform.transforms[0].hyper)[-1]
        last.bias.fill_(1e30)  # inf shift -> non-finite loss from the first step
    before = {n: p.detach().clone() for n, p in bad.named_parameters()}
    with pytest.raises(TrainingDiverged, match=r"ensemble member 1 diverged at epoch 1 \(1 of 2 members\)") as err:
        train_ensemble([good, bad], nll_loss, tr, va, seeds=[5, 6], **KW)
    h_good, h_bad = err.value.history["members"]
    assert h_bad["diverged"] and h_bad["epochs_run"] == 0 and not h_good["diverged"]
    assert all(torch.equal(p, before[n]) for n, p in bad.named_parameters())
    alone = FlowModel(cfg, pre, seed=0)
    train(alone, nll_loss, tr, va, seed=5, **KW)
    assert _max_diff(alone, good) < 1e-5


def test_sqrt_lr_scaling_and_fixed_validation_subset() -> None:
    pre, cfg, tr, va = _one_class()
    model = FlowModel(cfg, pre, seed=0)
    (h,) = train_ensemble([model], nll_loss, tr, va, epochs=1, batch_size=400, lr=1e-3, schedule="none",
                          lr_reference_batch=100, valid_rows=50, progress=False)  # fmt: skip
    assert h["lr"][0] == pytest.approx(2e-3)  # sqrt(400 / 100)
    assert len(h["val_loss"]) == 1 and np.isfinite(h["val_loss"][0])
    (h_off,) = train_ensemble([FlowModel(cfg, pre, seed=0)], nll_loss, tr, va, epochs=1, batch_size=400, lr=1e-3,
                              schedule="none", progress=False)  # fmt: skip
    assert h_off["lr"][0] == pytest.approx(1e-3)  # off by default
    assert h["val_loss"][0] != pytest.approx(h_off["val_loss"][0])  # 50 rows, not all 200


def test_bad_input_one_line_errors() -> None:
    pre, cfg, tr, va = _one_class()
    other = Preprocessor.fit(np.random.default_rng(1).normal(size=(100, 3)))
    with pytest.raises(RareflowError, match=r"member 1 differs from member 0 in buffer 'pre\.\w+'"):
        train_ensemble([FlowModel(cfg, pre, seed=0), FlowModel(cfg, other, seed=1)], nll_loss, tr, **KW)
    with pytest.raises(RareflowError, match="one seed per ensemble member: 2 members, 1 seeds"):
        train_ensemble([FlowModel(cfg, pre, seed=0), FlowModel(cfg, pre, seed=1)], nll_loss, tr, seeds=[0], **KW)
    with pytest.raises(RareflowError, match="schedule 'cosine' or 'none'"):
        train_ensemble([FlowModel(cfg, pre, seed=0)], nll_loss, tr, **{**KW, "schedule": "plateau"})


@pytest.mark.parametrize("kind", ["maf", "nsf"])
def test_zuko_flows_run_through_vmap(kind: str) -> None:
    """Not only the fused RealNVP: zuko's autoregressive flows train stacked, equal to alone."""
    pre, _, tr, va = _one_class()
    cfg = FlowConfig(kind, features=3, transforms=2, hidden=(16, 16))
    models = [FlowModel(cfg, pre, seed=s) for s in (0, 1)]
    kw = {**KW, "epochs": 2}
    hs = train_ensemble(models, nll_loss, tr, va, seeds=[5, 6], **kw)
    alone = FlowModel(cfg, pre, seed=1)
    h = train(alone, nll_loss, tr, va, seed=6, **kw)
    np.testing.assert_allclose(hs[1]["val_loss"], h["val_loss"], rtol=1e-4)
    assert _max_diff(alone, models[1]) < 1e-4


# -- the stacked form (no vmap) against each member and against vmap ------------------------------
def _shaken(pre: Preprocessor, seeds: tuple[int, ...]) -> list[FlowModel]:
    """Conditional fused RealNVPs with every weight moved off its initial value (so no layer is zero)."""
    models = [_conditional(pre, s) for s in seeds]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in models:
            for p in m.parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return models


def test_stacked_log_prob_equals_each_member_with_gradients() -> None:
    X, y, _ = _two_class(300, seed=3)
    pre = Preprocessor.fit(X)
    models = _shaken(pre, (0, 1, 2))
    r = np.random.default_rng(4)
    x = torch.as_tensor(X[r.integers(0, 300, (3, 40))], dtype=torch.float32)  # each member its own rows
    c = torch.nn.functional.one_hot(torch.as_tensor(r.integers(0, 2, (3, 40))), 2).float()
    params = {n: p.detach().clone().requires_grad_() for n, p in torch.func.stack_module_state(models)[0].items()}
    stacked = models[0].stacked_log_prob(params, x, c)
    assert stacked.shape == (3, 40)
    (stacked * torch.linspace(0.5, 1.5, 40)).sum().backward()
    for k, m in enumerate(models):
        alone = m.log_prob(x[k], c[k])
        torch.testing.assert_close(stacked[k], alone, rtol=1e-5, atol=1e-5)
        (alone * torch.linspace(0.5, 1.5, 40)).sum().backward()
        for n, p in m.named_parameters():
            torch.testing.assert_close(params[n].grad[k], p.grad, rtol=1e-4, atol=1e-5)


def test_stacked_form_only_where_it_applies_and_equal_to_vmap() -> None:
    from rareflow.flows.ensemble import FIELDS, _Call, _Stack

    X, y, w = _two_class(300, seed=5)
    pre = Preprocessor.fit(X)
    models = _shaken(pre, (0, 1))
    pair = lambda m: ClassFlows([m], conditional=True)  # noqa: E731
    assert _Stack(models, None, class_context_nll_loss()).stacked_loss is not None
    assert _Stack(models, None, nll_loss).stacked_loss is not None
    assert _Stack(models, None, class_context_nll_loss(trim=0.01)).stacked_loss is None  # branches on values
    assert _Stack(models, pair, class_nll_loss()).stacked_loss is None  # a wrap
    unfused = [FlowModel(FlowConfig("realnvp", features=3, context=2, transforms=3, hidden=(16, 16)), pre, seed=0, fused=False)]
    assert _Stack(unfused, None, nll_loss).stacked_loss is None
    maf = [FlowModel(FlowConfig("maf", features=3, transforms=2, hidden=(16, 16)), pre, seed=0)]
    assert _Stack(maf, None, nll_loss).stacked_loss is None
    # the same losses and per-member gradients as the vmap path, with weights, on a member subset
    rows = _batch(X, y, w).index(torch.as_tensor(np.random.default_rng(6).integers(0, 300, (2, 50))))
    fields = [getattr(rows, f) for f in FIELDS]
    results = []
    for use_stacked in (True, False):
        stack = _Stack(_shaken(pre, (0, 1)), None, class_context_nll_loss())
        if not use_stacked:
            stack.stacked_loss = None
        call = _Call(stack.base, stack.view, class_context_nll_loss())
        sub = [None if f is None else f[1:] for f in fields]  # member 1's rows only
        losses = stack.losses(call, torch.tensor([1]), sub)
        losses.sum().backward()
        results.append((losses.detach(), stack.flat.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-5)
    assert float(results[0][1][0].abs().max()) == 0.0 and float(results[0][1][1].abs().max()) > 0  # member 0 was left out
