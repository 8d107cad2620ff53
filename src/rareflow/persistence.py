"""Save and load every detector without executing code from the file.

A model file is a zip archive holding

* ``meta.json`` — schema version, rareflow version, method name, constructor parameters, the
  feature columns, the fitted threshold, its working point (rule and training-data
  efficiencies), the training table's fingerprint (``training_data``, see
  :mod:`rareflow.fingerprint`), the gammaness calibration (``gammaness``, plain numbers, see
  :mod:`rareflow.calibration`; absent in older files, which load without it) and the
  detector's JSON settings;
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
from rareflow.detectors import Detector, FittedState, detector_class
from rareflow.errors import RareflowError, short_repr
from rareflow.model_meta import MAX_META_BYTES, parse_meta
from rareflow.safe_zip import open_archive, read_member

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
        "gammaness": None if getattr(detector, "gammaness_", None) is None else _jsonable(detector.gammaness_.to_dict()),
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


def _damaged(path: Path, what: str) -> RareflowError:
    return RareflowError(f"damaged model file {path}: {what}; retrain the model or check the file's origin")


def _read_meta_from(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    raw = read_member(zf, "meta.json", MAX_META_BYTES)
    try:
        version = json.loads(raw).get("schema_version") if raw[:1] == b"{" else None
    except (ValueError, RecursionError, AttributeError, UnicodeDecodeError):
        version = None
    if isinstance(version, int) and version != SCHEMA_VERSION:
        raise RareflowError(
            f"{path} has model schema {short_repr(version)}; this rareflow reads schema {SCHEMA_VERSION}: retrain"
        )
    return parse_meta(raw)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta.json`` of a model file (method, features, parameters), validated against its schema.

    Sizes and compression ratios of the archive members are checked before anything is inflated
    (:mod:`rareflow.safe_zip`); the JSON is validated by :class:`rareflow.model_meta.ModelMeta`.
    """
    path = Path(path)
    if not path.exists():
        raise RareflowError(f"model file {path} not found; train one with `rareflow train`")
    if path.is_dir():
        raise RareflowError(f"model file {path} is a directory; give the .rfm file from `rareflow train`")
    try:
        with open_archive(path) as zf:
            return _read_meta_from(zf, path)
    except RareflowError:
        raise
    except zipfile.BadZipFile:
        raise RareflowError(f"{path} is not a rareflow model file (expected a zip with meta.json)") from None
    except ValueError as exc:  # UnsafeMember and schema errors carry a one-line reason
        if str(exc) == "member meta.json is missing":
            raise RareflowError(f"{path} is not a rareflow model file (expected a zip with meta.json)") from None
        raise _damaged(path, str(exc)) from None
    except Exception as exc:  # anything else while reading untrusted bytes is damage, not a crash
        raise _damaged(path, f"{type(exc).__name__}: {str(exc)[:120]}") from None


def load_model(path: str | os.PathLike[str]) -> Detector:
    """Rebuild a fitted detector from ``path`` (no code from the file is executed).

    Every failure while rebuilding (a missing or wrong-shape array, a relabelled method, hostile
    skops bytes) is reported as "damaged model file <path>: <what>"; a fitted detector must also
    score one probe row before it is returned.
    """
    path = Path(path)
    meta = read_meta(path)
    cls = detector_class(meta["method"])
    try:
        with open_archive(path) as zf:
            arrays = st_load(read_member(zf, "arrays.safetensors"))
            blobs = {name: read_member(zf, f"blobs/{name}") for name in meta["blobs"]}
        detector = _rebuild(cls, meta, arrays, blobs)
    except RareflowError as exc:
        raise _damaged(path, str(exc)) from None
    except Exception as exc:  # corrupt members, relabelled methods, hostile blobs
        raise _damaged(path, f"{type(exc).__name__}: {str(exc)[:120]}") from None
    return detector


def _rebuild(cls: type[Detector], meta: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Detector:
    """The detector from validated parts; raises if the parts do not fit together."""
    params = dict(meta["params"])
    upgrade = getattr(cls, "upgrade_params", None)
    if upgrade is not None:  # files written before torch settings moved into `training` (or renamed)
        params = upgrade(params)
    detector = cls(**params)
    if "decision_scores_" not in arrays:
        raise ValueError("array decision_scores_ is missing")
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
    detector.gammaness_ = None  # files written before the calibration was stored: no gammaness
    if meta.get("gammaness"):
        from rareflow.calibration import GammanessCalibrator

        detector.gammaness_ = GammanessCalibrator.from_dict(meta["gammaness"])
    if getattr(cls, "input", "table") != "image":
        probe = np.asarray(detector.decision_function(np.zeros((1, detector.n_features_in_))), dtype=float)
        if probe.shape != (1,):
            raise ValueError(f"the model scores one row as shape {probe.shape}")
    return detector
