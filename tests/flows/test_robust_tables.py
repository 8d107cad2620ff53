"""Flows and autoencoders train with their defaults on hostile tables (issue 16, section 4).

Generated tables hold what public tabular benchmarks hold: Cauchy and lognormal columns, columns
with 3-10 integer codes, a constant column, a duplicated column, a column in units 1e3 times
larger than the others, and 5% gross outliers 1e4 standard deviations out. Before the soft clip
(``flows/tails.py``) and the bad-batch guards (``training/guards.py``) the ``flow`` detector
stopped at epoch 1 with "gradient norm is inf" on such a table.
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save
from sklearn.metrics import roc_auc_score

from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.flows import Preprocessor
from rareflow.flows.tails import soft_clip, soft_clip_inverse
from rareflow.persistence import load_model, save_model
from rareflow.training import Batch, TrainingDiverged, train
from rareflow.training.guards import BatchGuard, grad_norm

KINDS = ("cauchy", "lognormal", "integer", "normal", "constant", "duplicate", "wide")


def hostile_table(n: int = 2000, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, clean, rare)``: the table, the rows without gross outliers, a label (30% rare rows,
    spread 3x wider around the column medians)."""
    r = np.random.default_rng(seed)
    kinds = [KINDS[j % len(KINDS)] for j in range(d)]
    X = np.empty((n, d))
    for j, kind in enumerate(kinds):
        if kind == "cauchy":
            X[:, j] = r.standard_cauchy(n)
        elif kind == "lognormal":
            X[:, j] = r.lognormal(0.0, 2.5, n)
        elif kind == "integer":
            X[:, j] = r.integers(0, 3 + j % 8, n)  # 3..10 distinct codes
        elif kind == "constant":
            X[:, j] = 3.0
        else:
            X[:, j] = r.normal(5.0, 2.0, n) * (1e3 if kind == "wide" else 1.0)
    rare = r.random(n) < 0.3
    varies = np.array([k not in ("constant", "integer") for k in kinds])
    med = np.median(X, axis=0)
    X[np.ix_(rare, varies)] = med[varies] + 3.0 * (X[np.ix_(rare, varies)] - med[varies])
    gross = r.random(n) < 0.05
    shift = r.normal(0.0, 1.0, (int(gross.sum()), d)) * 1e4 * (X.std(axis=0) + 1.0)
    shift[:, [k == "integer" for k in kinds]] = np.round(shift[:, [k == "integer" for k in kinds]])
    shift[:, [k == "constant" for k in kinds]] = 0.0
    X[gross] += shift
    for j, kind in enumerate(kinds):
        if kind == "duplicate":
            X[:, j] = X[:, 0]
    return X, ~gross, rare.astype(int)


def far_point(X: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """A clean row moved 1e3 IQR (at least 1e3) out in every column that varies."""
    q75, q25 = np.percentile(X[clean], [75, 25], axis=0)
    varies = X.max(axis=0) > X.min(axis=0)
    row = X[np.flatnonzero(clean)[0]].copy()
    row = row + varies * 1e3 * np.maximum(q75 - q25, 1.0)
    dup = [j for j in range(X.shape[1]) if KINDS[j % len(KINDS)] == "duplicate"]
    row[dup] = row[0]
    return np.round(row)


# -- the soft clip and the preprocessing's log-determinant ----------------------------------------
def test_soft_clip_identity_inside_smooth_and_exactly_invertible() -> None:
    bound = torch.tensor([2.0, 10.0, float("inf")], dtype=torch.float64)
    u = torch.tensor([[1.5, -9.99, 1e6], [-2.0, 10.0, -3.0]], dtype=torch.float64)
    y, ladj = soft_clip(u, bound)
    assert torch.equal(y, u) and torch.equal(ladj, torch.zeros(2, dtype=torch.float64))
    far = torch.tensor([[2.5, -1e12, 5.0], [-1e30, 10.0 + 1e-9, 0.0]], dtype=torch.float64)
    y, _ = soft_clip(far, bound)
    assert y[0, 1] == pytest.approx(-(10.0 + np.arcsinh(1e12 - 10.0)), rel=1e-12)
    assert y[1, 0] == pytest.approx(-(2.0 + np.arcsinh(1e30 - 2.0)), rel=1e-12)
    assert torch.allclose(soft_clip_inverse(y, bound)[0], far[0], rtol=1e-9)
    assert torch.allclose(soft_clip_inverse(y, bound)[1, 1:], far[1, 1:], rtol=1e-9)
    # slope and curvature continuous at the bound (asinh(t) = t - t^3/6 + ...)
    eps = 1e-4
    y_in, _ = soft_clip(torch.tensor([[2.0 - eps]], dtype=torch.float64), bound[:1])
    y_out, _ = soft_clip(torch.tensor([[2.0 + eps]], dtype=torch.float64), bound[:1])
    assert float(y_out - y_in) == pytest.approx(2 * eps, rel=1e-8)
    grid = torch.linspace(-1e3, 1e3, 20001, dtype=torch.float64)[:, None]
    assert bool((torch.diff(soft_clip(grid, bound[:1])[0][:, 0]) > 0).all())  # strictly increasing


def test_preprocessing_logdet_equals_autograd_jacobian_on_hostile_rows() -> None:
    X, _, _ = hostile_table(n=1500, d=8, seed=1)
    r = np.random.default_rng(1)
    table = np.column_stack([X[:, [0, 2, 3, 6]], r.lognormal(0.0, 2.5, len(X))])  # + a column to log
    pre = Preprocessor.fit(table)
    pre.eval()
    assert pre.log_mask.any() and pre.dequant_mask.any() and torch.isfinite(pre.tail_bound).all()
    rows = torch.as_tensor(table, dtype=torch.float64)
    beyond = (pre(rows)[0].abs() > 10).any(1)
    pick = torch.cat([torch.nonzero(beyond)[:6, 0], torch.nonzero(~beyond)[:3, 0]])
    assert int(beyond[pick].sum()) >= 3  # rows far beyond the clip bound are checked
    for i in pick.tolist():
        J = torch.autograd.functional.jacobian(lambda t: pre(t[None])[0][0], rows[i])
        sign, logabsdet = torch.linalg.slogdet(J)
        assert sign > 0
        assert float(pre(rows[i][None])[1][0]) == pytest.approx(float(logabsdet), abs=1e-9, rel=1e-9)
    assert torch.allclose(pre.inverse(pre(rows)[0]), rows, rtol=1e-6, atol=1e-6)


def test_tail_compression_leaves_well_behaved_columns_alone() -> None:
    r = np.random.default_rng(0)
    X = np.column_stack([r.normal(3, 2, 5000), r.gamma(3.0, 1.0, 5000), r.uniform(-1, 1, 5000)])
    a, b = Preprocessor.fit(X), Preprocessor.fit(X, tail_bound=None)
    x = torch.as_tensor(X)
    assert torch.equal(a(x)[0], b(x)[0]) and torch.equal(a(x)[1], b(x)[1])
    with pytest.raises(RareflowError, match="tail_bound must be a positive number"):
        Preprocessor.fit(X, tail_bound=-1.0)


def test_scale_of_a_point_mass_column_is_not_set_by_its_outliers() -> None:
    """95% zeros and 5% values 1e6 out: IQR is 0, and the std (~2e5) would squeeze the bulk."""
    r = np.random.default_rng(0)
    col = np.where(r.random(4000) < 0.95, 0.0, 1e6 * r.normal(size=4000)) + 0.01 * r.normal(size=4000)
    pre = Preprocessor.fit(col[:, None], dequantize=False)
    assert float(pre.scale[0]) < 1.0 < np.std(col)


# -- old model files -------------------------------------------------------------------------------
def test_old_model_file_without_tail_bound_scores_exactly_as_before(tmp_path: Path) -> None:
    X, clean, _ = hostile_table(n=800, d=6, seed=2)
    det = get_detector("flow", transforms=2, hidden=(16,), training={"epochs": 1, "progress": False}).fit(X)
    det.model_.pre.tail_bound.fill_(float("inf"))  # the preprocessing of a file saved before the clip
    before = det.decision_function(X)
    path, old = tmp_path / "new.rfm", tmp_path / "old.rfm"
    save_model(det, path)
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(old, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "arrays.safetensors":
                arrays = st_load(data)
                dropped = [k for k in arrays if k.endswith("pre.tail_bound")]
                assert dropped
                data = st_save({k: v for k, v in arrays.items() if k not in dropped})
            zout.writestr(item, data)
    loaded = load_model(old)
    assert not torch.isfinite(loaded.model_.pre.tail_bound).any()
    assert np.array_equal(loaded.decision_function(X), before)


# -- the bad-batch guards --------------------------------------------------------------------------
def test_guard_skips_a_few_bad_batches_then_diverges() -> None:
    g = BatchGuard(limit=3)
    assert g.bad_loss(2.0) is None and g.reference == 2.0
    assert g.bad_loss(2.0 + 1e4 * 2.0 + 1) == "exploded loss" and g.bad_loss(float("nan")) == "loss"
    assert g.bad_grad(float("inf")) == "gradient norm" and g.bad_grad(3.0) is None
    assert g.skip() and g.skip() and g.skip() and not g.skip()
    assert g.bad_metric(float("inf")) == "validation loss" and g.bad_metric(1e6) == "exploded validation loss"
    five = BatchGuard(limit=100)
    assert all(five.skip() for _ in range(5)) and not five.skip()  # 6 bad batches in a row


def test_float32_overflow_of_the_norm_is_recomputed_and_clipped() -> None:
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 3e19)  # each entry finite, the float32 sum of squares is not
    assert not torch.isfinite(torch.nn.utils.get_total_norm([p.grad]))
    norm = grad_norm([p], clip=5.0)
    assert norm == pytest.approx(6e19, rel=1e-6)
    assert float(p.grad.norm()) == pytest.approx(5.0, rel=1e-4)
    p.grad = torch.tensor([1.0, float("inf"), 0.0, 0.0])
    assert grad_norm([p], clip=5.0) == float("inf")


def test_one_bad_batch_is_skipped_and_counted() -> None:
    r = np.random.default_rng(0)
    x = torch.as_tensor(r.normal(size=(1000, 3)), dtype=torch.float32)
    net = torch.nn.Linear(3, 3)
    calls = {"n": 0}

    def loss_fn(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        calls["n"] += 1
        loss = ((model(batch.x) - batch.x) ** 2).mean()
        return loss * float("nan") if calls["n"] == 4 else loss

    h = train(net, loss_fn, Batch(x[:800]), Batch(x[800:]), epochs=3, batch_size=100, progress=False)
    assert h["skipped_batches"] == 1 and not h["diverged"] and h["epochs_run"] == 3
    assert all(torch.isfinite(p).all() for p in net.parameters())


def test_autoencoder_with_lr_10_diverges_or_keeps_the_weights_before() -> None:
    X, _, _ = hostile_table(n=1500, d=8, seed=3)
    kw = dict(training={"epochs": 3, "lr": 10.0, "progress": False})
    with pytest.raises(TrainingDiverged, match=r"^training diverged at epoch \d: exploded (validation )?loss is [0-9.e+]+; "):
        get_detector("autoencoder", **kw).fit(X)
    with pytest.warns(UserWarning, match="diverged"):
        det = get_detector("autoencoder", training={**kw["training"], "on_divergence": "keep"}).fit(X)
    assert det.history_["diverged"]
    scores = det.decision_function(X)
    assert np.isfinite(scores).all() and 0 <= det.threshold_ < 1e6  # a mean squared error, not -9.7e17


# -- every method trains with its defaults ---------------------------------------------------------
TINY = {"flow": dict(transforms=2, hidden=(16,)), "selfsup-flow": dict(transforms=2, hidden=(16,)),
        "flow-classifier": dict(transforms=2, hidden=(16,)), "autoencoder": dict(hidden=(16,), bottleneck=4)}  # fmt: skip


@pytest.mark.parametrize("d", [6, 24, 200])
@pytest.mark.parametrize("method", ["flow", "selfsup-flow", "flow-classifier", "autoencoder"])
def test_methods_train_on_hostile_tables(method: str, d: int) -> None:
    """Defaults except epochs (tiny nets at d = 200): no divergence, no warning, finite scores.

    One-class methods rank a point 1e3 IQR out above every clean training row. The two labelled
    methods score a B-versus-R discriminant, and both classes hold the same gross outliers, so a
    far point has no defined rank there; they must separate the (3x wider) rare rows instead
    (``flow-classifier`` after 20 epochs: its first epoch on such a table is spent shrinking the
    initial flow's 1e18 losses; at d = 200 with tiny nets it does not separate them, see the report).
    """
    X, clean, rare = hostile_table(n=2000, d=d, seed=d)
    params = dict(training={"epochs": 3, "progress": False}, **(TINY[method] if d > 50 else {}))
    if method == "flow-classifier":
        # 20 epochs: at the (64, 64) default width, 10 left d = 24 at AUC 0.36 (seeds 0-3 at 20: 0.93-0.96)
        params.update(ensemble=1, training={"epochs": 20, "progress": False})
    labelled = method in ("selfsup-flow", "flow-classifier")
    limit = method == "selfsup-flow" and d == 24  # documented limit (docs/selfsup-flow.md): it may diverge
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no divergence warning either
        try:
            det = get_detector(method, **params).fit(X, rare if labelled else None)
        except TrainingDiverged as exc:
            if not limit:
                raise
            assert str(exc).startswith("training diverged") and "\n" not in str(exc)  # cleanly, one line
            return
    assert not det.history_.get("diverged", False)
    scores = det.decision_function(np.vstack([X, far_point(X, clean)]))
    assert np.isfinite(scores).all() and np.isfinite(det.threshold_)
    if labelled:
        if not (method == "flow-classifier" and d > 50) and not limit:
            assert roc_auc_score(rare[clean], scores[:-1][clean]) > 0.7
    else:
        bulk = scores[:-1][clean]
        assert scores[-1] > np.max(bulk), (scores[-1], np.quantile(bulk, [0.5, 0.99, 1.0]))
