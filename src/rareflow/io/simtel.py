"""sim_telarray reading (via ctapipe): open a file, read calibrated images a chunk at a time, and the truth.

This is the *reading* half of the sim_telarray support: :func:`open_source` opens a file with ctapipe's
``EventSource`` (``SimTelEventSource``, which uses ``eventio``), :class:`EventReader` calibrates the
waveforms to photo-electrons with ctapipe's ``CameraCalibrator`` and yields ``(image, meta)`` pairs per
telescope, with the simulated truth of each event (:func:`particle_label`). Cleaning and Hillas
parametrisation of those images live in :mod:`rareflow.iact.extract`; the hex->square images of
:mod:`rareflow.iact.images` use the same reader.

Needs the optional extra ``pip install 'rareflow[iact]'``. Never uses the network (:func:`offline`).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rareflow.errors import RareflowError

__all__ = [
    "INSTALL_HINT", "META_COLUMNS", "SIMTEL_LABELS", "EventReader", "check_file", "import_ctapipe", "offline",
    "open_source", "particle_label",
]  # fmt: skip

INSTALL_HINT = "install the IACT extra: pip install 'rareflow[iact]'"

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


def import_ctapipe() -> tuple[Any, Any]:
    try:
        with offline():
            from ctapipe.calib import CameraCalibrator
            from ctapipe.io import EventSource
    except ImportError as exc:
        raise RareflowError(f"reading sim_telarray files needs ctapipe ({exc}); {INSTALL_HINT}") from exc
    return EventSource, CameraCalibrator


def check_file(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise RareflowError(f"{p}: no such {what} file; check the path")
    if not p.is_file():
        raise RareflowError(f"{p}: is not a file; pass a {what} file")
    if p.stat().st_size == 0:
        raise RareflowError(f"{p}: file is empty; re-copy or re-generate the {what} file")
    return p


def open_source(event_source: Any, path: Path, focal_length_choice: str, max_events: int | None) -> Any:
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
META_COLUMNS = [
    "obs_id", "event_id", "tel_id", "label", "true_particle", "true_energy", "true_impact", "true_core_x",
    "true_core_y", "true_x_max", "true_source_x", "true_source_y",
]  # fmt: skip


class EventReader:
    """Reads calibrated images a chunk of events at a time: ``{tel_id: [(image, meta), ...]}``.

    eventio only *warns* ("File seems to be truncated") when a file ends inside an object; such a
    warning is turned into the same error as an exception while reading. Warnings are caught per
    chunk, so nothing leaks into the caller's warning state between chunks. ``tel_ids``: keep only
    those telescopes' images (default: every telescope).
    """

    def __init__(
        self, source: Any, calibrator: Any, path: Path, allow_truncated: bool, tel_ids: Collection[int] | None = None
    ) -> None:
        self.source, self.calibrator, self.path, self.allow_truncated = source, calibrator, path, allow_truncated
        self.tel_ids = None if tel_ids is None else {int(t) for t in tel_ids}
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
                if dl1.image is None or (self.tel_ids is not None and int(tel_id) not in self.tel_ids):
                    continue
                pos = self.positions.get(tel_id) if hasattr(self.positions, "get") else None
                tel_pos = pos.to_value("m") if pos is not None else None
                meta = {"_seq": seq, "obs_id": int(event.index.obs_id), "event_id": int(event.index.event_id), "tel_id": int(tel_id)}
                meta.update(_truth(event, tel_id, tel_pos))
                per_tel.setdefault(int(tel_id), []).append((np.asarray(dl1.image, dtype=np.float32), meta))
        return per_tel
