"""Camera images scored with a saved image model: a sim_telarray file (or a simulated ``.npz``) -> a scores table.

``rareflow score --model M --data FILE --out scores.parquet`` comes here when ``M`` is an image
model (``conv-autoencoder``, ``fastflow``, ``cnn-classifier``, ``image-flow-classifier``) or
``FILE`` holds images: a sim_telarray file (``.simtel``, ``.simtel.gz``, ``.simtel.zst``; read by
:func:`rareflow.iact.images.load_simtel`, the camera geometry taken from the file) or the ``.npz``
of ``rareflow simulate --images-out``. The camera of the images must be the one the model was
trained on (:meth:`rareflow.detectors._image.ImageDetector.check_camera`): a model trained on
the toy camera refuses an LSTCam file with one line saying how to simulate on LSTCam.

Output: one row per telescope image with the reader's table (``obs_id``, ``event_id``,
``tel_id``, the truth and the Hillas columns for sim_telarray files; ``event_id`` for an ``.npz``)
+ ``score`` (higher = rarer), ``prediction`` (1 when score > the model's threshold), ``threshold``
and the calibrated gammaness column when the model has one; the method, camera and source go to
the Parquet metadata under ``rareflow``. Written atomically; never over an input.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.atomic import atomic_path
from rareflow.detectors import Detector
from rareflow.errors import RareflowError
from rareflow.io.scores import METADATA_KEY
from rareflow.persistence import load_model

__all__ = ["SIMTEL_SUFFIXES", "is_image_file", "is_simtel", "load_image_file", "reads_images", "score_images"]

log = logging.getLogger(__name__)

SIMTEL_SUFFIXES = (".simtel", ".simtel.gz", ".simtel.zst")


def is_simtel(path: str | os.PathLike[str]) -> bool:
    """True for a sim_telarray file name (``.simtel``, ``.simtel.gz``, ``.simtel.zst``)."""
    return Path(path).name.lower().endswith(SIMTEL_SUFFIXES)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """True for inputs that hold camera images: sim_telarray files and ``.npz`` image files."""
    return is_simtel(path) or Path(path).suffix.lower() == ".npz"


def reads_images(model: str | os.PathLike[str], data: str | os.PathLike[str], fmt: str | None = None,
                 scheduler: str | None = None, tel_id: int | None = None) -> bool:  # fmt: skip
    """``rareflow score``'s dispatch: True for an image model (the saved method's ``input``) or an
    image file (sim_telarray, .npz); table-only options with images are an error."""
    from rareflow.detectors import detector_class
    from rareflow.persistence import read_meta

    image_model = getattr(detector_class(read_meta(model)["method"]), "input", "table") == "image"
    if not (image_model or is_image_file(data)):
        if tel_id is not None:
            raise RareflowError("--tel-id goes with a sim_telarray file scored by an image model")
        return False
    if fmt is not None or scheduler is not None:
        raise RareflowError("--format and --scheduler go with tables; image scoring reads the file in this process")
    return True


def load_image_file(path: str | os.PathLike[str], tel_id: int | None = None) -> Any:
    """The :class:`rareflow.iact.images.ImageSet` of a sim_telarray file (one telescope: ``tel_id``,
    default the one with the most images) or of an ``.npz`` from ``rareflow simulate --images-out``."""
    from rareflow.iact.images import load_simtel, load_simulated

    if is_simtel(path):
        return load_simtel(path, tel_id=tel_id)
    if tel_id is not None:
        raise RareflowError(f"--tel-id goes with sim_telarray files; {path} is an .npz of one camera")
    if Path(path).suffix.lower() == ".npz":
        return load_simulated(path)
    raise RareflowError(
        f"{path}: image models score camera images: give a sim_telarray file (.simtel, .simtel.gz, .simtel.zst) "
        "or the .npz of `rareflow simulate --images-out`"
    )


def score_images(
    model: Detector | str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    tel_id: int | None = None,
    gammaness_column: str | None = "gammaness",
) -> int:
    """Score the camera images of ``data`` with the image model ``model`` into Parquet ``out``;
    returns the number of images scored (see the module docstring)."""
    from rareflow.scoring import _calibrator

    det = model if isinstance(model, Detector) else load_model(model)
    if getattr(det, "input", "table") != "image":
        raise RareflowError(
            f"{data} holds camera images but the model ({det.name}) scores tables; extract the Hillas table with "
            f"`rareflow extract {data} --out events.parquet` and score that, or train an image method"
        )
    calibrator = _calibrator(det, gammaness_column)
    imgs = load_image_file(data, tel_id)
    det.check_camera(imgs.camera, imgs.mapping, str(data))
    scores = _image_scores(det, imgs.grids(), imgs.table, str(data))
    ok = np.isfinite(scores)
    df = imgs.table.assign(score=scores, prediction=(ok & (scores > det.threshold_)).astype(np.int8), threshold=det.threshold_)
    if calibrator is not None:
        df[gammaness_column] = np.where(ok, calibrator(np.where(ok, scores, det.threshold_)), np.nan)
    doc = {"method": det.name, "threshold": float(det.threshold_), "input": "image", "source": str(data),
           "camera": imgs.camera.name, "grid": list(imgs.mapping.shape), "n_images": len(df)}  # fmt: skip
    _write(df, out, doc)
    return int(ok.sum())


def _image_scores(det: Detector, grids: np.ndarray, table: pd.DataFrame, source: str) -> np.ndarray:
    """Scores of every image; hybrid models (``cnn-classifier`` with ``hillas: true``) leave images
    whose Hillas parameters are NaN (too few pixels after cleaning) unscored (NaN)."""
    scores = np.full(len(grids), np.nan)
    if not getattr(det, "uses_features", False):
        if len(grids):
            scores[:] = np.asarray(det.decision_function(grids), dtype=np.float64)
        return scores
    from rareflow.iact.images import ImagesWithFeatures

    names = [str(c) for c in getattr(det, "feature_names_in_", [])]
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise RareflowError(f"{source}: the model reads the feature column(s) {missing[:5]} beside the images; the file's table lacks them")
    feats = table[names].to_numpy(dtype=float)
    ok = np.isfinite(feats).all(axis=1)
    if (~ok).any():
        log.warning("%s: %d image(s) without Hillas parameters are not scored (empty score)", source, int((~ok).sum()))
    if ok.any():
        scores[ok] = np.asarray(det.decision_function(ImagesWithFeatures(grids[ok], table.loc[ok, names])), dtype=np.float64)
    return scores


def _write(df: pd.DataFrame, out: str | os.PathLike[str], doc: dict[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(doc).encode()})
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
