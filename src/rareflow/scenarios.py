"""The two problem settings of the seeds, kept apart on purpose.

**anomaly** (one-class learning): the training set holds one class only (``fit_on``: bulk or
rare), optionally contaminated by a fraction of the other class that the detector does not know
about; the test set holds both classes in comparable numbers.

**rare** (two-class learning): the training set holds both classes as they come (simulations,
stratified split); the test set holds the rare class at a small fraction ``f`` (1e-2 .. 1e-4).
By default ``f`` is realised with event weights, as pyirf reweights simulations to a target
spectrum: every test event is kept, bulk events weigh 1 and rare events weigh

.. math:: w_r = \\frac{f}{1-f}\\,\\frac{N_b}{N_r},

so the weighted rare share is exactly ``f`` while efficiencies still rest on every simulated
event (1e-4 stays measurable). ``fraction_mode="subsample"`` instead discards rare test events;
when ``f`` would need more bulk events than exist, it says so and uses the smallest reachable
fraction (``min_rare_events`` rare events against all bulk events).

In both settings a part of the training split (``calibration_fraction``) can be held out from
fitting: the threshold is chosen on it, still training data, so in-sample over-fitting of a
detector cannot leak into its cut. Several seeds give independent splits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from rareflow.errors import RareflowError
from rareflow.seeding import rng

log = logging.getLogger(__name__)


@dataclass
class Split:
    """Indices into a :class:`~rareflow.io.tables.Dataset` for one seed."""

    seed: int
    fit_idx: np.ndarray
    calib_idx: np.ndarray
    test_idx: np.ndarray
    test_weight: np.ndarray
    labelled_training: bool  # False: one-class training data given to detectors without labels
    info: dict[str, Any] = field(default_factory=dict)


def _take(gen: np.random.Generator, idx: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    perm = gen.permutation(idx)
    return np.sort(perm[:n]), perm[n:]


def _split_fraction(gen: np.random.Generator, idx: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(part with ``frac`` of idx, rest), at least one event in the rest when frac < 1."""
    n = int(round(frac * len(idx)))
    part, rest = _take(gen, idx, n)
    return part, np.sort(rest)


def _calibration(gen: np.random.Generator, train: np.ndarray, y: np.ndarray, frac: float) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (fit, calibration) split of the training indices."""
    if frac <= 0:
        return train, np.array([], dtype=np.int64)
    fit, cal = [], []
    for cls in (0, 1):
        idx = train[y[train] == cls]
        c, f = _split_fraction(gen, idx, frac)
        fit.append(f)
        cal.append(c)
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(cal))


def anomaly_split(
    y: np.ndarray,
    seed: int,
    fit_on: Literal["bulk", "rare"] = "bulk",
    test_size: float = 0.5,
    contamination: float = 0.0,
    calibration_fraction: float = 0.2,
) -> Split:
    """One-class training set (class ``fit_on`` + ``contamination``), ~balanced test set."""
    gen = rng(seed)
    own_cls = 1 if fit_on == "rare" else 0
    own = np.flatnonzero(y == own_cls)
    other = np.flatnonzero(y != own_cls)
    own_test, own_train = _split_fraction(gen, own, test_size)
    n_other_test = min(len(other), len(own_test))
    other_test, other_rest = _take(gen, other, n_other_test)
    n_cont = int(round(contamination / (1.0 - contamination) * len(own_train))) if contamination > 0 else 0
    if n_cont > len(other_rest):
        raise RareflowError(
            f"contamination {contamination} needs {n_cont} events of the other class for training, "
            f"only {len(other_rest)} left after the test set; lower scenario.contamination"
        )
    cont, _ = _take(gen, other_rest, n_cont)
    train = np.sort(np.concatenate([own_train, cont]))
    # Calibration events come from the training pool as a one-class user would have it (unlabelled).
    cal, fit = _split_fraction(gen, train, calibration_fraction) if calibration_fraction > 0 else (np.array([], dtype=np.int64), train)
    test = np.sort(np.concatenate([own_test, other_test]))
    if len(fit) == 0 or len(test) == 0:
        raise RareflowError("the anomaly split left no training or no test events; use more data or change test_size")
    info = {
        "n_train_own": int(len(own_train)),
        "n_train_contamination": int(n_cont),
        "n_test_rare": int((y[test] == 1).sum()),
        "n_test_bulk": int((y[test] == 0).sum()),
        "test_rare_fraction": float((y[test] == 1).mean()),
    }
    return Split(seed, fit, cal, test, np.ones(len(test)), labelled_training=False, info=info)


def _subsampled_test(
    gen: np.random.Generator, bulk_test: np.ndarray, rare_test: np.ndarray, f: float, min_rare_events: int
) -> tuple[np.ndarray, str | None]:
    """Test rows with rare fraction ``f`` by discarding events (``fraction_mode: subsample``), and
    the warning when fewer than ``min_rare_events`` rare events make ``f`` unreachable."""
    warning = None
    n_rare = int(round(f / (1 - f) * len(bulk_test)))
    if n_rare > len(rare_test):  # too few rare events: thin the bulk instead
        n_bulk = int(round(len(rare_test) * (1 - f) / f))
        bulk_test, _ = _take(gen, bulk_test, n_bulk)
        n_rare = len(rare_test)
    if n_rare < min_rare_events:
        n_rare = min(min_rare_events, len(rare_test))
        reach = n_rare / (n_rare + len(bulk_test))
        warning = (
            f"test_rare_fraction {f:g} needs {int(np.ceil(min_rare_events * (1 - f) / f))} bulk test events "
            f"for {min_rare_events} rare ones, only {len(bulk_test)} exist; using the smallest reachable "
            f"fraction {reach:.3g} (use fraction_mode: weights to keep every event)"
        )
        log.warning(warning)
    rare_keep, _ = _take(gen, rare_test, n_rare)
    return np.sort(np.concatenate([bulk_test, rare_keep])), warning


def rare_split(
    y: np.ndarray,
    seed: int,
    test_size: float = 0.5,
    test_rare_fraction: float = 1e-3,
    fraction_mode: Literal["weights", "subsample"] = "weights",
    min_rare_events: int = 10,
    calibration_fraction: float = 0.2,
) -> Split:
    """Stratified train/test split; the test set's rare fraction realised by weights or subsampling."""
    if not 0 < test_rare_fraction < 1:
        raise RareflowError(f"test_rare_fraction must lie in (0, 1), got {test_rare_fraction}")
    gen = rng(seed)
    tests, trains = [], []
    for cls in (0, 1):
        t, r = _split_fraction(gen, np.flatnonzero(y == cls), test_size)
        tests.append(t)
        trains.append(r)
    train = np.sort(np.concatenate(trains))
    if (y[train] == 1).sum() == 0 or (y[train] == 0).sum() == 0:
        raise RareflowError("the rare split needs both classes in training; the data has too few events of one class")
    fit, cal = _calibration(gen, train, y, calibration_fraction)
    bulk_test, rare_test = tests
    if len(bulk_test) == 0 or len(rare_test) == 0:
        raise RareflowError("the test split has no events of one class; lower test_size or add data")
    f = test_rare_fraction
    warning = None
    if fraction_mode == "weights":
        w_rare = f / (1 - f) * len(bulk_test) / len(rare_test)
        test = np.sort(np.concatenate([bulk_test, rare_test]))
        weight = np.where(y[test] == 1, w_rare, 1.0)
        realised = f
    else:
        test, warning = _subsampled_test(gen, bulk_test, rare_test, f, min_rare_events)
        weight = np.ones(len(test))
        realised = float((y[test] == 1).mean())
    info = {
        "n_train_rare": int((y[train] == 1).sum()),
        "n_train_bulk": int((y[train] == 0).sum()),
        "n_calibration": int(len(cal)),
        "n_test_rare": int((y[test] == 1).sum()),
        "n_test_bulk": int((y[test] == 0).sum()),
        "test_rare_fraction": float(realised),
        "requested_test_rare_fraction": float(f),
        "fraction_mode": fraction_mode,
    }
    if warning:
        info["warning"] = warning
    return Split(seed, fit, cal, test, weight, labelled_training=True, info=info)
