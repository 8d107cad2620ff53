r"""Vectorised Hillas and derived image parameters for batches of cleaned IACT images.

All angles and lengths are in **degrees** (camera/telescope frame, angles from the optical axis),
intensities in photo-electrons (p.e.). For an event with cleaned pixel charges :math:`q_i > 0` at
:math:`(x_i, y_i)` (only pixels that survived the cleaning) and a source position
:math:`(x_s, y_s)` (default the camera centre (0, 0)):

Hillas (1985, Proc. 19th ICRC 3, 445) moments, with ctapipe's ``hillas_parameters`` conventions
------------------------------------------------------------------------------------------------
* ``hillas_intensity`` :math:`S = \sum q_i` ("size").
* ``hillas_x, hillas_y`` centroid :math:`\bar x = \sum q_i x_i / S`, :math:`\bar y`;
  ``hillas_r`` :math:`= \sqrt{\bar x^2+\bar y^2}`, ``hillas_phi`` :math:`=\mathrm{atan2}(\bar y,\bar x)` [deg].
* covariance :math:`\sigma_{xx} = \sum q_i (x_i-\bar x)^2 / S` etc. (weights :math:`q_i`, ddof = 0);
  ``hillas_length`` :math:`= \sqrt{\lambda_1}`, ``hillas_width`` :math:`= \sqrt{\lambda_2}` with
  :math:`\lambda_{1,2}` its eigenvalues (eigenvalues at the rounding level, e.g. collinear pixels,
  are set to 0, as ctapipe does with ``isclose(eig, 0, atol=eps)``).
* ``hillas_psi`` — angle of the major axis to the +x axis, in (-90, 90] deg
  (:math:`\psi = \tfrac12 \mathrm{atan2}(2\sigma_{xy}, \sigma_{xx}-\sigma_{yy})`; ctapipe's
  ``arctan(v_y / v_x)`` of the major eigenvector is the same angle).
* longitudinal / transverse coordinates :math:`l_i = (x_i-\bar x)\cos\psi + (y_i-\bar y)\sin\psi`,
  :math:`t_i = -(x_i-\bar x)\sin\psi + (y_i-\bar y)\cos\psi`;
  ``hillas_skewness`` :math:`=\langle l^3\rangle/\mathrm{length}^3`,
  ``hillas_kurtosis`` :math:`=\langle l^4\rangle/\mathrm{length}^4` (not excess; a Gaussian gives 3),
  :math:`\langle\cdot\rangle` the :math:`q`-weighted mean.

Source-dependent parameters (MAGIC MARS ``MHillasSrc``; Fegan 1997, J. Phys. G 23, 1013)
---------------------------------------------------------------------------------------
With :math:`d_x = \bar x - x_s`, :math:`d_y = \bar y - y_s`, :math:`c=\cos\psi`, :math:`s=\sin\psi`:

* ``dist`` :math:`= \sqrt{d_x^2+d_y^2}` (distance source -> centroid);
* ``alpha`` :math:`= \arcsin((c\,d_y - s\,d_x)/\mathrm{dist})` in [-90, 90] deg: the signed angle
  between the major axis and the source -> centroid line (small for gammas from the source;
  use ``abs(alpha)`` for the usual 0..90 deg alpha plot);
* ``miss`` :math:`= |c\,d_y - s\,d_x| = \mathrm{dist}\,|\sin\alpha|` (distance of the source from the
  major axis, Hillas 1985);
* :math:`\sigma_{cda} = \mathrm{sign}(c\,d_x + s\,d_y)` (sign of MARS ``fCosDeltaAlpha``, +1 when the axis
  direction :math:`(c, s)` points away from the source).

MAGIC extended parameters (MARS ``MHillasExt`` / ``MNewImagePar``; Bock et al. 2004, NIM A 516, 511)
--------------------------------------------------------------------------------------------------
* ``conc1`` (MAGIC fConc1) = brightest cleaned pixel / :math:`S`;
  ``conc2`` (MAGIC fConc) = (two brightest cleaned pixels) / :math:`S`.
* ``asym`` (MAGIC fAsym) :math:`= \sigma_{cda}[(\bar x - x_{max})c + (\bar y - y_{max})s]`, the
  centroid-minus-brightest-pixel vector projected onto the major axis.
* ``m3_long`` (fM3Long) :math:`= \sigma_{cda}\,\sqrt[3]{\langle l^3\rangle}`,
  ``m3_trans`` (fM3Trans) :math:`= \sigma_{cda}\,\sqrt[3]{\langle t^3\rangle}` [deg]. MARS warns that
  fAsym and fM3* must be multiplied by the sign of fCosDeltaAlpha before use; rareflow does it, so
  ``m3_long > 0`` means the image tail points away from the source.

Other (ctapipe ``leakage_parameters`` / ``morphology``)
------------------------------------------------------
* ``leakage_intensity_width_1`` / ``_2``: fraction of :math:`S` in the outermost 1 / 2 pixel rings.
* ``n_pixels``: surviving pixels; ``n_islands``: connected groups of them.

Images with fewer than 3 surviving pixels (or :math:`S \le 0`) are flagged: ``is_valid`` is
``False`` (see :func:`extract_parameters`) and every parameter except ``hillas_intensity``,
``n_pixels`` and ``n_islands`` is NaN — never a silently wrong number.

Implementation: per chunk of events, the surviving (pixel, event) pairs are listed once and every
weighted sum is one ``numpy.bincount`` over them (two passes: centroid, then centred moments, as
ctapipe), so the cost scales with the number of surviving pixels, not with the camera size.
Chunks run on a thread pool (most numpy loops release the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from rareflow.iact.camera import CameraGeometry
from rareflow.iact.cleaning import clean_transposed, islands_from_mask_t, mask_nodes
from rareflow.errors import RareflowError
from rareflow.io.schema import HILLAS_COLUMNS, source_parameters

__all__ = [
    "HILLAS_COLUMNS",
    "MAGIC_COLUMNS",
    "MM_PER_DEG_MAGIC",
    "extract_parameters",
    "hillas_parameters",
    "magic_view",
]

MAGIC_COLUMNS: list[str] = [
    "fLength", "fWidth", "fSize", "fConc", "fConc1", "fAsym", "fM3Long", "fM3Trans", "fAlpha", "fDist",
]  # fmt: skip

#: MAGIC plate scale: 17 m focal length -> 17000 mm * pi / 180 = 296.7 mm per degree
#: (MARS ``MGeomCamMagic``: fConvMm2Deg = 0.00337 deg/mm).
MM_PER_DEG_MAGIC: float = 17000.0 * np.pi / 180.0

_ALWAYS_DEFINED = ("hillas_intensity", "n_pixels", "n_islands")
_EPS = np.finfo(np.float64).eps


def _border_weights(camera: CameraGeometry) -> tuple[np.ndarray, np.ndarray]:
    key = "hillas_border"
    if key not in camera._cache:
        camera._cache[key] = (camera.border_mask(1).astype(np.float64), camera.border_mask(2).astype(np.float64))
    return camera._cache[key]


def _chunk_parameters(
    images: np.ndarray, mask_t: np.ndarray, camera: CameraGeometry, source: tuple[float, float]
) -> dict[str, np.ndarray]:
    """All parameters of one chunk: ``images`` (n, P) event-major, ``mask_t`` (P, n) pixel-major."""
    n = images.shape[0]
    pix, ev = mask_nodes(mask_t)
    q = images[ev, pix].astype(np.float64)
    n_pix = np.bincount(ev, minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _moments(q, camera.pix_x[pix], camera.pix_y[pix], ev, n)
        c, s = np.cos(np.radians(out["hillas_psi"])), np.sin(np.radians(out["hillas_psi"]))
        src = source_parameters(out["hillas_x"], out["hillas_y"], c, s, source)
        sign = src.pop("_sign_cda")
        out.update(src)
        size = out["hillas_intensity"]
        border1, border2 = _border_weights(camera)
        out["leakage_intensity_width_1"] = np.bincount(ev, weights=q * border1[pix], minlength=n) / size
        out["leakage_intensity_width_2"] = np.bincount(ev, weights=q * border2[pix], minlength=n) / size
        q1, q2, imax = _two_brightest(q, ev, pix, n)
        out["conc1"], out["conc2"] = q1 / size, (q1 + q2) / size
        out["asym"] = sign * ((out["hillas_x"] - camera.pix_x[imax]) * c + (out["hillas_y"] - camera.pix_y[imax]) * s)
        out["m3_long"] = sign * np.cbrt(out.pop("_m3l"))
        out["m3_trans"] = sign * np.cbrt(out.pop("_m3t"))
    out["n_pixels"] = n_pix.astype(np.int64)
    out["n_islands"] = islands_from_mask_t(mask_t, camera, (pix, ev)).astype(np.int64)
    valid = (n_pix >= 3) & (size > 0)
    for key, val in out.items():
        if key not in _ALWAYS_DEFINED:
            val[~valid] = np.nan
    out["is_valid"] = valid
    return out


def _moments(q: np.ndarray, x: np.ndarray, y: np.ndarray, ev: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Hillas moments per event from the surviving pixels (charge q at x, y of event ev).

    Two passes like ctapipe: centroid first, then centred second to fourth moments.
    """

    def mean(w: np.ndarray) -> np.ndarray:
        return np.bincount(ev, weights=w, minlength=n) / size

    size = np.bincount(ev, weights=q, minlength=n)
    cx, cy = mean(q * x), mean(q * y)
    dx, dy = x - cx[ev], y - cy[ev]
    length, width, psi = _eigen(mean(q * dx * dx), mean(q * dx * dy), mean(q * dy * dy))
    c, s = np.cos(psi), np.sin(psi)
    lon = dx * c[ev] + dy * s[ev]
    tra = -dx * s[ev] + dy * c[ev]
    ql2 = q * lon * lon
    m3l, m4l = mean(ql2 * lon), mean(ql2 * lon * lon)
    return {
        "hillas_intensity": size,
        "hillas_x": cx,
        "hillas_y": cy,
        "hillas_r": np.hypot(cx, cy),
        "hillas_phi": np.degrees(np.arctan2(cy, cx)),
        "hillas_length": length,
        "hillas_width": width,
        "hillas_psi": np.degrees(psi),
        "hillas_skewness": m3l / length**3,
        "hillas_kurtosis": m4l / length**4,
        "_m3l": m3l,
        "_m3t": mean(q * tra * tra * tra),
    }


def _eigen(sxx: np.ndarray, sxy: np.ndarray, syy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Length, width (sqrt of the covariance eigenvalues) and psi [rad] in (-pi/2, pi/2]."""
    half_tr = 0.5 * (sxx + syy)
    lam1 = half_tr + np.hypot(0.5 * (sxx - syy), sxy)
    lam2 = (sxx * syy - sxy * sxy) / lam1  # accurate small eigenvalue (det / large one)
    # eigenvalues at rounding level are zero (collinear pixels), like ctapipe's isclose(eig, 0, atol=eps)
    noise = np.maximum(8.0 * _EPS * lam1, _EPS)
    lam1 = np.where(np.abs(lam1) <= _EPS, 0.0, lam1)
    lam2 = np.where(np.abs(lam2) <= noise, 0.0, lam2)
    psi = 0.5 * np.arctan2(2 * sxy, sxx - syy)
    psi = np.where(psi <= -np.pi / 2, psi + np.pi, psi)
    psi = np.where((sxy == 0) & (sxx == syy), np.pi / 2, psi)  # round image: ctapipe's eigh choice
    return np.sqrt(np.maximum(lam1, 0.0)), np.sqrt(np.maximum(lam2, 0.0)), psi


def _two_brightest(q: np.ndarray, ev: np.ndarray, pix: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brightest and second-brightest cleaned charge per event and the brightest pixel's index."""
    q1 = np.full(n, -np.inf)
    np.maximum.at(q1, ev, q)
    is_max = q == q1[ev]
    imax = np.zeros(n, dtype=np.int64)
    imax[ev[is_max][::-1]] = pix[is_max][::-1]  # lowest pixel index wins ties (MARS: first maximum)
    rest = np.where(is_max & (pix == imax[ev]), -np.inf, q)
    q2 = np.full(n, -np.inf)
    np.maximum.at(q2, ev, rest)
    q1 = np.where(np.isfinite(q1), q1, 0.0)
    q2 = np.where(np.isfinite(q2), q2, 0.0)
    return q1, q2, imax


def _check_images(images: np.ndarray, camera: CameraGeometry, what: str) -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != camera.n_pixels:
        raise RareflowError(
            f"{what}: images must have shape (n_events, {camera.n_pixels}) for camera "
            f"{camera.name!r}, got {np.shape(images)}; pass one charge per pixel"
        )
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    return arr


def _run_chunks(n: int, chunk_size: int, n_jobs: int | None, fn) -> list[dict[str, np.ndarray]]:  # type: ignore[no-untyped-def]
    bounds = [(a, min(a + chunk_size, n)) for a in range(0, n, chunk_size)]
    workers = n_jobs if n_jobs is not None else min(len(bounds), os.cpu_count() or 1)
    if workers <= 1 or len(bounds) <= 1:
        return [fn(a, b) for a, b in bounds]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda ab: fn(*ab), bounds))


def _assemble(parts: list[dict[str, np.ndarray]], with_flag: bool) -> pd.DataFrame:
    cols = HILLAS_COLUMNS + (["is_valid"] if with_flag else [])
    if not parts:
        empty = {c: np.zeros(0, dtype=np.int64 if c in ("n_pixels", "n_islands") else np.float64) for c in cols}
        if with_flag:
            empty["is_valid"] = np.zeros(0, dtype=bool)
        return pd.DataFrame(empty)
    data = {c: np.concatenate([p[c] for p in parts]) for c in cols}
    return pd.DataFrame(data, columns=cols)


def extract_parameters(
    images: np.ndarray,
    camera: CameraGeometry,
    *,
    picture_thresh: float | np.ndarray = 7.0,
    boundary_thresh: float | np.ndarray = 5.0,
    min_number_picture_neighbors: int = 0,
    keep_isolated_pixels: bool = False,
    source: tuple[float, float] = (0.0, 0.0),
    chunk_size: int = 1024,
    n_jobs: int | None = 1,
) -> pd.DataFrame:
    """Tail-cuts cleaning + all parameters for a batch ``images`` (n_events, n_pixels) in p.e.

    Cleaning arguments as ctapipe's ``tailcuts_clean``. Returns :data:`HILLAS_COLUMNS` plus
    ``is_valid`` (False for < 3 surviving pixels; those rows hold NaN parameters). Events are
    processed in chunks of ``chunk_size``; ``n_jobs`` threads (``None`` = all cores) share the
    chunks, which helps little because parts of the work hold the GIL (default 1).
    """
    arr = _check_images(images, camera, "extract_parameters")

    def one(a: int, b: int) -> dict[str, np.ndarray]:
        mask_t = clean_transposed(
            np.ascontiguousarray(arr[a:b].T),
            camera,
            picture_thresh,
            boundary_thresh,
            min_number_picture_neighbors,
            keep_isolated_pixels,
        )
        return _chunk_parameters(arr[a:b], mask_t, camera, source)

    return _assemble(_run_chunks(arr.shape[0], chunk_size, n_jobs, one), with_flag=True)


def hillas_parameters(
    images: np.ndarray,
    camera: CameraGeometry,
    masks: np.ndarray | None = None,
    *,
    source: tuple[float, float] = (0.0, 0.0),
    chunk_size: int = 1024,
    n_jobs: int | None = 1,
) -> pd.DataFrame:
    """Parameters of already-cleaned images: exactly :data:`HILLAS_COLUMNS`.

    ``masks`` (bool, same shape as ``images``) selects the surviving pixels; ``None`` means every
    pixel with a non-zero charge. Rows with < 3 pixels hold NaN except intensity, n_pixels, n_islands.
    """
    arr = _check_images(images, camera, "hillas_parameters")
    mask_all = arr != 0 if masks is None else np.asarray(masks, dtype=bool).reshape(arr.shape)

    def one(a: int, b: int) -> dict[str, np.ndarray]:
        return _chunk_parameters(arr[a:b], np.ascontiguousarray(mask_all[a:b].T), camera, source)

    return _assemble(_run_chunks(arr.shape[0], chunk_size, n_jobs, one), with_flag=False)


def magic_view(df: pd.DataFrame, mm_per_deg: float = MM_PER_DEG_MAGIC) -> pd.DataFrame:
    """The MAGIC / UCI ``magic04`` view of a rareflow parameter table.

    Columns :data:`MAGIC_COLUMNS`, in MAGIC's units: lengths in **mm** on the MAGIC camera (degrees
    times ``mm_per_deg``, default the MAGIC 17 m focal-length plate scale, 296.7 mm/deg),
    ``fSize = log10(hillas_intensity)`` (rareflow intensities are p.e., MAGIC's were "photons":
    expect an offset), ``fConc = conc2``, ``fConc1 = conc1``, ``fAsym``, ``fM3Long``, ``fM3Trans``
    signed as MARS after the fCosDeltaAlpha sign, ``fAlpha = |alpha|`` in deg (0..90, as in the UCI
    file), ``fDist = dist`` in mm. ``label`` is passed through when present.
    """
    need = ["hillas_length", "hillas_width", "hillas_intensity", "conc1", "conc2", "asym", "m3_long",
            "m3_trans", "alpha", "dist"]  # fmt: skip
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise RareflowError(
            f"magic_view: table lacks column(s) {', '.join(missing)}; compute them with extract_parameters"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        out = pd.DataFrame(
            {
                "fLength": df["hillas_length"].to_numpy(float) * mm_per_deg,
                "fWidth": df["hillas_width"].to_numpy(float) * mm_per_deg,
                "fSize": np.log10(df["hillas_intensity"].to_numpy(float)),
                "fConc": df["conc2"].to_numpy(float),
                "fConc1": df["conc1"].to_numpy(float),
                "fAsym": df["asym"].to_numpy(float) * mm_per_deg,
                "fM3Long": df["m3_long"].to_numpy(float) * mm_per_deg,
                "fM3Trans": df["m3_trans"].to_numpy(float) * mm_per_deg,
                "fAlpha": np.abs(df["alpha"].to_numpy(float)),
                "fDist": df["dist"].to_numpy(float) * mm_per_deg,
            },
            index=df.index,
        )
    if "label" in df.columns:
        out["label"] = df["label"].to_numpy()
    return out
