"""Camera images scored with a saved image model: a sim_telarray file (or a simulated ``.npz``) -> a scores table.

``rareflow score --model M --data FILE --out scores.parquet`` comes here when ``M`` is an image
model (``conv-autoencoder``, ``fastflow``, ``cnn-classifier``, ``image-flow-classifier``) or
``FILE`` holds images: a sim_telarray file (``.simtel``, ``.simtel.gz``, ``.simtel.zst``; read by
:func:`rareflow.iact.images.iter_simtel`, the camera geometry taken from the file) or the ``.npz``
of ``rareflow simulate --images-out``. The camera of the images must be the one the model was
trained on (:meth:`rareflow.detectors._image.ImageDetector.check_camera`): a model trained on
the toy camera refuses an LSTCam file with one line saying how to simulate on LSTCam.

A sim_telarray file is scored ``chunk_events`` events at a time (memory: one chunk of images),
each chunk appended to the output. Telescopes scored: every telescope whose camera is the model's
(``tel_id`` picks one); one line names the file's cameras when none is. An ``.npz`` is scored whole.

Output: one row per telescope image with the reader's table (``obs_id``, ``event_id``,
``tel_id``, the truth and the Hillas columns for sim_telarray files, rows in file order and
telescopes ascending within an event; ``event_id`` for an ``.npz``) + ``score`` (higher = rarer),
``prediction`` (1 when score > the model's threshold), ``threshold`` and the calibrated gammaness
column when the model has one; the method, camera, source (and for sim_telarray files the
``tel_ids`` scored) go to the Parquet metadata under ``rareflow``. Written atomically (nothing is
left when scoring fails half-way); never over an input.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.atomic import atomic_path, refuse_same_file
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
                 scheduler: str | None = None, tel_id: int | None = None,
                 chunk_events: int | None = None) -> bool:  # fmt: skip
    """``rareflow score``'s dispatch: True for an image model (the saved method's ``input``) or an
    image file (sim_telarray, .npz); table-only options with images, and image options with a table, are an error."""
    from rareflow.detectors import detector_class
    from rareflow.persistence import read_meta

    image_model = getattr(detector_class(read_meta(model)["method"]), "input", "table") == "image"
    if not (image_model or is_image_file(data)):
        for option, value in (("--tel-id", tel_id), ("--chunk-events", chunk_events)):
            if value is not None:
                raise RareflowError(f"{option} goes with a sim_telarray file scored by an image model")
        return False
    if fmt is not None or scheduler is not None:
        raise RareflowError("--format and --scheduler go with tables; image scoring reads the file in this process")
    if chunk_events is not None and not is_simtel(data):
        raise RareflowError(f"--chunk-events goes with sim_telarray files; {data} is read whole: drop the option")
    return True


def load_image_file(path: str | os.PathLike[str], tel_id: int | None = None) -> Any:
    """The :class:`rareflow.iact.images.ImageSet` of a whole sim_telarray file (one telescope: ``tel_id``,
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
    chunk_events: int = 1000,
) -> int:
    """Score the camera images of ``data`` with the image model ``model`` into Parquet ``out`` (a
    sim_telarray file ``chunk_events`` events at a time); returns the number of images scored (see
    the module docstring)."""
    from rareflow.scoring import _calibrator

    refuse_same_file(out, {"--data": data, "--model": None if isinstance(model, Detector) else model})
    if chunk_events < 1:
        raise RareflowError(f"chunk_events must be >= 1 (got {chunk_events})")
    det = _image_model(model, data)
    calibrator = _calibrator(det, gammaness_column)
    chunks, doc = _simtel_chunks(det, data, tel_id, chunk_events) if is_simtel(data) else _npz_chunks(det, data, tel_id)
    doc = {"method": det.name, "threshold": float(det.threshold_), "input": "image", "source": str(data), **doc}
    frames = (_scored(det, calibrator, gammaness_column, grids, table, str(data)) for grids, table in chunks)
    n_ok, n_unscored = _write_chunks(frames, out, doc)
    if n_unscored:
        log.warning("%s: %d image(s) without Hillas parameters are not scored (empty score)", data, n_unscored)
    return n_ok


def _image_model(model: Detector | str | os.PathLike[str], data: str | os.PathLike[str]) -> Detector:
    """The loaded model; a one-line error when it scores tables, not images."""
    det = model if isinstance(model, Detector) else load_model(model)
    if getattr(det, "input", "table") != "image":
        raise RareflowError(
            f"{data} holds camera images but the model ({det.name}) scores tables; extract the Hillas table with "
            f"`rareflow extract {data} --out events.parquet` and score that, or train an image method"
        )
    return det


def _npz_chunks(
    det: Detector, data: str | os.PathLike[str], tel_id: int | None
) -> tuple[Iterator[tuple[np.ndarray, pd.DataFrame]], dict[str, Any]]:
    """An ``.npz`` of images as one chunk ``(grids, table)``, camera checked, and its metadata."""
    imgs = load_image_file(data, tel_id)
    det.check_camera(imgs.camera, imgs.mapping, str(data))
    return iter([(imgs.grids(), imgs.table)]), {"camera": imgs.camera.name, "grid": list(imgs.mapping.shape)}


def _simtel_chunks(
    det: Detector, data: str | os.PathLike[str], tel_id: int | None, chunk_events: int
) -> tuple[Iterator[tuple[np.ndarray, pd.DataFrame]], dict[str, Any]]:
    """The chunks ``(grids, table)`` of the telescopes of a sim_telarray file that the model scores
    (:func:`_pick_telescopes`; read lazily, ``chunk_events`` events at a time) and their metadata."""
    from rareflow.iact.images import iter_simtel

    tels, names, grid = _pick_telescopes(det, data, tel_id)
    chunks = (_merge(parts) for parts in iter_simtel(data, tel_ids=tels, chunk_events=chunk_events))
    return chunks, {"camera": ", ".join(names), "grid": list(grid), "tel_ids": tels}


def _pick_telescopes(
    det: Detector, data: str | os.PathLike[str], tel_id: int | None
) -> tuple[list[int], list[str], tuple[int, int]]:
    """``(tel_ids, camera names, grid)``: ``tel_id``, or every telescope whose camera the model was
    trained on; one-line RareflowError when the file lacks ``tel_id`` or no telescope's camera fits."""
    from rareflow.iact.images import check_tel_ids, simtel_cameras

    cameras = simtel_cameras(data)
    check_tel_ids({t: c.name for t, c in cameras.items()}, None if tel_id is None else [tel_id], data)
    by_camera: dict[tuple[str, int], list[int]] = {}
    for t in [int(tel_id)] if tel_id is not None else sorted(cameras):
        by_camera.setdefault((cameras[t].name, cameras[t].n_pixels), []).append(t)
    fits: list[int] = []
    errors: list[RareflowError] = []
    grid = (0, 0)
    for tels in by_camera.values():
        try:
            grid = _check_camera(det, cameras[tels[0]], str(data))
            fits += tels
        except RareflowError as exc:
            errors.append(exc)
    if not fits:
        raise errors[0] if len(errors) == 1 else _no_camera_error(det, data, by_camera)
    return sorted(fits), sorted({cameras[t].name for t in fits}), grid


def _check_camera(det: Detector, camera: Any, source: str) -> tuple[int, int]:
    """The grid shape of ``camera``; RareflowError when it is not the model's camera (or no lattice)."""
    from rareflow.iact.images import GridMapping

    mapping = GridMapping.from_camera(camera)
    det.check_camera(camera, mapping, source)
    return mapping.shape


def _no_camera_error(
    det: Detector, data: str | os.PathLike[str], by_camera: dict[tuple[str, int], list[int]]
) -> RareflowError:
    """One line for a file of several cameras none of which the model was trained on."""
    mine = getattr(det, "camera_", None)
    shape = tuple(getattr(det, "image_shape_", (0, 0)))
    trained = (
        f"camera {mine['name']} ({mine['grid'][0]}x{mine['grid'][1]} grid, {mine['n_pixels']} pixels)"
        if mine else f"{shape[0]}x{shape[1]} grid images (camera not recorded)"
    )  # fmt: skip
    found = "; ".join(f"{name} ({n} pixels) on telescope(s) {', '.join(map(str, t))}" for (name, n), t in by_camera.items())
    return RareflowError(
        f"model trained on {trained}, {data} has no telescope with that camera (its cameras: {found}); simulate on "
        f"one of them with `rareflow simulate --camera-from {data} --tel-id N` and train on those images"
    )


def _merge(parts: dict[int, Any]) -> tuple[np.ndarray, pd.DataFrame]:
    """One chunk's ``{tel_id: ImageSet}`` as grids + table, rows in file order, telescopes ascending within an event."""
    tels = sorted(parts)
    grids = np.concatenate([parts[t].grids() for t in tels])
    table = pd.concat([parts[t].table for t in tels], ignore_index=True)
    order = np.lexsort((table["tel_id"].to_numpy(), table["_seq"].to_numpy()))
    table = table.iloc[order].reset_index(drop=True)
    return grids[order], table.drop(columns=[c for c in table.columns if str(c).startswith("_")])


def _scored(
    det: Detector, calibrator: Any, column: str | None, grids: np.ndarray, table: pd.DataFrame, source: str
) -> tuple[pd.DataFrame, int]:
    """One chunk's output rows (``table`` + score, prediction, threshold, gammaness) and how many
    images a hybrid model left unscored."""
    scores, n_unscored = _image_scores(det, grids, table, source)
    ok = np.isfinite(scores)
    df = table.assign(score=scores, prediction=(ok & (scores > det.threshold_)).astype(np.int8), threshold=det.threshold_)
    if calibrator is not None:
        df[column] = np.where(ok, calibrator(np.where(ok, scores, det.threshold_)), np.nan)
    return df, n_unscored


def _image_scores(det: Detector, grids: np.ndarray, table: pd.DataFrame, source: str) -> tuple[np.ndarray, int]:
    """Scores of every image and the number left unscored: hybrid models (``cnn-classifier`` with
    ``hillas: true``) leave images whose Hillas parameters are NaN (too few pixels after cleaning)
    unscored (NaN)."""
    scores = np.full(len(grids), np.nan)
    if not getattr(det, "uses_features", False):
        if len(grids):
            scores[:] = np.asarray(det.decision_function(grids), dtype=np.float64)
        return scores, 0
    from rareflow.iact.images import ImagesWithFeatures

    names = [str(c) for c in getattr(det, "feature_names_in_", [])]
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise RareflowError(f"{source}: the model reads the feature column(s) {missing[:5]} beside the images; the file's table lacks them")
    feats = table[names].to_numpy(dtype=float)
    ok = np.isfinite(feats).all(axis=1)
    if ok.any():
        scores[ok] = np.asarray(det.decision_function(ImagesWithFeatures(grids[ok], table.loc[ok, names])), dtype=np.float64)
    return scores, int((~ok).sum())


def _write_chunks(
    frames: Iterator[tuple[pd.DataFrame, int]], out: str | os.PathLike[str], doc: dict[str, Any]
) -> tuple[int, int]:
    """Append every chunk's rows to Parquet ``out`` (``doc`` in the metadata) atomically: a chunk that
    fails leaves nothing behind. Returns (finite scores, images left unscored)."""
    import pyarrow.parquet as pq

    n_ok = n_unscored = 0
    with atomic_path(out) as tmp:
        writer: pq.ParquetWriter | None = None
        try:
            for df, unscored in frames:
                table = _arrow(df, doc)
                writer = writer or pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
                n_ok, n_unscored = n_ok + int(np.isfinite(df["score"]).sum()), n_unscored + unscored
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise RareflowError(f"{doc['source']}: no images to score; check the file")
    return n_ok, n_unscored


def _arrow(df: pd.DataFrame, doc: dict[str, Any]) -> Any:
    """``df`` as an Arrow table with ``doc`` under the ``rareflow`` schema metadata."""
    import pyarrow as pa

    table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
    return table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY: json.dumps(doc).encode()})
