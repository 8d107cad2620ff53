"""sim_telarray events -> Hillas parameter table: clean and parametrise what :mod:`rareflow.io.simtel` reads.

``extract_simtel`` reads a sim_telarray file (``.simtel``, ``.simtel.gz``, ``.simtel.zst``) with
ctapipe's ``EventSource`` (via :mod:`rareflow.io.simtel`), calibrates the waveforms to photo-electrons
with ctapipe's default ``CameraCalibrator`` (``NeighborPeakWindowSum`` charge extraction), converts the
camera geometry stored in the file to degrees (ctapipe's CameraFrame -> TelescopeFrame transformation
with the file's focal length), and cleans and parametrises the images with rareflow's batch code
(:func:`rareflow.iact.hillas.extract_parameters`; identical to ctapipe's ``tailcuts_clean`` +
``hillas_parameters`` — tested). Default cleaning: ctapipe's ``TailcutsImageCleaner`` defaults
(10 / 5 p.e., at least 2 picture neighbours).

Events are processed ``chunk_events`` at a time (:class:`SimtelStream`), so memory holds one chunk
of images whatever the file size; :func:`extract_to_parquet` (``rareflow extract``) appends each
chunk to the output file, for one or several input files, in this process or with one Dask task
per file (``scheduler``, through the generic :mod:`rareflow.parallel`), with the same rows either way.

Needs the optional extra ``pip install 'rareflow[iact]'``; never uses the network.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry
from rareflow.iact.hillas import extract_parameters
from rareflow.io.schema import source_parameters
from rareflow.io.simtel import META_COLUMNS, EventReader, check_file, import_ctapipe, offline, open_source

__all__ = ["SimtelStream", "check_source", "extract_simtel", "extract_to_parquet", "parametrise"]


class SimtelStream:
    """A sim_telarray file as a stream of parameter tables, ``chunk_events`` events at a time.

    Iterating yields one DataFrame per chunk (columns as :func:`extract_simtel`; rows in file
    order, telescopes in ascending ``tel_id`` within an event), holding at most ``chunk_events``
    events' images in memory. Rows do not depend on the chunk size. After (or during) the
    iteration, ``n_events``, ``n_rows`` and ``truncated`` describe what was read. Arguments are
    checked when the stream is created; the file is opened when the iteration starts.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        picture_threshold: float = 10.0,
        boundary_threshold: float = 5.0,
        min_neighbors: int = 2,
        max_events: int | None = None,
        source: str | tuple[float, float] = "pointing",
        focal_length_choice: str = "auto",
        allow_truncated: bool = False,
        chunk_events: int = 1000,
    ) -> None:
        self.path = check_file(path, "sim_telarray")
        check_source(source)
        self._classes = import_ctapipe()
        if max_events is not None and max_events < 1:
            raise RareflowError(f"max_events must be >= 1 or None (got {max_events})")
        if chunk_events < 1:
            raise RareflowError(f"chunk_events must be >= 1 (got {chunk_events})")
        self.cleaning = (float(picture_threshold), float(boundary_threshold), int(min_neighbors))
        self.max_events, self.source, self.focal_length_choice = max_events, source, focal_length_choice
        self.allow_truncated, self.chunk_events = allow_truncated, int(chunk_events)
        self.n_events, self.n_rows, self.truncated = 0, 0, False

    def __iter__(self) -> Iterator[pd.DataFrame]:
        event_source, calibrator_cls = self._classes
        p = self.path
        with offline():
            src = open_source(event_source, p, self.focal_length_choice, self.max_events)
        cameras: dict[int, CameraGeometry] = {}
        try:
            with offline():
                calibrator = calibrator_cls(subarray=src.subarray)
            reader = EventReader(src, calibrator, p, self.allow_truncated)
            while not reader.done:
                per_tel = reader.read(self.chunk_events)
                self.n_events, self.truncated = reader.n_events, reader.truncated
                if not per_tel:
                    continue
                for tel_id in per_tel:
                    if tel_id not in cameras:
                        with offline():
                            cameras[tel_id] = CameraGeometry.from_ctapipe(src.subarray.tel[tel_id].camera.geometry)
                frames = [
                    parametrise(items, cameras[tel_id], *self.cleaning, self.source)
                    for tel_id, items in sorted(per_tel.items())
                ]
                df = pd.concat(frames, ignore_index=True).sort_values(["_seq", "tel_id"], kind="stable")
                df = df.drop(columns="_seq").reset_index(drop=True)
                self.n_rows += len(df)
                yield df
        finally:
            src.close()
        if self.n_rows == 0:
            raise RareflowError(
                f"{p}: no telescope images in {self.n_events} event(s) (empty or truncated file?); check the file"
            )
        if self.truncated:
            warnings.warn(f"{p}: truncated file, kept the {self.n_events} event(s) read", stacklevel=2)


def extract_simtel(
    path: str | os.PathLike[str],
    *,
    picture_threshold: float = 10.0,
    boundary_threshold: float = 5.0,
    min_neighbors: int = 2,
    max_events: int | None = None,
    source: str | tuple[float, float] = "pointing",
    focal_length_choice: str = "auto",
    allow_truncated: bool = False,
    chunk_events: int = 1000,
) -> pd.DataFrame:
    """Read, calibrate, clean and parametrise a sim_telarray file: one row per (event, telescope).

    Columns: ``obs_id, event_id, tel_id, label`` (from the true primary: gamma / proton / muon /
    electron / helium ... ), the SPEC Hillas columns, ``is_valid`` (< 3 pixels after cleaning ->
    False and NaN parameters) and the truth ``true_particle`` (sim_telarray primary id),
    ``true_energy`` [TeV], ``true_impact`` (telescope - shower axis distance, as ctapipe) [m], ``true_core_x/_y``
    [m], ``true_x_max`` [g cm^-2], ``true_source_x/_y`` (true direction in the telescope frame) [deg]
    (NaN when the file has no simulation). Rows in file order, telescopes ascending within an event.

    ``source``: where alpha / dist / miss are measured from — ``"pointing"`` (camera centre, a point
    source observed on axis), ``"true"`` (each event's true direction) or an ``(x, y)`` in deg.
    ``focal_length_choice``: ``"auto"`` (effective focal length, or the equivalent one when the file
    has none), ``"effective"`` or ``"equivalent"``. Corrupt/truncated files raise
    :class:`RareflowError` unless ``allow_truncated=True`` (then the events read so far are kept and
    ``df.attrs["truncated"]`` is True). Images are processed ``chunk_events`` events at a time
    (:class:`SimtelStream`); only the parameter table is kept whole. For files larger than memory
    use :func:`extract_to_parquet` (the ``rareflow extract`` command).
    """
    stream = SimtelStream(
        path, picture_threshold=picture_threshold, boundary_threshold=boundary_threshold,
        min_neighbors=min_neighbors, max_events=max_events, source=source,
        focal_length_choice=focal_length_choice, allow_truncated=allow_truncated, chunk_events=chunk_events,
    )  # fmt: skip
    df = pd.concat(list(stream), ignore_index=True)
    df.attrs.update(truncated=stream.truncated, n_events=stream.n_events, source_file=str(stream.path))
    return df


def _extract_file_task(path: str, options: dict[str, Any]) -> tuple[pd.DataFrame, int]:
    """Dask task: one file's parameter table (streamed on the worker) and its number of events."""
    stream = SimtelStream(path, **options)
    frames = list(stream)
    return pd.concat(frames, ignore_index=True), stream.n_events


def _tables(
    streams: list[SimtelStream], scheduler: str | None, n_workers: int | None, options: dict[str, Any]
) -> Iterator[tuple[pd.DataFrame | None, int]]:
    """``(rows, events read for them)`` in input order: streamed here, or one Dask task per file.
    ``None`` rows stand for a file's trailing events without images (they still count as read)."""
    if scheduler is None:
        for stream in streams:
            seen = 0
            for df in stream:
                yield df, stream.n_events - seen
                seen = stream.n_events
            if stream.n_events > seen:
                yield None, stream.n_events - seen
        return
    from rareflow.parallel import dask_client, map_ordered

    with dask_client(scheduler, n_workers) as client:
        tasks = ((str(s.path.resolve()), options) for s in streams)
        yield from map_ordered(client, _extract_file_task, tasks)


def extract_to_parquet(
    files: str | os.PathLike[str] | list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Extract one or several sim_telarray files into one Parquet table, in bounded memory.

    Rows are the files' rows in input order. In this process, each file is streamed
    ``chunk_events`` events at a time and every chunk is appended to the output (memory: one
    chunk of images). With ``scheduler`` (``"local"`` or a Dask address) each file is one task on a
    worker (memory there: one chunk of images plus that file's parameter table); the tables come
    back in input order. Same rows and values either way. ``options``: as :func:`extract_simtel`.
    Written atomically; returns ``{"rows", "events", "files", "seconds"}``.
    """
    import time

    import pyarrow as pa
    import pyarrow.parquet as pq

    from rareflow.atomic import atomic_path
    from rareflow.progress import make_progress

    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not paths:
        raise RareflowError("no input file given; pass one or more sim_telarray files")
    streams = [SimtelStream(p, **options) for p in paths]  # checks every file and option up front
    max_events = options.get("max_events")
    total = max_events * len(paths) if max_events else None
    t0 = time.perf_counter()
    rows = events = 0
    with atomic_path(out) as tmp, make_progress() as progress:
        bar = progress.add_task("extract" + (" (dask)" if scheduler else ""), total=total, info="")
        writer: pq.ParquetWriter | None = None

        def write(df: pd.DataFrame | None, n_ev: int) -> None:
            nonlocal writer, rows, events
            if df is not None:
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema)
                writer.write_table(table.cast(writer.schema))
                rows += len(df)
            events += n_ev
            rate = events / max(time.perf_counter() - t0, 1e-9)
            progress.update(bar, advance=n_ev, info=f"{events:,} events, {rows:,} rows, {rate:,.1f} events/s")

        try:
            for df, n_ev in _tables(streams, scheduler, n_workers, options):
                write(df, n_ev)
        finally:
            if writer is not None:
                writer.close()
    return {"rows": rows, "events": events, "files": len(paths), "seconds": time.perf_counter() - t0}


def check_source(source: object) -> None:
    if isinstance(source, str):
        if source not in ("pointing", "true"):
            raise RareflowError(f"source must be 'pointing', 'true' or an (x, y) tuple in deg (got {source!r})")
        return
    try:
        ok = len(source) == 2 and all(np.isfinite(float(v)) for v in source)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise RareflowError(f"source must be 'pointing', 'true' or an (x, y) tuple in deg (got {source!r})")


def parametrise(
    items: list, camera: CameraGeometry, pic: float, bnd: float, min_nb: int, source: str | tuple[float, float]
) -> pd.DataFrame:
    images = np.stack([im for im, _ in items])
    if images.shape[1] != camera.n_pixels:
        raise RareflowError(f"image has {images.shape[1]} pixels but camera {camera.name!r} has {camera.n_pixels}")
    meta = pd.DataFrame([m for _, m in items], columns=["_seq", *META_COLUMNS])
    images = np.where(np.isfinite(images), images, 0.0).astype(np.float32)  # unusable pixels read 0
    params = extract_parameters(
        images, camera, picture_thresh=pic, boundary_thresh=bnd, min_number_picture_neighbors=min_nb
    )
    if source == "true":
        sx = meta.get("true_source_x", pd.Series(np.nan, index=meta.index)).to_numpy(float)
        sy = meta.get("true_source_y", pd.Series(np.nan, index=meta.index)).to_numpy(float)
        _recompute_source(params, sx, sy)
    elif not isinstance(source, str):
        _recompute_source(params, np.full(len(params), float(source[0])), np.full(len(params), float(source[1])))
    first = ["_seq", "obs_id", "event_id", "tel_id", "label"]
    out = pd.concat([meta[first], params.set_index(meta.index), meta.drop(columns=first)], axis=1)
    return out


def _recompute_source(params: pd.DataFrame, sx: np.ndarray, sy: np.ndarray) -> None:
    """Redo alpha / dist / miss (and the head-tail signs of asym / m3_*) for per-event sources."""
    psi = np.radians(params["hillas_psi"].to_numpy(float))
    c, s = np.cos(psi), np.sin(psi)
    with np.errstate(invalid="ignore", divide="ignore"):
        new = source_parameters(params["hillas_x"].to_numpy(float), params["hillas_y"].to_numpy(float), c, s, (sx, sy))
        old = source_parameters(
            params["hillas_x"].to_numpy(float), params["hillas_y"].to_numpy(float), c, s, (0.0, 0.0)
        )
    flip = new.pop("_sign_cda") * old.pop("_sign_cda")
    for col in ("asym", "m3_long", "m3_trans"):
        params[col] = params[col].to_numpy(float) * flip
    for col, val in new.items():
        params[col] = val
