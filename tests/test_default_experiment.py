"""The default experiment (`make demo` = `rareflow compare` without a config) shows the seeds'
comparison: normalizing flows vs an autoencoder, one-class vs two-class, supervised references."""

from __future__ import annotations

from rareflow.config import ExperimentConfig, parse_config
from rareflow.detectors import detector_class, get_detector


def test_default_methods_are_the_seeds_comparison() -> None:
    cfg = ExperimentConfig()
    by_name = {m.name: m for m in cfg.methods}
    assert set(by_name) == {"flow-classifier", "selfsup-flow", "flow", "autoencoder", "nn-classifier", "gbdt"}
    kinds = {detector_class(n).kind for n in by_name}
    assert {"one-class", "two-class", "supervised"} <= kinds
    for m in cfg.methods:
        get_detector(m.name, **m.params)  # every parameter is valid for its method (checked at construction)
        if detector_class(m.name).kind == "one-class":
            assert m.params["fit_on"] == "rare" and "fit_on rare" in m.display
    assert by_name["flow-classifier"].params["ensemble"] <= 2  # sized for a few minutes on 2 cores
    assert cfg.data.source == "simulate" and cfg.scenario.kind == "rare" and len(cfg.scenario.seeds) == 3


def test_default_experiment_runs_every_method(tmp_path) -> None:
    """The same methods, shrunk (1,500 events, one seed, 2 epochs): none is skipped, all score."""
    from rareflow.evaluation.runner import run_experiment

    raw = ExperimentConfig().model_dump()
    raw["data"]["simulate"]["n_events"] = 1500
    raw["scenario"]["seeds"] = [0]
    for m in raw["methods"]:
        if "training" in m["params"]:
            m["params"]["training"] = {**m["params"]["training"], "epochs": 2, "progress": False}
        if m["name"] == "selfsup-flow":
            m["params"]["warmup_epochs"] = 1
        if m["name"] == "gbdt":
            m["params"]["max_iter"] = 20
    result = run_experiment(parse_config(raw))
    assert not result.skipped
    assert len(result.per_seed) == 6 and all(r["auc"] is not None for r in result.per_seed)
