"""Camera images on disk: an ``.npz`` with the images, the camera's pixel positions/areas and the
event ids (no pickle), written atomically; read back with one-line errors."""

from __future__ import annotations

import io
import os

import numpy as np

from rareflow.atomic import atomic_path
from rareflow.errors import RareflowError
from rareflow.iact.camera import CameraGeometry

__all__ = ["load_images", "save_images"]

_NPZ_KEYS = ("images", "pix_x", "pix_y", "pix_area", "event_id")


def save_images(
    path: str | os.PathLike[str], images: np.ndarray, camera: CameraGeometry, event_ids: np.ndarray
) -> None:
    """Write images + camera pixel positions/areas + event ids to an ``.npz`` atomically (no pickle)."""
    images = np.asarray(images, dtype=np.float32)
    event_ids = np.asarray(event_ids, dtype=np.int64)
    if images.ndim != 2 or images.shape[1] != camera.n_pixels or images.shape[0] != event_ids.size:
        raise RareflowError(
            f"save_images {os.fspath(path)}: images {images.shape} must be (len(event_ids)={event_ids.size}, "
            f"{camera.n_pixels}) for camera {camera.name!r}"
        )
    buf = io.BytesIO()
    np.savez_compressed(
        buf, images=images, pix_x=camera.pix_x, pix_y=camera.pix_y, pix_area=camera.pix_area,
        event_id=event_ids, camera_name=np.array(camera.name), pix_rotation_deg=np.array(camera.pix_rotation_deg),
    )  # fmt: skip
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def load_images(path: str | os.PathLike[str]) -> tuple[np.ndarray, CameraGeometry, np.ndarray]:
    """Read an ``.npz`` written by :func:`save_images`: ``(images, camera, event_ids)``."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise RareflowError(f"{p}: no such image file; write one with `rareflow simulate --images-out {p}`")
    try:
        with np.load(p, allow_pickle=False) as npz:
            missing = [k for k in _NPZ_KEYS if k not in npz.files]
            if missing:
                raise RareflowError(
                    f"{p}: not a rareflow image file (missing {', '.join(missing)}); re-create it with save_images"
                )
            data = {k: npz[k] for k in npz.files}
    except RareflowError:
        raise
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled objects), OSError ...
        raise RareflowError(
            f"{p}: cannot read image file ({type(exc).__name__}: {exc}); re-create it with save_images"
        ) from exc
    name = str(data.get("camera_name", np.array("custom")))
    rot = float(data.get("pix_rotation_deg", np.array(0.0)))
    camera = CameraGeometry.from_arrays(data["pix_x"], data["pix_y"], data["pix_area"], name=name, pix_rotation_deg=rot)
    images = data["images"]
    if images.ndim != 2 or images.shape != (data["event_id"].size, camera.n_pixels):
        raise RareflowError(
            f"{p}: images {images.shape} do not match {data['event_id'].size} events x {camera.n_pixels} pixels"
        )
    return images, camera, data["event_id"]
