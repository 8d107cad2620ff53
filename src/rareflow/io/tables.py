"""Feature tables: read (Parquet, CSV, UCI MAGIC, ctapipe DL1 HDF5), validate once, write Parquet.

The contract (SPEC "Feature tables"): a pandas DataFrame with numeric feature columns, a
``label`` column of strings, an optional ``weight`` column and ``true_*`` truth columns that are
never features. Every check raises :class:`RareflowError` with one line naming the file, the
column and the row, and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rareflow.atomic import atomic_path
from rareflow.io.magic import looks_like_magic, read_magic
from rareflow.errors import RareflowError, short_repr

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv", "magic", "dl1")
LABEL = "label"
WEIGHT = "weight"
#: Columns that are never used as features when the feature list is automatic.
META_COLUMNS = frozenset(
    {LABEL, WEIGHT, "score", "prediction", "threshold", "event_id", "obs_id", "tel_id", "is_valid", "row", "image_index"}
)


def detect_format(path: Path, fmt: str | None) -> str:
    """The table format from ``fmt`` or the file name."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise RareflowError(f"unknown format {short_repr(fmt)}; use one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        return "parquet"
    if suffixes and suffixes[-1] in (".csv",) or suffixes[-2:] == [".csv", ".gz"]:
        return "csv"
    if suffixes and suffixes[-1] in (".h5", ".hdf5"):
        return "dl1"
    if looks_like_magic(path):
        return "magic"
    raise RareflowError(
        f"{path}: unknown table format {''.join(path.suffixes) or '(no extension)'}; "
        f"use .parquet/.csv/.h5 or pass --format {{{'|'.join(FORMATS)}}}"
    )


def read_table(path: str | Path, fmt: str | None = None) -> pd.DataFrame:
    """Read a feature table (no feature selection yet); errors for missing, unreadable or empty files."""
    path = Path(path)
    if not path.exists():
        raise RareflowError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise RareflowError(f"{path}: is a directory; give a table file")
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        df = _read_parquet(path)
    elif fmt == "csv":
        df = _read_csv(path)
    elif fmt == "magic":
        df = read_magic(path)
    else:
        df = _read_dl1(path)
    if len(df) == 0:
        raise RareflowError(f"{path}: the table has no rows; give a table with events")
    if LABEL in df.columns:
        df[LABEL] = df[LABEL].astype(str)
    return df


def _read_dl1(path: Path) -> pd.DataFrame:
    """ctapipe DL1: through ctapipe's ``TableLoader`` when ctapipe is installed (every telescope,
    ``obs_id``/``event_id``/``tel_id`` kept, :func:`rareflow.io.dl2.read_dl1`); without ctapipe, or
    for a file TableLoader cannot read (no subarray description), the PyTables reader
    :func:`rareflow.io.dl1.read_dl1_parameters`."""
    from rareflow.io.dl1 import read_dl1_parameters  # optional [iact] readers

    try:
        import ctapipe.io  # noqa: F401
    except ImportError:
        return read_dl1_parameters(path)
    from rareflow.io.dl2 import read_dl1

    try:
        return read_dl1(path)
    except RareflowError as exc:
        log.debug("%s: TableLoader failed (%s); using the PyTables DL1 reader", path, exc)
        return read_dl1_parameters(path)


def _read_parquet(path: Path) -> pd.DataFrame:
    check_unique_columns(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for damaged files
        raise RareflowError(f"{path}: cannot read as Parquet ({type(exc).__name__}); is the file complete?") from None


def check_unique_columns(path: Path) -> None:
    """Refuse a Parquet file whose schema names a column twice (pyarrow cannot select it)."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
    except Exception:  # damaged: the reader below says so
        return
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RareflowError(
            f"{path}: column name(s) {short_repr(dup)} appear more than once; rename them so every column is unique"
        )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise RareflowError(f"{path}: the CSV file is empty; expected a header row and events") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RareflowError(f"{path}: cannot parse as CSV ({str(exc).splitlines()[0]})") from None


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """Write ``df`` as Parquet atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def parse_feature_list(spec: str | Sequence[str] | None) -> list[str] | None:
    """``"a,b,c"`` or a list -> list of names; None/empty -> None (automatic)."""
    if spec is None:
        return None
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s).strip() for s in spec]
    names = [n for n in names if n]
    return names or None


def select_features(df: pd.DataFrame, features: Sequence[str] | None, source: str = "table") -> list[str]:
    """Feature columns: the requested ones (checked), or every numeric non-meta, non-``true_`` column."""
    if features is None:
        for c in df.columns:
            if c not in META_COLUMNS and not str(c).startswith("true_"):
                _refuse_bad_cells(df, c, source)
        cols = [
            c
            for c in df.columns
            if c not in META_COLUMNS
            and not str(c).startswith("true_")
            and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])
        ]
        if not cols:
            raise RareflowError(f"{source}: no numeric feature columns found; columns are {list(df.columns)}")
        return cols
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise RareflowError(
            f"{source}: unknown feature column(s) {missing}; available: {', '.join(map(str, df.columns))}"
        )
    dup = sorted({f for f in features if list(features).count(f) > 1})
    if dup:
        raise RareflowError(f"{source}: feature column(s) {dup} listed twice in --features")
    for f in features:
        if f == LABEL or f == WEIGHT or str(f).startswith("true_"):
            raise RareflowError(f"{source}: column {short_repr(f)} cannot be a feature (label, weight and true_* are not)")
        if not pd.api.types.is_numeric_dtype(df[f]) or pd.api.types.is_bool_dtype(df[f]):
            _refuse_bad_cells(df, f, source)
            raise RareflowError(f"{source}: column {short_repr(f)} is not numeric (dtype {df[f].dtype}); drop it from --features")
    return list(features)


VALID = "is_valid"


def valid_rows(df: pd.DataFrame) -> np.ndarray:
    """Rows usable for analysis: ``is_valid`` (simulate/extract flag images with < 3 pixels) or all."""
    if VALID not in df.columns:
        return np.ones(len(df), dtype=bool)
    return df[VALID].fillna(False).astype(bool).to_numpy()


def keep_valid(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """The rows with ``is_valid`` true (by design: flagged rows hold NaN parameters), logged."""
    valid = valid_rows(df)
    if valid.all():
        return df
    if not valid.any():
        raise RareflowError(f"{source}: every row has {VALID}=False; nothing to train on")
    log.info("%s: using %d rows with %s=True, skipping %d flagged rows", source, valid.sum(), VALID, (~valid).sum())
    return df.loc[valid].reset_index(drop=True)


def _refuse_bad_cells(df: pd.DataFrame, column: Any, source: str) -> None:
    """A text column whose cells are mostly numbers is a feature with bad cells: name the first one."""
    col = df[column]
    if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
        return
    present = col.notna().to_numpy()
    numbers = pd.to_numeric(col, errors="coerce").notna().to_numpy()
    if present.sum() == 0 or numbers.sum() <= 0.5 * present.sum():
        return  # a genuine text column (names, categories): not a feature
    row = int(np.argmax(present & ~numbers))
    raise RareflowError(
        f"{source}: column {short_repr(str(column))} is numeric except {int((present & ~numbers).sum())} cell(s), "
        f"first at row {row}: {short_repr(col.iloc[row], 40)}; fix those cells or drop the rows"
    )


def check_finite(
    df: pd.DataFrame, columns: Sequence[str], source: str, drop: bool = False, row_offset: int = 0
) -> pd.DataFrame:
    """Error on NaN/inf in ``columns`` (how many, which columns, first row), or drop those rows if asked.

    Rows are numbered from 0 in file order (``row_offset`` for a chunk that starts further in).
    """
    values = df[list(columns)].to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if not bad.any():
        return df
    bad_rows = bad.any(axis=1)
    n_rows, n_vals = int(bad_rows.sum()), int(bad.sum())
    if drop:
        log.warning("%s: dropped %d row(s) with NaN/inf values (--drop-nonfinite)", source, n_rows)
        out = df.loc[~bad_rows].reset_index(drop=True)
        if len(out) == 0:
            raise RareflowError(f"{source}: every row has NaN/inf values; nothing left after dropping them")
        return out
    cols = [c for c, b in zip(columns, bad.any(axis=0)) if b]
    first = int(np.argmax(bad_rows)) + row_offset
    raise RareflowError(
        f"{source}: {n_vals} NaN/inf value(s) in {n_rows} row(s), column(s) {cols}, first at row {first}; "
        "fix the data or pass --drop-nonfinite to drop those rows"
    )


def encode_labels(
    df: pd.DataFrame,
    rare_label: str,
    bulk_labels: Sequence[str] | None,
    source: str,
    needed: str = "both",
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of the rare and bulk classes and ``y`` (1 rare, 0 bulk).

    ``bulk_labels=None`` means every label other than ``rare_label``. Rows of other labels (e.g.
    muons when the bulk is only protons) are dropped. ``needed``: which classes must be present —
    ``both`` (two-class training, metrics), or ``rare`` / ``bulk`` (a one-class fit on that class).
    Empty label cells and missing needed labels are errors.
    """
    if LABEL not in df.columns:
        raise RareflowError(
            f"{source}: no '{LABEL}' column; this needs labelled events (add a '{LABEL}' column, e.g. gamma/hadron)"
        )
    empty = df[LABEL].isna().to_numpy()
    if empty.any():
        raise RareflowError(
            f"{source}: {int(empty.sum())} empty cell(s) in column '{LABEL}', first at row {int(np.argmax(empty))}; "
            "fill in the labels or remove those rows"
        )
    labels = df[LABEL].astype(str)
    present = sorted(labels.unique())
    if rare_label not in present and needed != "bulk":
        raise RareflowError(f"{source}: rare label {short_repr(rare_label)} not present; labels are {short_repr(present)}")
    if bulk_labels is None:
        bulk = [lab for lab in present if lab != rare_label]
    else:
        bulk = list(bulk_labels)
        absent = [b for b in bulk if b not in present]
        if absent:
            raise RareflowError(f"{source}: bulk label(s) {short_repr(absent)} not present; labels are {short_repr(present)}")
        if rare_label in bulk:
            raise RareflowError(f"{source}: label {short_repr(rare_label)} is both rare and bulk; pick one")
    if not bulk and needed != "rare":
        raise RareflowError(
            f"{source}: only the rare label {short_repr(rare_label)} is present; two-class training and metrics need "
            "bulk events too: check --rare-label/--bulk-label, or fit a one-class method with --fit-on rare"
        )
    keep = labels.isin([rare_label, *bulk]).to_numpy()
    out = df.loc[keep].reset_index(drop=True)
    y = (out[LABEL].astype(str) == rare_label).to_numpy().astype(np.int64)
    return out, y


@dataclass
class Dataset:
    """A validated feature table ready for splitting: features, labels, weights, truth.

    ``images`` (optional): grid images (n, H, W) aligned with the rows of ``frame`` for the image
    detectors, with ``image_mapping`` (a :class:`rareflow.iact.images.GridMapping`) and ``camera``
    to draw them back on the camera.
    """

    frame: pd.DataFrame
    features: list[str]
    y: np.ndarray | None
    rare_label: str
    bulk_labels: list[str]
    source: str
    images: np.ndarray | None = None
    image_mapping: Any = None
    camera: Any = None
    #: what the simulator threw (``rareflow.io.metadata``), for spectral weights; None for real data
    simulation: dict[str, Any] | None = None
    #: the compare runner's per-bin set-up (``rareflow.evaluation.energy.BinSetup``), or None
    binning: Any = None

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.features]

    @property
    def weight(self) -> np.ndarray | None:
        return self.frame[WEIGHT].to_numpy(dtype=float) if WEIGHT in self.frame.columns else None


def prepare_dataset(
    df: pd.DataFrame,
    source: str,
    features: Sequence[str] | None = None,
    rare_label: str = "gamma",
    bulk_labels: Sequence[str] | None = None,
    need_labels: bool = True,
    drop_nonfinite: bool = False,
    needed: str = "both",
) -> Dataset:
    """Validate ``df`` once: labels, feature columns, finite values, weights.

    ``needed``: the classes that must be present (see :func:`encode_labels`).
    """
    y = None
    bulk: list[str] = list(bulk_labels or [])
    if need_labels or LABEL in df.columns:
        if need_labels or rare_label in set(df[LABEL].astype(str)):
            df, y = encode_labels(df, rare_label, bulk_labels, source, needed)
            bulk = sorted(set(df[LABEL]) - {rare_label})
    cols = select_features(df, features, source)
    check_cols = cols + ([WEIGHT] if WEIGHT in df.columns else [])
    df = check_finite(df, check_cols, source, drop=drop_nonfinite)
    if y is not None and len(df) != len(y):  # rows were dropped: recompute labels
        y = (df[LABEL].astype(str) == rare_label).to_numpy().astype(np.int64)
    if WEIGHT in df.columns and (df[WEIGHT].to_numpy(dtype=float) < 0).any():
        row = int(np.argmax(df[WEIGHT].to_numpy(dtype=float) < 0))
        raise RareflowError(f"{source}: negative event weight at row {row} in column '{WEIGHT}'; weights must be >= 0")
    return Dataset(frame=df, features=cols, y=y, rare_label=rare_label, bulk_labels=bulk, source=source)
