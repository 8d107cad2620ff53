"""`rareflow compare` on image data: simulated images (tiny) and MNIST vs notMNIST (shared data)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from rareflow.cli import main
from tests.conftest import SHARED_DATA, require_shared

IMAGE_METHODS = [
    {"name": "conv-autoencoder", "params": {"epochs": 1, "progress": False}},
    {"name": "fastflow", "params": {"epochs": 1, "backbone_epochs": 1, "progress": False}},
]


def _run(tmp_path, config: dict) -> dict:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["compare", "--config", str(cfg), "--out", str(out), "-q"]) == 0
    return {"out": out, "metrics": json.loads((out / "metrics.json").read_text())}


def test_compare_on_simulated_images_writes_the_gallery(tmp_path) -> None:
    res = _run(tmp_path, {
        "data": {"source": "simulate", "images": True, "simulate": {"n_events": 800}},
        "scenario": {"kind": "rare", "test_rare_fraction": 0.01, "seeds": [0]},
        "methods": ["gbdt", *IMAGE_METHODS],
    })  # fmt: skip
    out, doc = res["out"], res["metrics"]
    assert set(doc["methods"]) == {"gbdt", "conv-autoencoder", "fastflow"}
    assert doc["data"]["images"]["grid"] == [29, 29]
    for m in ("conv-autoencoder", "fastflow"):
        assert (out / f"gallery_{m}.png").stat().st_size > 10_000
    html = (out / "report.html").read_text()
    energy = [p for p in ("efficiency_vs_energy.png", "sensitivity_vs_energy.png") if (out / p).exists()]
    assert energy and doc["per_bin"]["column"] == "true_energy"  # the energy section (issue 17) is on by default
    # 5 plots (ROC, Q, scores, efficiency vs threshold, purity) + 2 galleries + the energy figures
    assert "highest-scoring test images" in html and html.count("data:image/png;base64") == 7 + len(energy)
    scores = pd.read_parquet(out / "scores.parquet")
    # same events, same split for every method
    rows = scores.groupby("method")["row"].apply(lambda r: tuple(sorted(r)))
    assert rows.nunique() == 1


def test_table_plus_images_npz_from_simulate(tmp_path) -> None:
    table, npz = tmp_path / "ev.parquet", tmp_path / "ev.npz"
    assert main(["simulate", "--n-events", "500", "--out", str(table), "--images-out", str(npz), "-q"]) == 0
    res = _run(tmp_path, {
        "data": {"source": "table", "path": str(table), "images": str(npz), "bulk_label": "proton"},
        "scenario": {"kind": "anomaly", "fit_on": "bulk", "seeds": [0]},
        "methods": IMAGE_METHODS[:1],
    })  # fmt: skip
    assert res["metrics"]["methods"]["conv-autoencoder"]["auc"] is not None
    assert (res["out"] / "gallery_conv-autoencoder.png").exists()


def test_image_method_without_images_is_a_clear_error(tmp_path, capsys) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"simulate": {"n_events": 400}}, "scenario": {"seeds": [0]},
                                   "methods": IMAGE_METHODS[:1]}))  # fmt: skip
    assert main(["compare", "--config", str(cfg), "--out", str(tmp_path / "o"), "-q"]) == 2
    assert "needs camera images" in capsys.readouterr().err


@pytest.mark.shared_data
def test_mnist_vs_notmnist_through_the_image_path(tmp_path) -> None:
    mnist = require_shared(SHARED_DATA / "images" / "mnist_test")
    letters = require_shared(SHARED_DATA / "images" / "notmnist_test")
    res = _run(tmp_path, {
        "data": {"source": "idx", "idx": {"bulk_path": str(mnist), "rare_path": str(letters), "n_per_class": 300},
                 "rare_label": "letter", "bulk_label": "digit"},
        "scenario": {"kind": "anomaly", "fit_on": "bulk", "seeds": [0]},
        "methods": ["mahalanobis", *IMAGE_METHODS],
    })  # fmt: skip
    doc = res["metrics"]
    assert doc["data"]["images"]["grid"] == [28, 28] and doc["data"]["images"]["lattice"] == "square"
    assert doc["methods"]["conv-autoencoder"]["auc"] > 0.6  # letters reconstruct worse than digits
    assert (res["out"] / "gallery_fastflow.png").exists()


def test_gallery_file_labels_have_no_stray_underscores() -> None:
    from rareflow.evaluation.gallery import file_label

    assert file_label("fastflow (selfsup)") == "fastflow_selfsup"
    assert file_label("conv-autoencoder") == "conv-autoencoder"
    assert file_label(" (x) ") == "x" and file_label("()") == "method"
