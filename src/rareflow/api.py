"""The Python API behind the CLI: read tables the way the CLI does, train a model.

``load_table`` / ``load_dataset`` / ``simulate_table`` are also ``rareflow.load_table``, ... (imported
on first use, so ``import rareflow`` stays light)::

    X, y, w = rareflow.load_dataset("events.parquet", rare_label="gamma", bulk_label=["proton"])
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from rareflow.io.tables import keep_valid, parse_feature_list, prepare_dataset, read_table
from rareflow.detectors import Detector, detector_class, get_detector
from rareflow.errors import RareflowError
from rareflow.fingerprint import holdout_mask, training_record
from rareflow.persistence import load_model, save_model
from rareflow.seeding import check_seed, method_seed, seed_everything


class LoadedData(NamedTuple):
    """Features (DataFrame), labels (1 rare / 0 bulk, or None without labels) and event weights (or None)."""

    X: pd.DataFrame
    y: np.ndarray | None
    weight: np.ndarray | None


def load_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """The whole table at ``path`` (Parquet, CSV, UCI MAGIC, ctapipe DL1 HDF5), as the CLI reads it."""
    return read_table(path, fmt)


def simulate_table(n_events: int = 4000, rare_fraction: float = 0.5, seed: int = 0, **options: Any) -> pd.DataFrame:
    """The Hillas table of ``rareflow simulate`` (gamma / proton / muon camera images, cleaned).

    ``options`` go to :func:`rareflow.iact.simulate.simulate_events` (``muon_fraction``, ``source``,
    ``dead_pixel_fraction``, ...). Rows with ``is_valid`` False (< 3 pixels after cleaning) hold NaN
    parameters.
    """
    from rareflow.iact.simulate import simulate_events

    return simulate_events(n_events, rare_fraction, seed, **options).table


def load_dataset(
    data: str | Path | pd.DataFrame,
    *,
    rare_label: str = "gamma",
    bulk_label: str | Sequence[str] | None = None,
    features: str | Sequence[str] | None = None,
    fmt: str | None = None,
    drop_nonfinite: bool = False,
    need_labels: bool | None = None,
) -> LoadedData:
    """``X, y, weight`` of a table, selected and validated exactly as ``rareflow train`` does.

    ``bulk_label``: one label or several (default: every label but ``rare_label``); rows of other
    labels are dropped. ``features``: names or ``"a,b,c"`` (default: every numeric column except
    label, weight, ids and ``true_*``). ``need_labels``: None = use labels when the table has a
    ``label`` column holding ``rare_label``; True = require them.
    """
    df = data if isinstance(data, pd.DataFrame) else read_table(data, fmt)
    source = "DataFrame" if isinstance(data, pd.DataFrame) else str(data)
    bulk = [bulk_label] if isinstance(bulk_label, str) else bulk_label
    ds = prepare_dataset(
        df, source, parse_feature_list(features), rare_label, bulk,
        need_labels=bool(need_labels), drop_nonfinite=drop_nonfinite,
    )  # fmt: skip
    return LoadedData(ds.X, ds.y, ds.weight)


def train_model(
    method: str,
    data: str | Path,
    out: str | Path | None = None,
    *,
    features: str | Sequence[str] | None = None,
    fit_on: str | None = None,
    rare_label: str = "gamma",
    bulk_labels: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    fmt: str | None = None,
    drop_nonfinite: bool = False,
    seed: int = 0,
    holdout: float = 0.0,
) -> Detector:
    """Read ``data``, fit ``method`` and (if ``out``) save the model.

    ``seed``: the user seed; the detector gets ``random_state = method_seed(seed, method)``, as in
    ``rareflow compare`` (see :mod:`rareflow.seeding`), unless ``params`` gives ``random_state``.

    ``fit_on``: ``bulk``/``rare`` for one-class methods (default bulk), ``both`` (the default) for
    two-class and supervised ones. One-class methods train on the rows of their class when the
    table has labels (the other class may be absent), on every row otherwise. Rows flagged
    ``is_valid=False`` (images with < 3 pixels) are skipped by design. ``holdout``: fraction of
    the table's rows left out of training (seeded by ``seed``, see :mod:`rareflow.fingerprint`);
    the model remembers the table's fingerprint either way.
    """
    cls = detector_class(method)
    det, params, seed = _new_detector(cls, method, fit_on, params, seed)  # bad parameters fail before the data is read
    df = read_table(data, fmt)
    held = holdout_mask(len(df), holdout, seed)  # on the table's rows, as `score` sees them
    train_df = keep_valid(df.loc[~held].reset_index(drop=True) if held.any() else df, str(data))
    ds = prepare_dataset(
        train_df, str(data), parse_feature_list(features), rare_label, bulk_labels,
        need_labels=cls.requires_labels or (cls.kind == "one-class" and "label" in df.columns),
        drop_nonfinite=drop_nonfinite, needed=params["fit_on"] if cls.kind == "one-class" else "both",
    )
    seed_everything(method_seed(seed, method))  # as the compare runner does before every fit
    det.fit(ds.X, ds.y, sample_weight=ds.weight)
    det.training_data_ = training_record(df, ds.features, holdout, seed)
    if out is not None:
        save_model(det, out)
    return det


def _new_detector(
    cls: type[Detector], method: str, fit_on: str | None, params: dict[str, Any] | None, seed: int
) -> tuple[Detector, dict[str, Any], int]:
    """``(detector, its params, checked seed)``: ``fit_on`` resolved per kind (one-class default
    bulk; two-class only ``both``) and ``random_state = method_seed(seed, method)`` unless given."""
    params = dict(params or {})
    if cls.kind == "one-class":
        params["fit_on"] = fit_on or params.get("fit_on", "bulk")  # checked by the detector (get_detector)
    elif fit_on not in (None, "both"):
        raise RareflowError(f"--fit-on {fit_on}: {cls.kind} method '{method}' trains on both classes (--fit-on both)")
    seed = check_seed(seed, "seed")
    if "random_state" in cls._get_param_names() and "random_state" not in params:
        params["random_state"] = method_seed(seed, method)  # the one meaning of a seed (rareflow.seeding)
    return get_detector(method, **params), params, seed


def train_image_model(
    method: str,
    data: str | Path | pd.DataFrame,
    images: str | Path,
    out: str | Path | None = None,
    *,
    features: str | Sequence[str] | None = None,
    fit_on: str | None = None,
    rare_label: str = "gamma",
    bulk_labels: Sequence[str] | None = None,
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> Detector:
    """Fit an image method on the ``.npz`` of ``rareflow simulate --images-out`` and (if ``out``)
    save it; ``data`` is the event table written beside it (labels, ``is_valid``, Hillas columns),
    joined on ``event_id``. The model remembers the images' camera (name, pixels, grid), so that
    ``rareflow score`` refuses images of another camera. Seeds, ``fit_on`` and ``params`` as
    :func:`train_model`; ``features`` only for methods that read the table too (``cnn-classifier``
    with ``hillas: true``)."""
    from rareflow.iact.images import ImagesWithFeatures, load_simulated

    cls = detector_class(method)
    if getattr(cls, "input", "table") != "image":
        raise RareflowError(f"method '{method}' reads tables, not images; train it without --images")
    det, params, seed = _new_detector(cls, method, fit_on, params, seed)
    imgs = load_simulated(images, data if isinstance(data, pd.DataFrame) else read_table(data))
    df = imgs.table.assign(image_index=np.arange(len(imgs)))
    df = keep_valid(df, str(images))
    uses_table = bool(getattr(det, "uses_features", False))
    ds = prepare_dataset(
        df, str(data), parse_feature_list(features) if uses_table else ["image_index"], rare_label, bulk_labels,
        need_labels=cls.requires_labels or (cls.kind == "one-class" and "label" in df.columns),
        needed=params["fit_on"] if cls.kind == "one-class" else "both",
    )  # fmt: skip
    grids = imgs.grids()[ds.frame["image_index"].to_numpy()]
    X = ImagesWithFeatures(grids, ds.X) if uses_table else grids
    seed_everything(method_seed(seed, method))
    det.fit(X, ds.y, sample_weight=ds.weight)
    det.remember_camera(imgs.camera, imgs.mapping)
    if out is not None:
        save_model(det, out)
    return det


def outliers_command(
    model_path: str | os.PathLike[str],
    n: int,
    method: str,
    sigma: float | str | tuple[float, float] | None,
    seed: int,
    out: str | os.PathLike[str],
    *,
    data: str | os.PathLike[str] | None = None,
    k: int | None = None,
    support: bool = True,
) -> dict[str, Any]:
    """The ``rareflow outliers`` command: generate ``n`` points from a saved flow model into table ``out``.

    ``method``: ``extremal`` (radius :math:`E\\chi_d + p\\,sd`, default ``p`` 2.5), ``gumbel``
    (Gumbel radius at :math:`E + p\\,sd`, default 2.5), ``archetype`` / ``nullspace`` (DeepAA
    Dirichlet / null-space sampling; ``sigma`` = Dirichlet concentration, default 0.1); also
    ``tail`` (chi tail beyond ``p``) and ``inlier``. ``sigma`` may be a range ``"lo:hi"`` for the
    radius methods. DeepAA for ``archetype`` / ``nullspace`` is fitted inside the command, seeded:
    on the flow latent of the rows of table ``data`` when given, else on ``N(0, I)`` latent draws;
    ``k`` archetypes (default: the AA reconstruction-error elbow over 2..12). With ``support``,
    points outside the training data's per-feature [min, max] are rejected and redrawn
    (:mod:`rareflow.outliers.support`); how many goes to the summary and the table metadata.
    Returns a summary dict (rows, method, sigma, features, radius quantiles, DeepAA ``k``,
    ``outside_support_rejected``).
    """
    from rareflow.outliers.io import ALL_METHODS, CLI_METHODS, flow_of, parse_sigma, write_outliers
    from rareflow.outliers.support import fill_inside, support_of

    if method not in ALL_METHODS:
        raise RareflowError(f"unknown outlier method {method!r}; use one of {' | '.join(CLI_METHODS)} (or tail, inlier)")
    if int(n) < 1:
        raise RareflowError(f"--n must be >= 1, got {n}")
    detector = load_model(model_path)
    flow = flow_of(detector, model_path)
    features = [str(c) for c in getattr(detector, "feature_names_in_", [])] or [
        f"x{j}" for j in range(flow.config.features)
    ]
    draw, info = _drawer(flow, method, parse_sigma(sigma), int(seed), features, data, k)
    box = support_of(detector, flow) if support else None
    gen, rejected = fill_inside(draw, int(n), box)
    from scipy import stats

    d = flow.config.features
    per_row = {"sigma": gen.p, "radius": gen.radius, "chi_tail": stats.chi.sf(gen.radius, d), "seed": np.full(len(gen.x), int(seed))}
    info["outside_support_rejected"] = rejected
    params = {k_: v for k_, v in gen.params.items() if k_ != "A"}
    params.update(method=method, sigma=sigma if not isinstance(sigma, tuple) else list(sigma), model=str(model_path),
                  model_method=detector.name, latent_dim=d, support=None if box is None else box.describe(), **info)  # fmt: skip
    write_outliers(out, gen.x, features, params, per_row)
    q = np.quantile(gen.radius, [0.0, 0.5, 1.0])
    return {"rows": int(len(gen.x)), "method": method, "sigma": params.get("p", params.get("concentration")),
            "features": features, "radius_min": float(q[0]), "radius_median": float(q[1]), "radius_max": float(q[2]),
            "out": str(out), "support": None if box is None else box.source, **info}  # fmt: skip


def _drawer(flow: Any, method: str, p: Any, seed: int, features: list[str], data: Any,
            k: int | None) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """``(draw(m, attempt) -> Generated, info)``: attempt 0 uses ``seed`` itself, a redraw
    ``derive_seed(seed, "redraw", attempt)``; integer columns are rounded back."""
    import torch

    from rareflow.seeding import derive_seed

    def seed_of(attempt: int) -> int:
        return seed if attempt == 0 else derive_seed(seed, "redraw", attempt)

    info: dict[str, Any] = {}
    if method in ("archetype", "nullspace"):
        model, info = _deep_aa(flow, method, p, seed, features, data, k)
        from rareflow.outliers.deep_aa import sample_archetype, sample_nullspace

        sampler = sample_archetype if method == "archetype" else sample_nullspace
        c = 0.1 if p is None else float(p)
    else:
        from rareflow.outliers.latent import generate

    def draw(m: int, attempt: int) -> Any:
        if method in ("archetype", "nullspace"):
            gen = sampler(model, m, concentration=c, seed=derive_seed(seed_of(attempt), "sample"))
        else:
            gen = generate(flow, m, method, p if p is not None else "default", seed=seed_of(attempt))
        mask_device = flow.pre.dequant_mask.device
        gen.x = flow.pre.round_discrete(torch.as_tensor(gen.x, device=mask_device)).cpu().numpy()
        return gen

    return draw, info


def _deep_aa(flow: Any, method: str, p: Any, seed: int, features: list[str], data: Any, k: int | None) -> tuple[Any, dict[str, Any]]:
    from rareflow.outliers.deep_aa import fit_deep_aa
    from rareflow.seeding import derive_seed

    if isinstance(p, tuple):
        raise RareflowError(f"--sigma for {method} is a Dirichlet concentration (one number > 0), not a range")
    X = None
    if data is not None:
        from rareflow.io.tables import check_finite, read_table

        df = read_table(data)
        missing = [f for f in features if f not in df.columns]
        if missing:
            raise RareflowError(f"{data}: lacks the model's feature column(s) {missing}")
        X = check_finite(df, features, str(data)).loc[:, features].to_numpy(dtype=float)
    model, fit_info = fit_deep_aa(flow, X, k, seed=derive_seed(seed, "deepaa"))
    info = {"deepaa_k": fit_info["k"], "deepaa_recon_mse": fit_info["recon_mse"],
            "deepaa_fit_on": "data" if X is not None else "latent N(0, I)"}  # fmt: skip
    return model, info
