"""Save and load every detector without executing code from the file.

A model file is a zip archive holding

* ``meta.json`` — schema version, rareflow version, method name, constructor parameters, the
  feature columns, the fitted threshold, its working point (rule and training-data
  efficiencies), the training table's fingerprint (``training_data``, see
  :mod:`rareflow.fingerprint`) and the detector's JSON settings;
* ``arrays.safetensors`` — numpy arrays (weights, means, covariances, training scores), read by
  ``safetensors`` which parses a header and raw bytes only;
* ``blobs/<name>`` — opaque byte strings a detector may need, e.g. a scikit-learn model saved
  with ``skops`` (which loads only an allow-list of types; see ``detectors/_sklearn.py``).

No pickle is ever read. Loading checks the schema version and rebuilds the detector from the
registry by name.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from rareflow import __version__
from rareflow.atomic import write_bytes_atomic
from rareflow.detectors import Detector, FittedState, get_detector
from rareflow.errors import RareflowError

SCHEMA_VERSION = 1
_COMMON_ARRAYS = ("decision_scores_",)


def _jsonable(value: Any) -> Any:
    """Constructor parameters as JSON (tuples -> lists); anything else is a programming error."""
    return json.loads(json.dumps(value))


def save_model(detector: Detector, path: str | os.PathLike[str]) -> None:
    """Write a fitted ``detector`` to ``path`` atomically."""
    if not hasattr(detector, "threshold_"):
        raise RareflowError(f"method '{detector.name}' is not fitted; call fit before saving")
    state = detector._export()
    meta = {
        "schema_version": SCHEMA_VERSION,
        "rareflow_version": __version__,
        "method": detector.name,
        "params": _jsonable(detector.get_params(deep=False)),
        "feature_names": [str(c) for c in getattr(detector, "feature_names_in_", [])] or None,
        "n_features": int(detector.n_features_in_),
        "threshold": float(detector.threshold_),
        "state": _jsonable(state.json),
        "blobs": sorted(state.blobs),
        "working_point": {
            "rule": getattr(detector, "threshold_rule_", None),
            "training_efficiencies": _jsonable(getattr(detector, "working_point_", {})),
        },
        "training_data": _jsonable(getattr(detector, "training_data_", None)),
    }
    arrays = {k: np.ascontiguousarray(v) for k, v in state.arrays.items()}
    arrays["decision_scores_"] = np.ascontiguousarray(detector.decision_scores_, dtype=np.float64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", json.dumps(meta, indent=2))
        zf.writestr("arrays.safetensors", st_save(arrays))
        for name, blob in state.blobs.items():
            zf.writestr(f"blobs/{name}", blob)
    write_bytes_atomic(path, buf.getvalue())


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta.json`` of a model file (method, features, parameters), validated."""
    path = Path(path)
    if not path.exists():
        raise RareflowError(f"model file {path} not found; train one with `rareflow train`")
    try:
        with zipfile.ZipFile(path) as zf:
            meta = json.loads(zf.read("meta.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError):
        raise RareflowError(f"{path} is not a rareflow model file (expected a zip with meta.json)") from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise RareflowError(
            f"{path} has model schema {meta.get('schema_version')!r}; this rareflow reads schema {SCHEMA_VERSION}: retrain"
        )
    return meta


def load_model(path: str | os.PathLike[str]) -> Detector:
    """Rebuild a fitted detector from ``path`` (no code from the file is executed)."""
    meta = read_meta(path)
    detector = get_detector(meta["method"], **meta["params"])  # also maps older parameter layouts
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = st_load(zf.read("arrays.safetensors"))
            blobs = {name: zf.read(f"blobs/{name}") for name in meta["blobs"]}
    except Exception as exc:  # corrupt archive members
        raise RareflowError(f"{path} is damaged ({type(exc).__name__}); retrain the model") from None
    detector.decision_scores_ = arrays.pop("decision_scores_")
    detector.threshold_ = float(meta["threshold"])
    detector.n_features_in_ = int(meta["n_features"])
    if meta["feature_names"]:
        detector.feature_names_in_ = np.asarray(meta["feature_names"], dtype=object)
    detector._import(FittedState(json=meta["state"], arrays=arrays, blobs=blobs))
    wp = meta.get("working_point") or {}  # absent in files written before it was recorded
    detector.threshold_rule_ = wp.get("rule")
    detector.working_point_ = wp.get("training_efficiencies") or {}
    if meta.get("training_data"):
        detector.training_data_ = meta["training_data"]
    return detector
