"""Acceptance on real images (skipped without ../shared/data): digits in-distribution, notMNIST
letters as outliers, a flow on digit PCA features generating the outliers (examples/digits_vs_letters.py).

* the best generated-outlier discriminator reaches AUC >= 0.80 on letters vs digits
  (Bungert 2021's best synthetic-outlier discriminator on letters: 0.69);
* outlier exposure with generated outliers beats the same classifier without outliers, in each
  of 3 seeds and on average.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from tests.conftest import SHARED_DATA, REPO, require_shared

pytestmark = [pytest.mark.slow, pytest.mark.shared_data]


def _example():
    spec = importlib.util.spec_from_file_location("digits_vs_letters", REPO / "examples" / "digits_vs_letters.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["digits_vs_letters"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup():
    require_shared(SHARED_DATA / "images" / "mnist_test")
    require_shared(SHARED_DATA / "images" / "notmnist_test")
    ex = _example()
    cfg = ex.Config(n_gen=4000)
    digits, labels, letters = ex.load_images(SHARED_DATA)
    split = ex.make_split(digits, labels, letters, 0, cfg)
    flow = ex.fit_flow(split.X_train, 0, cfg)
    return ex, cfg, split, flow


def test_generated_outlier_discriminator_reaches_auc_080(setup) -> None:
    ex, cfg, sp, flow = setup
    X_eval, y_eval = sp.eval_set()
    aucs = {}
    for method, p in (("tail", 2.0), ("extremal", 2.5)):
        X_out = ex.generated(flow, None, method, p, cfg.n_gen, seed=1)
        net, _ = ex.train_discriminator(sp.X_train, X_out, seed=0)
        aucs[(method, p)] = ex.metrics(y_eval, ex.discriminator_score(net, X_eval))["auc"]
    assert max(aucs.values()) >= 0.80, aucs


def test_outlier_exposure_beats_plain_classifier_over_3_seeds(setup) -> None:
    ex, cfg, sp, flow = setup
    X_eval, y_eval = sp.eval_set()
    oe, plain = [], []
    for seed in (0, 1, 2):
        X_out = ex.generated(flow, None, "tail", 2.0, cfg.n_gen, seed=100 + seed)
        net, _ = ex.train_oe_classifier(sp.X_train, sp.y_train, X_out, beta=0.5, n_classes=10, seed=seed)
        oe.append(ex.metrics(y_eval, ex.classifier_score(net, X_eval))["auc"])
        net, _ = ex.train_oe_classifier(sp.X_train, sp.y_train, None, n_classes=10, seed=seed)
        plain.append(ex.metrics(y_eval, ex.classifier_score(net, X_eval))["auc"])
    assert all(a > b for a, b in zip(oe, plain)), (oe, plain)
    assert np.mean(oe) > np.mean(plain) + 0.03, (oe, plain)
