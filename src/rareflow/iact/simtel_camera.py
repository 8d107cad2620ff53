"""The camera of a sim_telarray file, for simulating (and training) on the geometry of that camera.

:func:`camera_from_simtel` reads only the file's instrument description (and, when the file holds
telescopes of several camera types and no ``tel_id`` is given, which telescopes have images) and
returns a :class:`~rareflow.iact.camera.CameraGeometry` in degrees, the same conversion
:func:`rareflow.iact.images.load_simtel` applies to the images it reads. So ``rareflow simulate
--camera-from FILE`` draws toy showers on the camera whose real images ``rareflow score`` reads
from FILE. Needs the optional extra ``pip install 'rareflow[iact]'``.
"""

from __future__ import annotations

import os
from collections import Counter

from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry

__all__ = ["camera_from_simtel"]


def camera_from_simtel(path: str | os.PathLike[str], tel_id: int | None = None) -> CameraGeometry:
    """The camera geometry [deg] of telescope ``tel_id`` of the sim_telarray file ``path``.

    Default telescope: the first one when every telescope of the file has the same camera type;
    otherwise the one :func:`rareflow.iact.images.load_simtel` reads by default (the telescope with
    the most images, ties to the lowest id). One-line :class:`RareflowError` for a missing file, a
    file that is not sim_telarray, a telescope the file does not have, or missing ctapipe.
    """
    from rareflow.io import simtel

    p = simtel.check_file(path, "sim_telarray")
    event_source, _ = simtel.import_ctapipe()
    with simtel.offline():
        src = simtel.open_source(event_source, p, "auto", None)
    try:
        tels = {int(t): src.subarray.tel[t] for t in src.subarray.tel_ids}
        if not tels:
            raise RareflowError(f"{p}: the file describes no telescope; check the file")
        if tel_id is None:
            tel_id = _default_tel(src, tels, p)
        elif int(tel_id) not in tels:
            listed = ", ".join(f"{t} ({tels[t].camera.name})" for t in sorted(tels))
            raise RareflowError(f"{p} has no telescope {tel_id}; its telescopes: {listed}; pass one of them to --tel-id")
        with simtel.offline():
            return CameraGeometry.from_ctapipe(tels[int(tel_id)].camera.geometry)
    finally:
        src.close()


def _default_tel(src: object, tels: dict, path: object) -> int:
    """First telescope if all cameras are of one type, else the one with the most images."""
    if len({str(t.camera.name) for t in tels.values()}) == 1:
        return min(tels)
    from rareflow.io import simtel

    counts: Counter[int] = Counter()
    with simtel.offline():
        for event in src:  # type: ignore[attr-defined]
            counts.update(int(t) for t in event.r1.tel)
    if not counts:
        raise RareflowError(f"{path}: no telescope images and several camera types; pass --tel-id")
    return max(counts, key=lambda t: (counts[t], -t))
