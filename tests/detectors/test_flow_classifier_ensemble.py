"""``flow-classifier`` trains its members stacked (flows/ensemble.py): equal to training each member
alone with the old loop and the old two-pass loss, within the seed spread of sequential ensembles,
deterministic per seed; files written before the change (commit d6d2ce4) load and score the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from rareflow.detectors import get_detector
from rareflow.detectors.flow_classifier import ClassFlows
from rareflow.flows.losses import nll_loss, trimmed_nll_loss
from rareflow.flows.selfsup import class_nll_loss
from rareflow.persistence import load_model
from rareflow.training import INIT, TRAIN, make_batch, seeded, train
from tests.conftest import toy_table

DATA = Path(__file__).parent / "data"
TRAINING = dict(epochs=6, batch_size=128, lr=3e-3, patience=3, progress=False)
SMALL = dict(transforms=2, hidden=[16, 16], training=TRAINING)


def _xy(seed: int = 0, n_bulk: int = 900, n_rare: int = 300) -> tuple[np.ndarray, np.ndarray]:
    df = toy_table(n_bulk=n_bulk, n_rare=n_rare, seed=seed)
    return df[["a", "b", "c"]].to_numpy(float), (df["label"] == "gamma").to_numpy().astype(int)


def _sequential(mode: str, disc: float, ensemble: int, random_state: int, X: np.ndarray, y: np.ndarray) -> ClassFlows:
    """The members trained one after another with ``rareflow.training.train`` and the two-pass class NLL
    (the reference): same initial weights, validation rows and data-order seeds as the detector."""
    det = get_detector("flow-classifier", mode=mode, ensemble=ensemble, discriminative=disc, random_state=random_state, **SMALL)
    with seeded(det._seed(INIT)):
        model = det._build_model(X, y, None)
    tr, va = det._split(X, y)
    yf = y.astype(np.float32)
    trb, vab = make_batch(X, tr, yf), make_batch(X, va, yf)
    prior, trim = det.train_log_prior_, det.val_trim
    if mode == "two-flows" and disc == 0:  # one density per class, each on its own rows
        for c, side in enumerate(("bulk", "rare")):
            rows_tr, rows_va = tr[y[tr] == c], va[y[va] == c]
            for k, m in enumerate(model.models[c::2]):
                train(m, nll_loss, make_batch(X, rows_tr), make_batch(X, rows_va), val_loss_fn=trimmed_nll_loss(trim),
                      seed=det._member_seed(TRAIN, side, k), **TRAINING)  # fmt: skip
        return model.eval()
    per = 2 if mode == "two-flows" else 1
    for k in range(ensemble):
        view = ClassFlows(model.models[per * k : per * k + per], conditional=mode == "conditional")
        train(view, class_nll_loss(disc, prior), trb, vab, val_loss_fn=class_nll_loss(disc, prior, trim),
              seed=det._member_seed(TRAIN, k), **TRAINING)  # fmt: skip
    return model.eval()


def _ratio(model: ClassFlows, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        lp0, lp1 = model.log_prob_pair(torch.as_tensor(X, dtype=torch.float32))
    return (lp1 - lp0).double().numpy()


@pytest.mark.parametrize("mode,disc", [("conditional", 0.0), ("conditional", 1.0), ("two-flows", 0.0), ("two-flows", 1.0)])
def test_stacked_members_equal_members_trained_alone(mode: str, disc: float) -> None:
    """Own init, data order and early stopping per member: the stacked fit gives the scores of the
    members trained one by one (float32 round-off only), with the one-pass loss where it applies."""
    X, y = _xy()
    Xt = _xy(seed=1, n_bulk=300, n_rare=100)[0]
    det = get_detector("flow-classifier", mode=mode, ensemble=3, discriminative=disc, random_state=4, **SMALL).fit(X, y)
    ref = _ratio(_sequential(mode, disc, 3, 4, X, y), Xt)
    assert np.allclose(det.log_likelihood_ratio(Xt), ref, atol=2e-3, rtol=1e-4)
    hist = det.history_
    runs = [h["epochs_run"] for h in (hist["members"] if "members" in hist else hist["bulk"] + hist["rare"])]
    assert len(runs) == (6 if mode == "two-flows" and disc == 0 else 3) and min(runs) >= 1


def test_scores_within_the_seed_spread_of_sequential_ensembles() -> None:
    """Against sequential ensembles of three seeds: the stacked scores sit far inside the spread over
    seeds (mean |difference| < 5% of the seed-to-seed one) and the AUC within the AUC spread."""
    X, y = _xy()
    Xt, yt = _xy(seed=2, n_bulk=600, n_rare=200)
    seq = [_ratio(_sequential("conditional", 0.0, 3, s, X, y), Xt) for s in (0, 1, 2)]
    stacked = get_detector("flow-classifier", ensemble=3, random_state=0, **SMALL).fit(X, y).log_likelihood_ratio(Xt)
    spread = np.mean([np.abs(seq[i] - seq[j]).mean() for i, j in ((0, 1), (0, 2), (1, 2))])
    assert spread > 0.05 and np.abs(stacked - seq[0]).mean() < 0.05 * spread
    aucs = [roc_auc_score(yt, s) for s in seq]
    assert abs(roc_auc_score(yt, stacked) - aucs[0]) <= max(max(aucs) - min(aucs), 1e-3)


@pytest.mark.parametrize("mode", ["conditional", "two-flows"])
def test_same_seed_same_scores_other_seed_other_scores(mode: str) -> None:
    X, y = _xy()
    fit = lambda s: get_detector("flow-classifier", mode=mode, ensemble=2, random_state=s, **SMALL).fit(X, y)  # noqa: E731
    a, b, c = fit(3).decision_function(X), fit(3).decision_function(X), fit(4).decision_function(X)
    assert np.array_equal(a, b) and not np.allclose(a, c, atol=1e-3)


def test_plateau_schedule_trains_members_in_turn() -> None:
    X, y = _xy()
    det = get_detector("flow-classifier", ensemble=2, **{**SMALL, "training": {**TRAINING, "schedule": "plateau"}}).fit(X, y)
    assert len(det.history_["members"]) == 2 and roc_auc_score(y, det.decision_function(X)) > 0.95


@pytest.mark.parametrize("mode", ["conditional", "two-flows"])
def test_files_from_before_the_change_score_identically(mode: str) -> None:
    """Model files written by commit d6d2ce4 (one ``train`` of all members) load and give the same
    scores and probabilities (stored with the file when it was written), up to float32 round-off:
    scoring now runs the couplings' linears through oneDNN (flows/model.py ``fused_linear``)."""
    det = load_model(DATA / f"flow_classifier_{mode}_d6d2ce4.rareflow")
    expected = np.load(DATA / f"flow_classifier_{mode}_d6d2ce4_scores.npy")
    df = toy_table(n_bulk=20, n_rare=10, seed=1)[["a", "b", "c"]]
    assert det.model_.members == 2 and det.model_.conditional == (mode == "conditional")
    np.testing.assert_allclose(det.decision_function(df), expected[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(det.predict_proba(df)[:, 1], expected[:, 1], rtol=1e-5, atol=1e-5)
