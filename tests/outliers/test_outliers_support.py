"""Generated outliers stay inside the training data's physical support (issue 15 item 7)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rareflow.api import outliers_command
from rareflow.cli import main
from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.outliers.io import read_outlier_params
from rareflow.outliers.latent import Generated
from rareflow.outliers.support import Support, fill_inside, support_of
from rareflow.persistence import load_model, save_model

FEATURES = ["width", "conc", "dist"]


def bounded_table(n: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A positive width, a fraction in (0, 1) and a distance >= 0: columns with physical bounds."""
    r = np.random.default_rng(seed)
    return pd.DataFrame({"width": r.gamma(2.0, 0.1, n), "conc": r.beta(2.0, 5.0, n), "dist": np.abs(r.normal(1.0, 0.4, n))})


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory):
    X = bounded_table()
    det = get_detector("flow", transforms=2, hidden=[16, 16], training={"epochs": 5, "progress": False}).fit(X)
    path = tmp_path_factory.mktemp("support") / "flow.rfm"
    save_model(det, path)
    return path, X


def gaussian_draw(m: int, attempt: int) -> Generated:
    x = np.random.default_rng(attempt).normal(size=(m, 2))
    return Generated(x=x, z=x, radius=np.linalg.norm(x, axis=1), p=np.zeros(m), method="test",
                     params={"A": np.arange(m, dtype=float)})  # fmt: skip


def test_fill_inside_rejects_counts_and_keeps_per_row_values_aligned() -> None:
    box = Support(np.array([-1.0, -1.0]), np.array([1.0, 1.0]), "test")
    first = gaussian_draw(500, 0)
    expected_rejected_first = int((~box.inside(first.x)).sum())
    gen, rejected = fill_inside(gaussian_draw, 500, box)
    assert len(gen.x) == 500 and box.inside(gen.x).all()
    assert rejected >= expected_rejected_first > 0
    np.testing.assert_array_equal(gen.radius, np.linalg.norm(gen.x, axis=1))  # rows stay together
    assert gen.params["A"].shape == (500,)
    inside_first = first.x[box.inside(first.x)]
    np.testing.assert_array_equal(gen.x[: len(inside_first)], inside_first)  # attempt 0 kept in order
    same, none = fill_inside(gaussian_draw, 50, None)
    assert none == 0 and np.array_equal(same.x, gaussian_draw(50, 0).x)


def test_fill_inside_gives_one_line_when_the_support_cannot_be_reached() -> None:
    tiny = Support(np.array([10.0, 10.0]), np.array([10.1, 10.1]), "training data")
    with pytest.raises(RareflowError, match=r"^only 0 of 20 generated points fell inside .* smaller --sigma") as err:
        fill_inside(gaussian_draw, 20, tiny, max_tries=3)
    assert "\n" not in str(err.value)


def test_outliers_at_3_sigma_stay_inside_the_training_box(flow_file, tmp_path) -> None:
    path, X = flow_file
    lo, hi = X.min().to_numpy(), X.max().to_numpy()
    raw = tmp_path / "raw.parquet"
    kept = tmp_path / "kept.parquet"
    off = outliers_command(path, 2000, "extremal", 3.0, 0, raw, support=False)
    on = outliers_command(path, 2000, "extremal", 3.0, 0, kept)
    g_raw, g = pd.read_parquet(raw), pd.read_parquet(kept)
    outside_raw = int(((g_raw[FEATURES] < lo) | (g_raw[FEATURES] > hi)).any(axis=1).sum())
    assert outside_raw > 0, "a 3-sigma shell of a 5-epoch flow should leave the box somewhere"
    assert off["support"] is None and off["outside_support_rejected"] == 0
    assert len(g) == 2000 and not ((g[FEATURES] < lo) | (g[FEATURES] > hi)).any(axis=None)
    assert on["outside_support_rejected"] >= outside_raw  # attempt 0 is the unchecked draw
    meta = read_outlier_params(kept)
    assert meta["outside_support_rejected"] == on["outside_support_rejected"]
    assert meta["support"]["source"] == "training data"
    np.testing.assert_allclose(meta["support"]["low"], lo)
    assert np.allclose(g["gen_radius"], g["gen_radius"].iloc[0])  # extremal at one sigma: one radius


def test_the_command_says_how_many_were_redrawn(flow_file, tmp_path, capsys) -> None:
    path, _ = flow_file
    out = tmp_path / "o.parquet"
    assert main(["outliers", "--model", str(path), "--n", "300", "--sigma", "3", "--out", str(out)]) == 0
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "wrote 300 extremal points" in line and "draws outside the support (training data) were rejected" in line


def test_support_is_saved_and_old_files_fall_back_to_the_preprocessing(flow_file) -> None:
    path, X = flow_file
    det = load_model(path)
    np.testing.assert_allclose(det.support_, np.vstack([X.min(), X.max()]))
    del det.support_  # a model file saved before the support existed
    box = support_of(det, det.model_)
    assert box.source.startswith("preprocessing")
    logged = det.model_.pre.log_mask.numpy()
    assert (box.low[logged] > 0).all() and np.isneginf(box.low[~logged]).all() and np.isinf(box.high).all()
