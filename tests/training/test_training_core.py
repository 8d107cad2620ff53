"""The torch core: TrainConfig validation, predict_batched, weight import safety, old model files."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch

from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model
from rareflow.training import TrainConfig, child_seed, load_module, module_arrays, predict_batched, train_config
from tests.conftest import toy_table

TINY = {"transforms": 2, "hidden": [8, 8]}
TRAIN = {"epochs": 2, "batch_size": 128, "progress": False}


def _xy():
    df = toy_table(seed=0)
    return df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)


@pytest.mark.parametrize(("training", "field"), [({"epochs": 0}, "epochs"), ({"lr": "abc"}, "lr"),
                                                 ({"schedule": "step"}, "schedule"), ({"nope": 1}, "nope"),
                                                 ({"on_divergence": "ignore"}, "on_divergence")])  # fmt: skip
def test_bad_training_values_name_the_field(training, field) -> None:
    with pytest.raises(RareflowError, match=rf"^training\.{field} ") as err:
        train_config(training)
    assert "\n" not in str(err.value)
    with pytest.raises(RareflowError, match=rf"training\.{field}"):
        get_detector("flow", training=training, **TINY).fit(*_xy())


def test_defaults_overlay_and_top_level_fields_move_into_training() -> None:
    assert train_config(None, {"epochs": 7}).epochs == 7
    assert train_config({"epochs": 3}, {"epochs": 7}).epochs == 3
    det = get_detector("nn-classifier", epochs=3, training={"lr": 0.01, "epochs": 9})
    assert det.training == {"lr": 0.01, "epochs": 3}  # the top-level value wins
    cfg = det.training_config()
    assert (cfg.epochs, cfg.lr, cfg.weight_decay) == (3, 0.01, 1e-4)  # nn-classifier's own default
    assert get_detector("selfsup-flow", b_class="rare").fit_on == "rare"


def test_seed_none_stays_none() -> None:
    assert child_seed(None, "split") is None and child_seed(0, "split") == child_seed(0, "split")
    assert child_seed(0, "split") != child_seed(0, "init")


def test_predict_batched_matches_one_pass() -> None:
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    X = np.random.default_rng(0).normal(size=(25, 3))
    out = predict_batched(net, X, batch_size=4)
    with torch.no_grad():
        ref = net(torch.as_tensor(X, dtype=torch.float32)).double().numpy()
    assert out.shape == (25, 2) and out.dtype == np.float64
    # float32 GEMMs of 4 rows and of 25 rows may sum in another order (a few float32 ulps apart)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    assert predict_batched(net, X[:0], batch_size=4).shape == (0, 2)


def test_load_module_refuses_wrong_shapes_before_building() -> None:
    arrays = module_arrays(torch.nn.Linear(3, 2))
    built = []

    def build() -> torch.nn.Module:
        built.append(torch.empty(0).device.type)
        return torch.nn.Linear(3, 4)

    with pytest.raises(RareflowError, match=r"^damaged model file: .*weight: stored \(2, 3\), built \(4, 3\)"):
        load_module(build, arrays, what="net")
    assert built == ["meta"]  # only the meta probe ran


def _rewrite(path, edit) -> None:
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(members["meta.json"])
    edit(meta)
    members["meta.json"] = json.dumps(meta).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())


@pytest.mark.parametrize("method", ["flow", "autoencoder", "nn-classifier"])
def test_architecture_bomb_fails_fast_without_allocating(tmp_path, method) -> None:
    X, y = _xy()
    det = get_detector(method, training=TRAIN, **(TINY if method == "flow" else {"hidden": [8]})).fit(X, y)
    path = tmp_path / "bomb.rfm"
    save_model(det, path)

    def bomb(meta) -> None:
        state = meta["state"]
        if method == "flow":
            state["model"]["config"].update(transforms=64, hidden=[200000, 200000])
        elif method == "autoencoder":
            state["config"]["hidden"] = [200000, 200000]
        else:
            state["config"]["hidden"] = [200000, 200000]

    _rewrite(path, bomb)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(RareflowError, match="damaged model file"):
        load_model(path)
    seconds = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 2.0 and peak < 100 * 2**20


@pytest.mark.parametrize("method", ["flow", "autoencoder", "nn-classifier", "flow-classifier", "selfsup-flow"])
def test_files_with_flat_training_parameters_still_load(tmp_path, method) -> None:
    """Files saved before ``training`` existed store epochs, lr, ... as flat parameters."""
    X, y = _xy()
    arch = {"autoencoder": {"hidden": [8]}, "nn-classifier": {"hidden": [8]}}.get(method, TINY)
    extra = {"flow-classifier": {"ensemble": 1}, "selfsup-flow": {"warmup_epochs": 1}}.get(method, {})
    det = get_detector(method, training=TRAIN, **arch, **extra).fit(X, y)
    path = tmp_path / "old.rfm"
    save_model(det, path)

    def flatten(meta) -> None:
        params = meta["params"]
        flat = TrainConfig(**{**det.training_defaults, **params.pop("training")}).model_dump()
        params.update(flat)
        if method == "selfsup-flow":
            params["b_class"] = params.pop("fit_on")
        if method == "nn-classifier":  # architecture at the top level of the state, as saved before
            meta["state"].update(meta["state"].pop("config"))

    _rewrite(path, flatten)
    back = load_model(path)
    assert back.training_config().epochs == 2 and back.training_config().progress is False
    np.testing.assert_allclose(back.decision_function(X[:50]), det.decision_function(X[:50]), rtol=1e-6, atol=1e-6)


def test_whole_set_criterion_is_not_chunked() -> None:
    """An AUC-type validation criterion (``whole_set``) sees every row at once: chunks of rows of one
    class would make it NaN (the selfsup-flow validation used to diverge when chunks got smaller)."""
    import torch

    from rareflow.flows.selfsup import selfsup_validation
    from rareflow.training import Batch, evaluate_loss

    class Gauss(torch.nn.Module):
        def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
            return -0.5 * (x**2).sum(1)

    x = torch.cat([torch.zeros(50, 2), torch.full((50, 2), 3.0)])
    label = torch.cat([torch.zeros(50), torch.ones(50)])  # B rows first, then R rows
    data = Batch(x=x, label=label)
    one_pass = float(selfsup_validation()(Gauss(), data))
    assert evaluate_loss(Gauss(), selfsup_validation(), data, batch_size=16) == pytest.approx(one_pass)


def test_stacked_guard_decides_as_one_batch_guard_per_member() -> None:
    """The stacked (tensor) guard of train_ensemble takes, member by member, the decisions of the
    scalar BatchGuard of train() on the same losses and gradient norms (NaN, inf, explosions)."""
    import math

    from rareflow.training.guards import BatchGuard, StackedGuard

    r = np.random.default_rng(3)
    members, steps, limit = 3, 60, 7
    losses = r.normal(10.0, 1.0, (steps, members))
    norms = r.lognormal(0.0, 1.0, (steps, members))
    for arr, values in ((losses, [math.nan, math.inf, 1e9]), (norms, [math.nan, math.inf])):
        hit = r.random(arr.shape) < 0.12
        arr[hit] = r.choice(values, int(hit.sum()))
    losses[0, 2] = math.nan  # member 2's first batch is bad: its reference is a later one
    present = np.ones(members, bool)
    stacked, scalars = StackedGuard(members, limit), [BatchGuard(limit) for _ in range(members)]
    for s in range(steps):
        bad = stacked.bad(torch.tensor(losses[s]), torch.tensor(norms[s]), torch.tensor(present)).numpy()
        for k, g in enumerate(scalars):
            if not present[k]:
                continue
            expect = g.bad_loss(losses[s, k]) is not None or g.bad_grad(norms[s, k]) is not None
            ok = g.skip() if expect else True
            assert bad[k] == expect, (s, k)
            assert bool(stacked.over_limit()[k]) == (not ok or not (g.skipped <= limit and g.in_a_row <= 5)), (s, k)
            if not ok:
                present[k] = False  # diverged: train() would stop here
    assert not present.all()  # the test reached the limits, so it checks them


def test_class_balanced_weights_give_each_class_half() -> None:
    from rareflow.training import class_balanced_weights

    y = np.array([0, 0, 0, 1, 0, 1, 0, 0])
    w = np.array([1.0, 2.0, 1.0, 5.0, 1.0, 1.0, 3.0, 1.0])
    b = class_balanced_weights(y, w)
    assert np.isclose(b[y == 0].sum(), len(y) / 2) and np.isclose(b[y == 1].sum(), len(y) / 2)
    np.testing.assert_allclose(b[y == 0] / b[y == 0].sum(), w[y == 0] / w[y == 0].sum())  # shape within a class kept
    np.testing.assert_array_equal(class_balanced_weights(y, w, balance=False), w)
    np.testing.assert_array_equal(class_balanced_weights(y, None, balance=False), np.ones(len(y)))
