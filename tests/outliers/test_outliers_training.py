"""Discriminator and outlier-exposure classifier on a toy 2-D problem; losses; persistence of the nets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from rareflow.errors import RareflowError
from rareflow.outliers.training import (
    MLP,
    classifier_score,
    discriminator_score,
    kl_uniform,
    mlp_from_state,
    mlp_state,
    oe_loss,
    predict_classes,
    train_discriminator,
    train_oe_classifier,
    train_oe_net,
)
from rareflow.training import Batch

FAST = dict(hidden=(32, 32), epochs=40, batch_size=64, n_threads=1)


def toy(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Two inlier classes (Gaussian blobs), generated outliers on a ring around them, far test outliers."""
    r = np.random.default_rng(seed)
    y = r.integers(0, 2, 1200)
    X = r.normal(0, 0.5, (1200, 2)) + np.where(y[:, None] == 0, [-1.5, 0.0], [1.5, 0.0])
    ang = r.uniform(0, 2 * np.pi, 1200)
    ring = 4.5 * np.column_stack([np.cos(ang), np.sin(ang)]) + r.normal(0, 0.3, (1200, 2))
    ang2 = r.uniform(0, 2 * np.pi, 400)
    far = 6.0 * np.column_stack([np.cos(ang2), np.sin(ang2)])
    return X, y, ring, far


def test_kl_uniform_and_oe_loss() -> None:
    assert torch.allclose(kl_uniform(torch.zeros(3, 5)), torch.zeros(3), atol=1e-7)
    peaked = torch.tensor([[10.0, 0.0, 0.0]])
    p = torch.softmax(peaked, -1)
    assert float(kl_uniform(peaked)[0]) == pytest.approx(float((1 / 3 * torch.log((1 / 3) / p)).sum()), rel=1e-5)
    net = MLP(2, 3, hidden=(4,))
    x = torch.randn(8, 2)
    inl = Batch(x=x, label=torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    ce = torch.nn.functional.cross_entropy(net(x), inl.label)
    assert torch.allclose(oe_loss(0.7)(net, inl), ce)  # no outliers in the batch: plain CE
    mixed = Batch(x=x, label=torch.tensor([0, 1, 2, 0, -1, -1, -1, -1]))
    expected = torch.nn.functional.cross_entropy(net(x[:4]), mixed.label[:4]) + 0.7 * kl_uniform(net(x[4:])).mean()
    assert torch.allclose(oe_loss(0.7)(net, mixed), expected)


def test_discriminator_separates_generated_outliers_and_far_points() -> None:
    X, _, ring, far = toy()
    net, hist = train_discriminator(X, ring, seed=0, **FAST)
    assert hist["epochs_run"] >= 1
    Xt, _, ring_t, far_t = toy(seed=1)
    s_in, s_ring = discriminator_score(net, Xt), discriminator_score(net, ring_t)
    assert roc_auc_score(np.r_[np.zeros(len(Xt)), np.ones(len(ring_t))], np.r_[s_in, s_ring]) > 0.97
    assert roc_auc_score(np.r_[np.zeros(len(Xt)), np.ones(len(far_t))], np.r_[s_in, discriminator_score(net, far_t)]) > 0.9


def test_outlier_exposure_makes_far_points_uncertain() -> None:
    X, y, ring, far = toy()
    Xt, yt, _, far_t = toy(seed=1)
    plain, _ = train_oe_classifier(X, y, None, seed=0, **FAST)
    oe, _ = train_oe_classifier(X, y, ring, beta=1.0, seed=0, **FAST)
    for net in (plain, oe):
        assert (predict_classes(net, Xt) == yt).mean() > 0.95  # still a good classifier
    labels = np.r_[np.zeros(len(Xt)), np.ones(len(far_t))]
    auc = {name: roc_auc_score(labels, np.r_[classifier_score(net, Xt), classifier_score(net, far_t)])
           for name, net in (("plain", plain), ("oe", oe))}  # fmt: skip
    assert auc["oe"] > 0.9 and auc["oe"] > auc["plain"] + 0.1, auc
    msp_far = -classifier_score(oe, far_t)
    assert np.median(msp_far) < 0.75  # near 1/K = 0.5 far away
    kl = classifier_score(oe, far_t, "kl")
    assert np.all(kl <= 1e-6) and np.median(-kl) < np.median(-classifier_score(oe, Xt, "kl"))
    with pytest.raises(RareflowError):
        classifier_score(oe, far_t, "entropy")


def test_seeded_and_errors() -> None:
    X, y, ring, _ = toy()
    a, _ = train_discriminator(X[:300], ring[:300], seed=3, hidden=(8,), epochs=3, n_threads=1)
    b, _ = train_discriminator(X[:300], ring[:300], seed=3, hidden=(8,), epochs=3, n_threads=1)
    assert np.array_equal(discriminator_score(a, X[:50]), discriminator_score(b, X[:50]))
    with pytest.raises(RareflowError):
        train_discriminator(X, ring[:0])
    with pytest.raises(RareflowError):
        train_oe_classifier(X, np.zeros(len(X)), ring)  # one class only


def test_train_oe_net_any_net_same_as_mlp_path() -> None:
    """``train_oe_net`` with the MLP factory is ``train_oe_classifier``; another net gets K outputs."""
    from rareflow.outliers.training import new_net

    X, y, ring, _ = toy()
    kw = {"seed": 4, "epochs": 3, "n_threads": 1}
    a, _ = train_oe_classifier(X[:300], y[:300], ring[:300], hidden=(8,), **kw)
    b, _ = train_oe_net(lambda K: new_net(2, K, (8,), X[:300]), X[:300], y[:300], ring[:300], **kw)
    assert np.array_equal(classifier_score(a, X[:50]), classifier_score(b, X[:50]))
    lin, hist = train_oe_net(lambda K: torch.nn.Linear(2, K), X[:300], y[:300], ring[:300], n_classes=3, **kw)
    assert lin.out_features == 3 and hist["epochs_run"] >= 1
    assert np.all(np.isfinite(classifier_score(lin, X[:50], "kl")))


def test_mlp_state_round_trip() -> None:
    X, y, ring, _ = toy()
    net, _ = train_oe_classifier(X[:200], y[:200], ring[:200], seed=0, hidden=(8, 8), epochs=2, n_threads=1)
    json, arrays = mlp_state(net)
    back = mlp_from_state(json, arrays)
    assert np.array_equal(classifier_score(net, X[:40]), classifier_score(back, X[:40]))
    assert math.isclose(float(back.std[0]), float(net.std[0]))
