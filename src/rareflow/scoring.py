"""Score a feature table with a saved model, streaming Parquet row groups in bounded memory.

Output = the input columns + ``score`` (higher = rarer), ``prediction`` (1 rare / 0 bulk at the
model's training-data threshold), ``threshold`` and ``gammaness`` (the model's calibrated
score -> [0, 1] map, :mod:`rareflow.calibration`; name chosen by ``gammaness_column``, e.g.
``gh_score`` for pyirf; left out for models saved before the calibration was stored); the model's method and features go into the
Parquet schema metadata under ``rareflow``. Written to a temporary file and renamed at the end.

Parquet input is read row group by row group, each row group in chunks of at most ``batch_rows``
rows (chunks never span two row groups), so memory is bounded by one chunk, not by the table.
With ``scheduler`` (``"local"`` or a Dask scheduler address) every row group is one task: the
worker loads the model from its path (cached per worker process), reads the row group's feature
columns, scores the *same* chunks as the single-process path and returns the scores; this process
reads the row group again and writes it with its scores, in row order. Same chunks, same code:
the scores are bit-identical to the single-process path. The data and model paths must be
readable by the workers (a shared file system on a real cluster). Other formats (CSV, MAGIC,
DL1) are read whole and sent to the workers in chunks.

The metadata also says whether the table is the model's training table (``training_table``,
``in_sample``; see :mod:`rareflow.fingerprint`). On the training table of a model trained with
``--holdout``, only the held-out rows are written (``holdout_only``, ``skipped_training_rows``).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rareflow.atomic import atomic_path
from rareflow.io.scores import METADATA_KEY, read_scores  # noqa: F401  (read_scores: re-exported, rareflow.scoring.read_scores)
from rareflow.io.tables import detect_format, read_table, select_features, valid_rows
from rareflow.detectors import Detector
from rareflow.errors import RareflowError, short_repr
from rareflow.fingerprint import IN_SAMPLE_WARNING, compare_with_training, parquet_head
from rareflow.persistence import load_model
from rareflow.progress import make_progress

log = logging.getLogger(__name__)


def _training_relation(det: Detector, path: Path, fmt: str | None, features: list[str], pf: Any) -> dict[str, Any]:
    """Is ``path`` the model's training table? (see :mod:`rareflow.fingerprint`)."""
    record = getattr(det, "training_data_", None)
    if not record:
        return compare_with_training(None, pd.DataFrame(), 0, features)
    if pf is not None:
        return compare_with_training(record, parquet_head(pf, features), pf.metadata.num_rows, features)
    table = read_table(path, fmt)
    if any(f not in table.columns for f in features):
        return compare_with_training(None, table, len(table), features)
    return compare_with_training(record, table, len(table), features)


def _metadata(det: Detector, path: Path, fmt: str | None, features: list[str], pf: Any) -> tuple[str, np.ndarray | None]:
    """The scores file's metadata (JSON) and the rows to write (None = all)."""
    relation = _training_relation(det, path, fmt, features, pf)
    keep = relation.pop("keep")
    if relation["in_sample"]:
        log.warning("%s: %s", path, IN_SAMPLE_WARNING)
    elif relation["holdout_only"]:
        log.info("%s is the model's training table: scoring only its %d held-out rows", path, int(keep.sum()))
    doc = {"method": det.name, "features": features, "threshold": float(det.threshold_), **relation}
    if keep is not None:
        doc["skipped_training_rows"] = int((~keep).sum())
    return json.dumps(doc), keep


def _open_parquet(path: Path) -> pq.ParquetFile:
    if not path.exists():
        raise RareflowError(f"{path}: file not found; check the path")
    try:
        return pq.ParquetFile(path, pre_buffer=False)  # pre_buffer keeps every row group read so far
    except Exception as exc:
        raise RareflowError(f"{path}: cannot read as Parquet ({type(exc).__name__}); is the file complete?") from None


def _row_group_frames(
    pf: pq.ParquetFile, row_group: int, batch_rows: int, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """The chunks of one row group (at most ``batch_rows`` rows each): the unit both paths score."""
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[row_group], columns=columns):
        yield batch.to_pandas()


def _score_frame(det: Detector, df: pd.DataFrame, features: list[str], source: str, row_offset: int) -> np.ndarray:
    """Score one chunk (numeric columns checked). Rows flagged ``is_valid=False`` and rows with
    NaN/inf features are not scored: their score is NaN (an empty cell); :func:`_check_chunk`
    decides whether the latter are an error."""
    select_features(df, features, source)
    ok = valid_rows(df) & np.isfinite(df[features].to_numpy(dtype=float)).all(axis=1)
    scores = np.full(len(df), np.nan)
    if ok.any():
        scores[ok] = np.asarray(det.decision_function(df.loc[ok, features]), dtype=np.float64)
    return scores


def _check_chunk(df: pd.DataFrame, features: list[str], source: str, row_offset: int, drop: bool) -> np.ndarray:
    """Rows to write: all, less (with ``drop``) valid rows with NaN/inf features; else an error naming them."""
    bad = valid_rows(df) & ~np.isfinite(df[features].to_numpy(dtype=float)).all(axis=1)
    if bad.any() and not drop:
        values = df.loc[bad, features].to_numpy(dtype=float)
        cols = [c for c, b in zip(features, (~np.isfinite(values)).any(axis=0)) if b]
        raise RareflowError(
            f"{source}: {int((~np.isfinite(values)).sum())} NaN/inf value(s) in {int(bad.sum())} row(s), "
            f"column(s) {short_repr(cols)}, first at row {row_offset + int(np.argmax(bad))}; fix the data or pass "
            "--drop-nonfinite to leave those rows out of the output"
        )
    return ~bad


def _check_columns(columns: Sequence[str], features: list[str], path: Path, method: str) -> None:
    missing = [f for f in features if f not in columns]
    if missing:
        raise RareflowError(
            f"{path}: lacks feature column(s) {missing} that the '{method}' model was trained on; "
            "score a table with the model's features"
        )


# -- worker side (Dask) ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime_ns: int, size: int) -> Detector:
    return load_model(path)


def _worker_model(model: str | Detector) -> Detector:
    """A model path is loaded once per worker process (cache keyed by path, mtime and size)."""
    if isinstance(model, Detector):
        return model
    st = Path(model).stat()
    return _load_cached(model, st.st_mtime_ns, st.st_size)


def _score_row_group_task(
    model: str | Detector, data: str, row_group: int, batch_rows: int, features: list[str], row_offset: int
) -> np.ndarray:
    """Dask task: the scores of one Parquet row group, chunked exactly as the single-process path."""
    det = _worker_model(model)
    pf = _open_parquet(Path(data))
    parts, offset = [], row_offset
    columns = features + (["is_valid"] if "is_valid" in pf.schema_arrow.names else [])
    for df in _row_group_frames(pf, row_group, batch_rows, columns=columns):
        parts.append(_score_frame(det, df, features, data, offset))
        offset += len(df)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)


def _score_frame_task(model: str | Detector, df: pd.DataFrame, features: list[str], source: str, row_offset: int) -> np.ndarray:
    """Dask task: the scores of one chunk of a non-Parquet table."""
    return _score_frame(_worker_model(model), df, features, source, row_offset)


# -- the two paths: both yield (chunk, scores) in row order ------------------------------------------
def _local_chunks(
    det: Detector, path: Path, fmt: str | None, features: list[str], batch_rows: int, pf: pq.ParquetFile | None
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    offset = 0
    if pf is not None:
        for rg in range(pf.num_row_groups):
            for df in _row_group_frames(pf, rg, batch_rows):
                yield df, _score_frame(det, df, features, str(path), offset)
                offset += len(df)
        return
    table = read_table(path, fmt)
    _check_columns(list(table.columns), features, path, det.name)
    for start in range(0, len(table), batch_rows):
        df = table.iloc[start : start + batch_rows]
        yield df, _score_frame(det, df, features, str(path), start)


def _dask_chunks(
    det: Detector, model: Detector | str | Path, path: Path, fmt: str | None, features: list[str], batch_rows: int,
    pf: pq.ParquetFile | None, scheduler: str, n_workers: int | None,
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:  # fmt: skip
    from rareflow.parallel import dask_client, map_ordered

    with dask_client(scheduler, n_workers) as client:
        ref: Any = str(Path(model).resolve()) if not isinstance(model, Detector) else client.scatter(det, broadcast=True)
        if pf is not None:
            offsets = np.concatenate([[0], np.cumsum([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])])
            data = str(path.resolve())
            tasks = ((ref, data, rg, batch_rows, features, int(offsets[rg])) for rg in range(pf.num_row_groups))
            for rg, scores in enumerate(map_ordered(client, _score_row_group_task, tasks)):
                pos = 0
                for df in _row_group_frames(pf, rg, batch_rows):
                    yield df, scores[pos : pos + len(df)]
                    pos += len(df)
            return
        table = read_table(path, fmt)
        _check_columns(list(table.columns), features, path, det.name)
        starts = range(0, len(table), batch_rows)
        tasks = ((ref, table.iloc[s : s + batch_rows][features], features, str(path), s) for s in starts)
        for s, scores in zip(starts, map_ordered(client, _score_frame_task, tasks)):
            yield table.iloc[s : s + batch_rows], scores


def score_table(
    model: Detector | str | Path,
    data: str | Path,
    out: str | Path,
    fmt: str | None = None,
    batch_rows: int = 262_144,
    scheduler: str | None = None,
    n_workers: int | None = None,
    drop_nonfinite: bool = False,
    gammaness_column: str | None = "gammaness",
) -> int:
    """Score ``data`` with ``model`` into Parquet ``out``; returns the number of rows scored.

    ``scheduler``: ``None`` (this process), ``"local"`` (a Dask LocalCluster of ``n_workers``
    processes, default one per core) or a Dask scheduler address; same scores either way.
    Rows flagged ``is_valid=False`` are written with an empty score and prediction 0; rows with
    NaN/inf features are an error, or left out of the output with ``drop_nonfinite``.
    """
    if batch_rows < 1:
        raise RareflowError(f"batch_rows must be >= 1 (got {batch_rows})")
    det = model if isinstance(model, Detector) else load_model(model)
    features = [str(c) for c in getattr(det, "feature_names_in_", [])]
    if not features:
        raise RareflowError("the model has no stored feature names; retrain it from a table with named columns")
    path = Path(data)
    pf, total = _parquet_source(path, fmt, features, det.name)
    meta, keep = _metadata(det, path, fmt, features, pf)
    calibrator = _calibrator(det, gammaness_column)
    if scheduler is None:
        chunks = _local_chunks(det, path, fmt, features, batch_rows, pf)
    else:
        chunks = _dask_chunks(det, model, path, fmt, features, batch_rows, pf, scheduler, n_workers)
    n, offset = 0, 0
    t0 = time.perf_counter()
    with atomic_path(out) as tmp, make_progress() as progress:
        task = progress.add_task("score" + (" (dask)" if scheduler else ""), total=total, info="")
        writer: pq.ParquetWriter | None = None
        try:
            for df, scores in chunks:
                read = len(df)
                if keep is not None:  # the training rows of a --holdout model are not scored
                    sel = keep[offset : offset + read]
                    df, scores = df.loc[sel], scores[sel]
                ok = _check_chunk(df, features, str(path), offset, drop_nonfinite)
                offset += read
                df = _scored(det, df.loc[ok], scores[ok], calibrator, gammaness_column)
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    schema = table.schema.with_metadata({**(table.schema.metadata or {}), METADATA_KEY: meta.encode()})
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table.cast(writer.schema))
                n += len(df)
                rate = n / max(time.perf_counter() - t0, 1e-9)
                progress.update(task, advance=read, info=f"{n:,} events, {rate:,.0f} events/s")
        finally:
            chunks.close()  # stops the Dask client / cancels tasks on an error
            if writer is not None:
                writer.close()
    return n


def _parquet_source(path: Path, fmt: str | None, features: list[str], method: str) -> tuple[pq.ParquetFile | None, int | None]:
    """The open Parquet file and its row count, its columns checked (``(None, None)`` for CSV:
    the rows are known after reading)."""
    if detect_format(path, fmt) != "parquet":
        return None, None
    pf = _open_parquet(path)
    total = pf.metadata.num_rows
    if total == 0:
        raise RareflowError(f"{path}: the table has no rows; give a table with events")
    _check_columns(pf.schema_arrow.names, features, path, method)
    return pf, total


def _scored(det: Detector, df: pd.DataFrame, scores: np.ndarray, calibrator: Any, column: str | None) -> pd.DataFrame:
    """The chunk with its ``score``, ``prediction`` (score > ``threshold_``), ``threshold`` and gammaness columns."""
    df = df.assign(score=scores, prediction=(scores > det.threshold_).astype(np.int8), threshold=det.threshold_)
    if calibrator is not None:
        df[column] = calibrator(scores)
    return df


def _calibrator(det: Detector, column: str | None) -> Any:
    """The model's gammaness calibration, or None (no column asked, or an older model file: warned)."""
    if column is None:
        return None
    if column in ("score", "prediction", "threshold"):
        raise RareflowError(f"--gammaness-column {short_repr(column)}: that name is taken by the scores output; pick another")
    cal = getattr(det, "gammaness_", None)
    if cal is None:
        log.warning("the '%s' model has no gammaness calibration (saved by an older rareflow): no %s column", det.name, column)
    return cal


def score_dl2(
    model: Detector | str | Path, data: str | Path, out: str | Path, *, gammaness_column: str = "gammaness",
    prefix: str = "rareflow", batch_rows: int = 262_144, drop_nonfinite: bool = False,
) -> int:  # fmt: skip
    """Score a ctapipe DL1 file and write ctapipe's DL2 classification layout (``rareflow.io.dl2``).

    The DL1 file is the template: it is copied and ``/dl2/.../particle_type/<prefix>`` added, with
    ``<prefix>_prediction`` = the gammaness (``is_valid`` false where an event was not scored).
    Returns the number of telescope events with a valid gammaness.
    """
    from rareflow.io.dl2 import read_dl1, write_dl2

    det = model if isinstance(model, Detector) else load_model(model)
    features = [str(c) for c in getattr(det, "feature_names_in_", [])]
    cal = _calibrator(det, gammaness_column)
    if cal is None:
        raise RareflowError(f"the '{det.name}' model has no gammaness calibration (an older model file); retrain it for DL2 output")
    path = Path(data)
    table = read_dl1(path)
    _check_columns(list(table.columns), features, path, det.name)
    parts = []
    for start in range(0, len(table), batch_rows):
        df = table.iloc[start : start + batch_rows]
        scores = _score_frame(det, df, features, str(path), start)
        ok = _check_chunk(df, features, str(path), start, drop_nonfinite)
        parts.append(np.where(ok, scores, np.nan))
    g = cal(np.concatenate(parts))
    with atomic_path(out) as tmp:
        write_dl2(table.assign(**{gammaness_column: g}), tmp, template=path, prefix=prefix, column=gammaness_column, overwrite=True)
    return int(np.isfinite(g).sum())
