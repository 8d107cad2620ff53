"""The energy study wired into compare/evaluate: per-bin cuts on the calibration rows, sensitivity
from the simulation record, bad binning, and the gammaness every detector carries."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from rareflow.cli import main
from rareflow.config import parse_config
from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.evaluation.binned import aggregate_seeds, evaluate_binned, make_edges
from rareflow.evaluation.runner import build_detector, load_experiment_data, make_split, run_experiment
from rareflow.persistence import load_model, save_model
from rareflow.seeding import method_seed, seed_everything

pytest.importorskip("pyirf")

SIM = {"source": "simulate", "simulate": {"n_events": 3000}}
METRICS = ("cut", "rare_efficiency", "bulk_acceptance", "q_factor", "auc", "n_eff_rare", "n_eff_bulk")


def _cfg(**over):
    raw = {"data": SIM, "scenario": {"seeds": [0, 1]}, "methods": [{"name": "gbdt", "params": {"max_iter": 40}}]}
    return parse_config({**raw, **over})


@pytest.fixture(scope="module")
def run():
    cfg = _cfg()
    return cfg, run_experiment(cfg)


def _by_hand(cfg):
    """Each split's per-bin frame and test scores, fitted here exactly as the runner fits."""
    ds = load_experiment_data(cfg, 0)
    energy = ds.frame["true_energy"].to_numpy()
    edges = make_edges(energy[ds.y == 1], per_decade=5)
    method = cfg.methods[0]
    out = {}
    for seed in cfg.scenario.seeds:
        split = make_split(cfg, ds.y, seed)
        seed_everything(method_seed(seed, method.name))
        det = build_detector(cfg, method, seed)
        det.fit(ds.X.iloc[split.fit_idx], ds.y[split.fit_idx])
        cal, test = split.calib_idx, split.test_idx
        det.set_threshold_from(ds.X.iloc[cal], ds.y[cal])
        s_cal, s_test = det.decision_function(ds.X.iloc[cal]), det.decision_function(ds.X.iloc[test])
        frame = evaluate_binned(
            (s_cal, ds.y[cal], energy[cal]), (s_test, ds.y[test], energy[test]), edges,
            test_weight=split.test_weight, rare_efficiency=0.7,
        )  # fmt: skip
        out[seed] = (ds, split, frame, s_test)
    return edges, out


def test_per_bin_equals_binned_run_by_hand(run):
    cfg, result = run
    edges, hand = _by_hand(cfg)
    pb = result.per_bin
    assert pb["column"] == "true_energy" and pb["proxy"] is False and pb["rule"] == "rare_efficiency"
    np.testing.assert_allclose(pb["edges"], edges)
    want = aggregate_seeds([f for *_, f, _ in hand.values()])
    got = pd.DataFrame(pb["methods"]["gbdt"])
    assert len(got) == len(edges) - 1
    for m in METRICS:
        np.testing.assert_allclose(got[f"{m}_mean"], want[f"{m}_mean"], equal_nan=True, err_msg=m)
        np.testing.assert_allclose(got[f"{m}_std"], want[f"{m}_std"], equal_nan=True, err_msg=m)
    np.testing.assert_array_equal(got["low_statistics"], want["low_statistics"])
    # the per-bin cut holds ~70 % of the test gammas where the bins are well filled
    good = (got["n_test_rare"] >= 30) & ~got["cut_filled"]
    assert good.any() and np.all(np.abs(got.loc[good, "rare_efficiency_mean"] - 0.7) < 0.2)


def test_sensitivity_equals_weights_and_cuts_by_hand(run):
    from rareflow.evaluation.sensitivity import binned_sensitivity, event_weights

    cfg, result = run
    _, hand = _by_hand(cfg)
    sens = result.sensitivity
    assert sens["available"] and sens["obstime_h"] == 50.0
    rel = []
    for ds, split, frame, s_test in hand.values():
        lab = ds.frame["label"].to_numpy()
        t = split.test_idx
        keep = np.isin(lab[t], ["gamma", "proton"])
        w = np.zeros(len(t))
        for p in ("gamma", "proton"):
            m = lab[t] == p
            frac = m.sum() / (lab == p).sum()
            w[m] = event_weights(ds.frame["true_energy"].to_numpy()[t][m], ds.simulation, p, sample_fraction=frac)
        s = binned_sensitivity(s_test[keep], ds.y[t][keep], ds.frame["true_energy"].to_numpy()[t][keep], w[keep], frame)
        rel.append(s["relative_sensitivity"].replace(np.inf, np.nan).to_numpy(float))
    want = np.nanmean(np.vstack(rel), axis=0)
    got = np.asarray([r["relative_sensitivity_mean"] for r in sens["methods"]["gbdt"]], dtype=float)
    np.testing.assert_allclose(got, want, equal_nan=True)
    assert np.isfinite(got).any()
    exp = sens["expected"]
    assert 0 < exp["rare_fraction"] < 0.5 and sens["configured_test_rare_fraction"] == cfg.scenario.test_rare_fraction


def test_simulation_record_survives_simulate_to_compare(tmp_path, run):
    _, direct = run
    table = tmp_path / "sim.parquet"
    assert main(["simulate", "--n-events", "3000", "--out", str(table), "--seed", "0", "-q"]) == 0
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(
        f"data: {{source: table, path: {table}}}\nscenario: {{seeds: [0, 1]}}\n"
        "methods: [{name: gbdt, params: {max_iter: 40}}]\n"
    )
    assert main(["compare", "--config", str(cfg_path), "--out", str(tmp_path / "out"), "-q"]) == 0
    doc = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert doc["sensitivity"]["available"] is True
    assert doc["sensitivity"]["expected"]["n_rare"] == pytest.approx(direct.sensitivity["expected"]["n_rare"])
    assert (tmp_path / "out" / "sensitivity_vs_energy.png").is_file()
    assert (tmp_path / "out" / "efficiency_vs_energy.png").is_file()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Per energy bin" in html and "expected rare fraction" in html
    # the same table as CSV has no record: compare runs, and says why there is no sensitivity
    pd.read_parquet(table).to_csv(tmp_path / "sim.csv", index=False)
    cfg_path.write_text(cfg_path.read_text().replace(str(table), str(tmp_path / "sim.csv")))
    assert main(["compare", "--config", str(cfg_path), "--out", str(tmp_path / "out2"), "-q"]) == 0
    doc = json.loads((tmp_path / "out2" / "metrics.json").read_text())
    assert doc["sensitivity"]["available"] is False and "simulation record" in doc["sensitivity"]["reason"]
    assert doc["per_bin"]["methods"]["gbdt"]


@pytest.mark.parametrize(
    "binning, match",
    [
        ("{column: no_such}", "no bin column 'no_such'"),
        ("{edges: [0.7, 1.0, 1.0001, 300]}", "holds no test events"),
        ("{range: [0, 10]}", "binning.range"),
        ("{edges: [3, 2]}", "strictly increasing"),
    ],
)
def test_bad_binning_is_one_line_and_writes_nothing(tmp_path, capsys, binning, match):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{source: simulate, simulate: {{n_events: 1500}}}}\nscenario: {{seeds: [0]}}\nmethods: [mahalanobis]\nbinning: {binning}\n")
    out = tmp_path / "out"
    assert main(["compare", "--config", str(cfg), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err
    assert not out.exists()


def test_sensitivity_required_without_record_fails_before_training(tmp_path):
    cfg = _cfg(sensitivity={"enabled": True}, data={**SIM, "simulate": {"n_events": 1500, "source": "diffuse"}})
    with pytest.raises(RareflowError, match="sensitivity.*diffuse"):
        run_experiment(cfg)


def test_evaluate_bin_column_uses_the_files_cut(tmp_path, run):
    cfg, result = run
    scores = tmp_path / "scores.parquet"
    result.scores.to_parquet(scores)
    out = tmp_path / "m.json"
    assert main(["evaluate", "--scores", str(scores), "--out", str(out), "--bin-column", "true_energy", "--bin-edges", "1,10,100", "-q"]) == 0
    rows = json.loads(out.read_text())["per_bin"]["methods"]["gbdt"]
    g = result.scores[(result.scores["seed"] == 0)]
    m = (g["true_energy"] >= 1) & (g["true_energy"] < 10) & (g["y"] == 1)
    eff0 = float((g.loc[m, "score"] >= g["threshold"].iloc[0]).mean())
    g1 = result.scores[(result.scores["seed"] == 1)]
    m1 = (g1["true_energy"] >= 1) & (g1["true_energy"] < 10) & (g1["y"] == 1)
    eff1 = float((g1.loc[m1, "score"] >= g1["threshold"].iloc[0]).mean())
    assert rows[0]["rare_efficiency_mean"] == pytest.approx((eff0 + eff1) / 2)
    assert main(["evaluate", "--scores", str(scores), "--out", str(out), "--bin-edges", "1,10", "-q"]) == 2


# -- gammaness --------------------------------------------------------------------------------------
def _toy(n=600, seed=0):
    r = np.random.default_rng(seed)
    y = (r.random(n) < 0.4).astype(int)
    X = pd.DataFrame({"a": r.normal(0, 1, n) + 1.5 * y, "b": r.normal(0, 1, n)})
    return X, y


@pytest.mark.parametrize("name, kw, labelled, method", [
    ("gbdt", {"max_iter": 30}, True, "centred-isotonic"),
    ("mahalanobis", {}, True, "centred-isotonic"),  # one-class: its class + the other class it left out
    ("mahalanobis", {}, False, "training-ecdf"),
])  # fmt: skip
def test_gammaness_monotone_and_saved(tmp_path, name, kw, labelled, method):
    X, y = _toy()
    det = get_detector(name, **kw).fit(X, y if labelled else None)
    assert det.gammaness_.method == method
    s, g = det.decision_function(X), det.gammaness(X)
    assert np.all((g > 0) & (g < 1))
    order = np.argsort(s)
    assert np.all(np.diff(g[order]) >= 0) and np.all(np.diff(g[order])[np.diff(s[order]) > 0] > 0)
    path = tmp_path / "m.rfm"
    save_model(det, path)
    back = load_model(path)
    np.testing.assert_array_equal(back.gammaness(X), g)


def test_old_model_without_gammaness_loads_and_scores(tmp_path):
    X, y = _toy()
    det = get_detector("mahalanobis").fit(X, y)
    path, old = tmp_path / "m.rfm", tmp_path / "old.rfm"
    save_model(det, path)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "meta.json":
                meta = json.loads(data)
                del meta["gammaness"]
                data = json.dumps(meta).encode()
            dst.writestr(item, data)
    back = load_model(old)
    assert back.gammaness_ is None
    with pytest.raises(RareflowError, match="no gammaness calibration"):
        back.gammaness(X)
    data = tmp_path / "t.parquet"
    X.assign(label=np.where(y == 1, "gamma", "hadron")).to_parquet(data)
    assert main(["score", "--model", str(old), "--data", str(data), "--out", str(tmp_path / "s.parquet"), "-q"]) == 0
    assert "gammaness" not in pd.read_parquet(tmp_path / "s.parquet").columns
    assert main(["score", "--model", str(path), "--data", str(data), "--out", str(tmp_path / "s2.parquet"),
                 "--gammaness-column", "gh_score", "-q"]) == 0  # fmt: skip
    out = pd.read_parquet(tmp_path / "s2.parquet")
    np.testing.assert_allclose(out["gh_score"], det.gammaness(X))
