"""Acceptance on real images (skipped without ../shared/data): digits in-distribution, notMNIST
letters as outliers, a flow on digit PCA features generating the outliers (examples/digits_vs_letters.py).

* the best generated-outlier discriminator reaches AUC >= 0.80 on letters vs digits
  (Bungert 2021's best synthetic-outlier discriminator on letters: 0.69);
* outlier exposure with generated outliers beats the same classifier without outliers, in each
  of 3 seeds and on average (these two: slow);
* ``--classifier cnn`` runs end to end on a small subset (fast).
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from tests.conftest import REPO, SHARED_DATA, require_shared

pytestmark = [pytest.mark.shared_data]


def _example():
    spec = importlib.util.spec_from_file_location("digits_vs_letters", REPO / "examples" / "digits_vs_letters.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["digits_vs_letters"] = module
    spec.loader.exec_module(module)
    return module


def _require_images() -> None:
    require_shared(SHARED_DATA / "images" / "mnist_test")
    require_shared(SHARED_DATA / "images" / "notmnist_test")


@pytest.fixture(scope="module")
def setup():
    _require_images()
    ex = _example()
    cfg = ex.Config(n_gen=4000)
    digits, labels, letters = ex.load_images(SHARED_DATA)
    split = ex.make_split(digits, labels, letters, 0, cfg)
    flow = ex.fit_flow(split.X_train, 0, cfg)
    return ex, cfg, split, flow


@pytest.mark.slow
def test_generated_outlier_discriminator_reaches_auc_080(setup) -> None:
    ex, cfg, sp, flow = setup
    X_eval, y_eval = sp.eval_set()
    aucs = {}
    for method, p in (("tail", 2.0), ("extremal", 2.5)):
        X_out = ex.generated(flow, None, method, p, cfg.n_gen, seed=1)
        net, _ = ex.train_discriminator(sp.X_train, X_out, seed=0)
        aucs[(method, p)] = ex.metrics(y_eval, ex.discriminator_score(net, X_eval))["auc"]
    assert max(aucs.values()) >= 0.80, aucs


@pytest.mark.slow
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


def test_cnn_classifier_runs_end_to_end_on_a_subset() -> None:
    """``--classifier cnn`` on 600 digits / 400 letters, one generator, a 2-coupling flow: every
    classifier row gets a CNN AUC in (0, 1] and an accuracy, the table gets the CNN columns."""
    _require_images()
    ex = _example()
    digits, labels, letters = ex.load_images(SHARED_DATA)
    cfg = ex.Config(n_gen=200, flow_epochs=3, transforms=2, n_letters_test=100, classifiers=["cnn"],
                    generators=[("INN, chi tail, p > 2.0", "tail", 2.0)])  # fmt: skip
    rows = ex.run_seed(digits[:600], labels[:600], letters[:400], 0, cfg, log=lambda _: None)
    sp = rows.pop("_context")["split"]
    assert sp.eval_images().shape == (300 + 100, 784) and 0.0 <= sp.decode(sp.X_train).min()
    for name in ("INN, chi tail, p > 2.0", "letters (real outliers, oracle)", "none"):
        assert "oe" not in rows[name], name
        assert 0.0 < rows[name]["oe_cnn"]["auc"] <= 1.0 and 0.0 <= rows[name]["oe_cnn"]["acc"] <= 1.0, rows[name]
    assert 0.0 < rows["INN, chi tail, p > 2.0"]["disc"]["auc"] <= 1.0
    md = ex.markdown(ex.aggregate([rows]), [0], cfg, 1.0)
    assert "OE CNN AUC" in md and "OE classifier AUC" not in md and "MLP on the PCA features" in md
