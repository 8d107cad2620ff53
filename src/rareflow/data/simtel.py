"""Real IACT input: sim_telarray files (via ctapipe) and ctapipe DL1 HDF5 parameter tables.

``extract_simtel`` reads a sim_telarray file (``.simtel``, ``.simtel.gz``, ``.simtel.zst``) with
ctapipe's ``EventSource`` (``SimTelEventSource``, which uses ``eventio``), calibrates the waveforms to
photo-electrons with ctapipe's default ``CameraCalibrator`` (``NeighborPeakWindowSum`` charge
extraction), converts the camera geometry stored in the file to degrees (ctapipe's
CameraFrame -> TelescopeFrame transformation with the file's focal length), and cleans and
parametrises the images with rareflow's batch code (:func:`rareflow.data.hillas.extract_parameters`;
identical to ctapipe's ``tailcuts_clean`` + ``hillas_parameters`` — tested). Default cleaning: ctapipe's
``TailcutsImageCleaner`` defaults (10 / 5 p.e., at least 2 picture neighbours).

Events are processed ``chunk_events`` at a time (:class:`SimtelStream`), so memory holds one chunk
of images whatever the file size; :func:`extract_to_parquet` (``rareflow extract``) appends each
chunk to the output file, for one or several input files, in this process or with one Dask task
per file (``scheduler``), with the same rows either way.

``read_dl1_parameters`` maps the tables ``/dl1/event/telescope/parameters/tel_XXX`` written by
``ctapipe-process --write-parameters`` to rareflow's column names and joins the simulated truth.

Both need the optional extra: ``pip install 'rareflow[iact]'`` (ctapipe, eventio, zstandard; PyTables
comes with ctapipe). They never use the network: astropy's IERS auto-download and remote data are
switched off while reading, and the camera geometry always comes from the file.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.data.camera import CameraGeometry
from rareflow.data.hillas import HILLAS_COLUMNS, _source_parameters, extract_parameters
from rareflow.errors import RareflowError

__all__ = ["SIMTEL_LABELS", "SimtelStream", "extract_simtel", "extract_to_parquet", "particle_label", "read_dl1_parameters"]

_INSTALL_HINT = "install the IACT extra: pip install 'rareflow[iact]'"

#: sim_telarray ``shower_primary_id`` -> label (nuclei: 100 A + Z).
SIMTEL_LABELS: dict[int, str] = {
    0: "gamma", 1: "electron", 2: "muon", 3: "muon", 101: "proton", 402: "helium", 1206: "carbon",
    1407: "nitrogen", 1608: "oxygen", 2412: "magnesium", 2814: "silicon", 5626: "iron",
}  # fmt: skip


def particle_label(primary_id: int) -> str:
    """Label of a sim_telarray primary id (unknown nuclei -> ``"nucleus"``, others ``"unknown"``)."""
    pid = int(primary_id)
    if pid in SIMTEL_LABELS:
        return SIMTEL_LABELS[pid]
    return "nucleus" if pid >= 100 else "unknown"


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """Forbid astropy downloads (IERS tables, remote data) inside the block."""
    try:
        from astropy.utils import iers
        from astropy.utils.data import conf as data_conf
    except ImportError:  # pragma: no cover - astropy comes with ctapipe
        yield
        return
    with (
        iers.conf.set_temp("auto_download", False),
        data_conf.set_temp("allow_internet", False),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", message=".*IERS.*")
        yield


def _import_ctapipe() -> tuple[Any, Any]:
    try:
        with offline():
            from ctapipe.calib import CameraCalibrator
            from ctapipe.io import EventSource
    except ImportError as exc:
        raise RareflowError(f"reading sim_telarray files needs ctapipe ({exc}); {_INSTALL_HINT}") from exc
    return EventSource, CameraCalibrator


def _check_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise RareflowError(f"{p}: no such {what} file; check the path")
    if not p.is_file():
        raise RareflowError(f"{p}: is not a file; pass a {what} file")
    if p.stat().st_size == 0:
        raise RareflowError(f"{p}: file is empty; re-copy or re-generate the {what} file")
    return p


def _open_source(event_source: Any, path: Path, focal_length_choice: str, max_events: int | None) -> Any:
    """Open ``path`` with ctapipe's EventSource; 'auto' = EFFECTIVE, else EQUIVALENT focal length."""
    choices = ["EFFECTIVE", "EQUIVALENT"] if focal_length_choice.upper() == "AUTO" else [focal_length_choice.upper()]
    last: Exception | None = None
    for choice in choices:
        try:
            return event_source(path, max_events=max_events, focal_length_choice=choice)
        except RuntimeError as exc:  # missing effective focal length -> try the next choice
            last = exc
            if "focal_length" not in str(exc):
                break
        except Exception as exc:
            last = exc
            break
    detail = (
        "not recognised by any ctapipe EventSource"
        if "compatible EventSource" in str(last)
        else f"{type(last).__name__}: {str(last)[:120]}"
    )
    raise RareflowError(
        f"{path}: cannot open as a sim_telarray file ({detail}); the file is corrupt, truncated or "
        "not sim_telarray output: re-copy it or check the path"
    )


def _pointing(event: Any, tel_id: int) -> tuple[Any, Any] | None:
    for holder in ("monitoring", "pointing"):
        tel = getattr(getattr(event, holder, None), "tel", None)
        if tel is not None and tel_id in tel:
            p = tel[tel_id]
            p = getattr(p, "pointing", p)
            alt, az = getattr(p, "altitude", None), getattr(p, "azimuth", None)
            if alt is not None and az is not None:
                return alt, az
    return None


def _true_offset(event: Any, tel_id: int) -> tuple[float, float]:
    """True shower direction in the telescope frame [deg] (fov_lon, fov_lat); NaN if unknown."""
    shower = event.simulation.shower if event.simulation is not None else None
    point = _pointing(event, tel_id)
    if shower is None or point is None:
        return np.nan, np.nan
    try:
        from astropy.coordinates import AltAz, SkyCoord
        from ctapipe.coordinates import TelescopeFrame

        pointing = SkyCoord(alt=point[0], az=point[1], frame=AltAz())
        coord = SkyCoord(alt=shower.alt, az=shower.az, frame=AltAz()).transform_to(
            TelescopeFrame(telescope_pointing=pointing)
        )
        return float(coord.fov_lon.deg), float(coord.fov_lat.deg)
    except Exception:
        return np.nan, np.nan


def _impact(sim: Any, tel_id: int) -> float:
    """Distance telescope - shower axis (shower plane) computed by SimTelEventSource [m]."""
    try:
        return float(sim.tel[tel_id].impact.distance.to_value("m"))
    except Exception:
        return np.nan


def _truth(event: Any, tel_id: int, tel_pos: np.ndarray | None) -> dict[str, Any]:
    sim = event.simulation
    shower = sim.shower if sim is not None else None
    if shower is None:
        return {"label": "unknown", "true_particle": -1, "true_energy": np.nan}
    pid = int(shower.shower_primary_id)
    core = np.array([shower.core_x.to_value("m"), shower.core_y.to_value("m")])
    impact = _impact(sim, tel_id)
    if not np.isfinite(impact) and tel_pos is not None:  # ground distance as a fallback
        impact = float(np.hypot(*(core - tel_pos[:2])))
    sx, sy = _true_offset(event, tel_id)
    return {
        "label": particle_label(pid),
        "true_particle": pid,
        "true_energy": float(shower.energy.to_value("TeV")),
        "true_impact": impact,
        "true_core_x": float(core[0]),
        "true_core_y": float(core[1]),
        "true_x_max": float(shower.x_max.to_value("g cm-2")),
        "true_source_x": sx,
        "true_source_y": sy,
    }


#: Per-row metadata and truth columns, in output order; every chunk carries all of them (NaN where
#: a file has no simulation), so streamed chunks share one schema.
_META_COLUMNS = [
    "obs_id", "event_id", "tel_id", "label", "true_particle", "true_energy", "true_impact", "true_core_x",
    "true_core_y", "true_x_max", "true_source_x", "true_source_y",
]  # fmt: skip


class _EventReader:
    """Reads calibrated images a chunk of events at a time: ``{tel_id: [(image, meta), ...]}``.

    eventio only *warns* ("File seems to be truncated") when a file ends inside an object; such a
    warning is turned into the same error as an exception while reading. Warnings are caught per
    chunk, so nothing leaks into the caller's warning state between chunks.
    """

    def __init__(self, source: Any, calibrator: Any, path: Path, allow_truncated: bool) -> None:
        self.source, self.calibrator, self.path, self.allow_truncated = source, calibrator, path, allow_truncated
        self.iterator = iter(source)
        self.positions = getattr(source.subarray, "positions", {})
        self.n_events, self.truncated, self.done = 0, False, False

    def read(self, n: int) -> dict[int, list]:
        with offline():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                per_tel = self._read(n)
            for w in caught:
                if "truncated" in str(w.message).lower():
                    if not self.allow_truncated:
                        raise RareflowError(
                            f"{self.path}: truncated after {self.n_events} event(s) ({w.message}); re-copy the file, "
                            "or pass allow_truncated=True to keep the events read so far"
                        )
                    self.truncated = True
                elif not issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning)):
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return per_tel

    def _read(self, n: int) -> dict[int, list]:
        per_tel: dict[int, list] = {}
        for _ in range(n):
            try:
                event = next(self.iterator)
            except StopIteration:
                self.done = True
                break
            except Exception as exc:
                if not self.allow_truncated:
                    raise RareflowError(
                        f"{self.path}: corrupt or truncated after {self.n_events} event(s) ({type(exc).__name__}: {exc}); "
                        "re-copy the file, or pass allow_truncated=True to keep the events read so far"
                    ) from exc
                self.truncated, self.done = True, True
                break
            seq = self.n_events
            self.n_events += 1
            try:
                self.calibrator(event)
            except Exception as exc:
                raise RareflowError(
                    f"{self.path}: cannot calibrate event {event.index.event_id} ({type(exc).__name__}: {exc}); check the file"
                ) from exc
            for tel_id, dl1 in event.dl1.tel.items():
                if dl1.image is None:
                    continue
                pos = self.positions.get(tel_id) if hasattr(self.positions, "get") else None
                tel_pos = pos.to_value("m") if pos is not None else None
                meta = {"_seq": seq, "obs_id": int(event.index.obs_id), "event_id": int(event.index.event_id), "tel_id": int(tel_id)}
                meta.update(_truth(event, tel_id, tel_pos))
                per_tel.setdefault(int(tel_id), []).append((np.asarray(dl1.image, dtype=np.float32), meta))
        return per_tel


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
        self.path = _check_file(path, "sim_telarray")
        _check_source(source)
        self._classes = _import_ctapipe()
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
            src = _open_source(event_source, p, self.focal_length_choice, self.max_events)
        cameras: dict[int, CameraGeometry] = {}
        try:
            with offline():
                calibrator = calibrator_cls(subarray=src.subarray)
            reader = _EventReader(src, calibrator, p, self.allow_truncated)
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
                    _parametrise(items, cameras[tel_id], *self.cleaning, self.source)
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

        def write(df: pd.DataFrame, n_ev: int) -> None:
            nonlocal writer, rows, events
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            rows += len(df)
            events += n_ev
            rate = events / max(time.perf_counter() - t0, 1e-9)
            progress.update(bar, advance=n_ev, info=f"{events:,} events, {rows:,} rows, {rate:,.1f} events/s")

        try:
            if scheduler is None:
                for stream in streams:
                    seen = 0
                    for df in stream:
                        write(df, stream.n_events - seen)
                        seen = stream.n_events
                    if stream.n_events > seen:  # trailing events without images
                        progress.update(bar, advance=stream.n_events - seen)
                        events += stream.n_events - seen
            else:
                from rareflow.parallel import dask_client, map_ordered

                with dask_client(scheduler, n_workers) as client:
                    tasks = ((str(s.path.resolve()), options) for s in streams)
                    for df, n_ev in map_ordered(client, _extract_file_task, tasks):
                        write(df, n_ev)
        finally:
            if writer is not None:
                writer.close()
    return {"rows": rows, "events": events, "files": len(paths), "seconds": time.perf_counter() - t0}


def _check_source(source: object) -> None:
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


def _parametrise(
    items: list, camera: CameraGeometry, pic: float, bnd: float, min_nb: int, source: str | tuple[float, float]
) -> pd.DataFrame:
    images = np.stack([im for im, _ in items])
    if images.shape[1] != camera.n_pixels:
        raise RareflowError(f"image has {images.shape[1]} pixels but camera {camera.name!r} has {camera.n_pixels}")
    meta = pd.DataFrame([m for _, m in items], columns=["_seq", *_META_COLUMNS])
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
        new = _source_parameters(params["hillas_x"].to_numpy(float), params["hillas_y"].to_numpy(float), c, s, (sx, sy))
        old = _source_parameters(
            params["hillas_x"].to_numpy(float), params["hillas_y"].to_numpy(float), c, s, (0.0, 0.0)
        )
    flip = new.pop("_sign_cda") * old.pop("_sign_cda")
    for col in ("asym", "m3_long", "m3_trans"):
        params[col] = params[col].to_numpy(float) * flip
    for col, val in new.items():
        params[col] = val


# ----------------------------------------------------------------------------- ctapipe DL1 HDF5
_DL1_PARAMS = "/dl1/event/telescope/parameters"
_DL1_RENAME = {
    "hillas_fov_lon": "hillas_x",
    "hillas_fov_lat": "hillas_y",
    "morphology_n_pixels": "n_pixels",
    "morphology_n_islands": "n_islands",
    "concentration_pixel": "conc1",
}
_DL1_ANGLES = ("hillas_x", "hillas_y", "hillas_r", "hillas_phi", "hillas_length", "hillas_width", "hillas_psi")


def _import_tables() -> Any:
    try:
        import tables
    except ImportError as exc:
        raise RareflowError(f"reading ctapipe DL1 HDF5 files needs PyTables ({exc}); {_INSTALL_HINT}") from exc
    return tables


def _table_units(node: Any) -> dict[str, str]:
    """Column units stored by ctapipe (attrs CTAFIELD_<i>_UNIT, i = column index)."""
    attrs = node.attrs
    units = {}
    for i, name in enumerate(node.colnames):
        key = f"CTAFIELD_{i}_UNIT"
        if key in attrs._v_attrnames:
            units[name] = str(attrs[key])
    return units


def _read_tel_table(node: Any, path: Path) -> pd.DataFrame:
    data = node.read()
    units = _table_units(node)
    df = pd.DataFrame({name: data[name] for name in data.dtype.names if data[name].ndim == 1})
    for col, unit in units.items():
        if col in df.columns and unit in ("rad", "radian"):
            df[col] = np.degrees(df[col].to_numpy(float))
    if "hillas_x" in df.columns and units.get("hillas_x", "deg") not in ("deg", "rad", "radian"):
        # old camera-frame DL1 (metres): not comparable with rareflow's degrees
        df = df.drop(
            columns=[c for c in ("hillas_x", "hillas_y", "hillas_r", "hillas_length", "hillas_width") if c in df]
        )
        warnings.warn(
            f"{path}: camera-frame (metre) Hillas columns skipped; re-process with ctapipe >= 0.12", stacklevel=3
        )
    return df.rename(columns=_DL1_RENAME)


def _truth_table(h5: Any) -> pd.DataFrame | None:
    if "/simulation/event/subarray/shower" not in h5:
        return None
    data = h5.get_node("/simulation/event/subarray/shower").read()
    cols = [c for c in ("obs_id", "event_id", "true_energy", "true_shower_primary_id", "true_core_x", "true_core_y",
                        "true_x_max", "true_alt", "true_az", "true_h_first_int") if c in data.dtype.names]  # fmt: skip
    return pd.DataFrame({c: data[c] for c in cols})


def _impact_table(h5: Any, tel_name: str) -> pd.DataFrame | None:
    key = f"/simulation/event/telescope/impact/{tel_name}"
    if key not in h5:
        return None
    data = h5.get_node(key).read()
    if "true_impact_distance" not in data.dtype.names:
        return None
    return pd.DataFrame({"obs_id": data["obs_id"], "event_id": data["event_id"], "tel_id": data["tel_id"],
                         "true_impact": data["true_impact_distance"]})  # fmt: skip


def read_dl1_parameters(path: str | os.PathLike[str], tel_id: int | None = None) -> pd.DataFrame:
    """Read ctapipe DL1 parameter tables into rareflow's column names.

    Maps ``hillas_intensity, hillas_fov_lon -> hillas_x, hillas_fov_lat -> hillas_y, hillas_r,
    hillas_phi, hillas_length, hillas_width, hillas_psi, hillas_skewness, hillas_kurtosis,
    leakage_intensity_width_1/2, morphology_n_pixels -> n_pixels, morphology_n_islands -> n_islands,
    concentration_pixel -> conc1`` (only those present) and derives ``alpha, dist, miss`` relative to
    the camera centre. MAGIC's conc2 / asym / m3_* need the images and are not in DL1 tables.
    With simulated truth (``/simulation/event/subarray/shower``) it adds ``label`` (from
    ``true_shower_primary_id``), ``true_particle``, ``true_energy`` [TeV], ... and ``true_impact``.
    ``tel_id`` selects one telescope (default: all). ``is_valid``: finite Hillas parameters (and
    >= 3 pixels when ``n_pixels`` is known).
    """
    p = _check_file(path, "ctapipe DL1 HDF5")
    tables = _import_tables()
    try:
        h5 = tables.open_file(str(p), mode="r")
    except Exception as exc:
        raise RareflowError(f"{p}: not a readable HDF5 file ({type(exc).__name__}); check the file") from exc
    with h5:
        if _DL1_PARAMS not in h5:
            raise RareflowError(f"{p}: no {_DL1_PARAMS} tables; write them with `ctapipe-process --write-parameters`")
        group = h5.get_node(_DL1_PARAMS)
        names = sorted(n._v_name for n in group._f_iter_nodes("Table"))
        if tel_id is not None:
            want = f"tel_{int(tel_id):03d}"
            if want not in names:
                raise RareflowError(f"{p}: no parameter table for tel_id={tel_id} (have {', '.join(names) or 'none'})")
            names = [want]
        if not names:
            raise RareflowError(f"{p}: {_DL1_PARAMS} holds no telescope tables")
        frames = []
        for name in names:
            df = _read_tel_table(h5.get_node(f"{_DL1_PARAMS}/{name}"), p)
            impact = _impact_table(h5, name)
            if impact is not None and {"obs_id", "event_id", "tel_id"} <= set(df.columns):
                df = df.merge(impact, on=["obs_id", "event_id", "tel_id"], how="left")
            frames.append(df)
        truth = _truth_table(h5)
    df = pd.concat(frames, ignore_index=True)
    df = _finish_dl1(df, truth)
    return df


def _finish_dl1(df: pd.DataFrame, truth: pd.DataFrame | None) -> pd.DataFrame:
    if {"hillas_x", "hillas_y", "hillas_psi"} <= set(df.columns):
        psi = np.radians(df["hillas_psi"].to_numpy(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            src = _source_parameters(df["hillas_x"].to_numpy(float), df["hillas_y"].to_numpy(float),
                                     np.cos(psi), np.sin(psi), (0.0, 0.0))  # fmt: skip
        src.pop("_sign_cda")
        for col, val in src.items():
            df[col] = val
    if truth is not None and {"obs_id", "event_id"} <= set(df.columns):
        df = df.merge(truth, on=["obs_id", "event_id"], how="left")
        if "true_shower_primary_id" in df.columns:
            ids = df["true_shower_primary_id"]
            df["label"] = [particle_label(i) if pd.notna(i) else "unknown" for i in ids]
            df["true_particle"] = ids.fillna(-1).astype(np.int64)
            df = df.drop(columns=["true_shower_primary_id"])
    valid = np.ones(len(df), dtype=bool)
    for col in ("hillas_intensity", "hillas_length", "hillas_width", "hillas_psi"):
        if col in df.columns:
            valid &= np.isfinite(df[col].to_numpy(float))
    if "n_pixels" in df.columns:
        valid &= df["n_pixels"].to_numpy() >= 3
    df["is_valid"] = valid
    first = [c for c in ("obs_id", "event_id", "tel_id", "label") if c in df.columns]
    spec = [c for c in HILLAS_COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in first and c not in spec]
    return df[first + spec + rest]
