"""Score a feature table with a saved model, streaming Parquet row groups in bounded memory.

Output = the input columns + ``score`` (higher = rarer), ``prediction`` (1 rare / 0 bulk at the
model's training-data threshold) and ``threshold``; the model's method and features go into the
Parquet schema metadata under ``rareflow``. Written to a temporary file and renamed at the end.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rareflow.atomic import atomic_path
from rareflow.data.tables import check_finite, detect_format, read_table, select_features
from rareflow.detectors import Detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model
from rareflow.progress import make_progress

METADATA_KEY = b"rareflow"


def _batches(path: Path, fmt: str | None, batch_rows: int) -> tuple[Iterator[pd.DataFrame], int]:
    """(iterator of DataFrames, total rows): Parquet streams by batches, other formats read whole."""
    if detect_format(path, fmt) == "parquet":
        if not path.exists():
            raise RareflowError(f"{path}: file not found; check the path")
        try:
            pf = pq.ParquetFile(path, pre_buffer=False)  # pre_buffer keeps every row group read so far
        except Exception as exc:
            raise RareflowError(f"{path}: cannot read as Parquet ({type(exc).__name__}); is the file complete?") from None
        total = pf.metadata.num_rows
        if total == 0:
            raise RareflowError(f"{path}: the table has no rows; give a table with events")
        return (b.to_pandas() for b in pf.iter_batches(batch_size=batch_rows)), total
    df = read_table(path, fmt)
    return (df.iloc[i : i + batch_rows] for i in range(0, len(df), batch_rows)), len(df)


def score_table(
    model: Detector | str | Path,
    data: str | Path,
    out: str | Path,
    fmt: str | None = None,
    batch_rows: int = 262_144,
) -> int:
    """Score ``data`` with ``model`` into Parquet ``out``; returns the number of rows scored."""
    det = model if isinstance(model, Detector) else load_model(model)
    features = [str(c) for c in getattr(det, "feature_names_in_", [])]
    if not features:
        raise RareflowError("the model has no stored feature names; retrain it from a table with named columns")
    path = Path(data)
    batches, total = _batches(path, fmt, batch_rows)
    meta = json.dumps({"method": det.name, "features": features, "threshold": float(det.threshold_)})
    n = 0
    with atomic_path(out) as tmp, make_progress() as progress:
        task = progress.add_task("score", total=total, info="")
        writer: pq.ParquetWriter | None = None
        try:
            for df in batches:
                missing = [f for f in features if f not in df.columns]
                if missing:
                    raise RareflowError(
                        f"{path}: lacks feature column(s) {missing} that the '{det.name}' model was trained on; "
                        "score a table with the model's features"
                    )
                select_features(df, features, str(path))
                check_finite(df, features, str(path), row_offset=n)
                scores = det.decision_function(df[features])
                df = df.assign(score=scores, prediction=(scores > det.threshold_).astype(np.int8), threshold=det.threshold_)
                table = pa.Table.from_pandas(df, preserve_index=False)
                if writer is None:
                    schema = table.schema.with_metadata({**(table.schema.metadata or {}), METADATA_KEY: meta.encode()})
                    writer = pq.ParquetWriter(tmp, schema)
                writer.write_table(table.cast(writer.schema))
                n += len(df)
                progress.update(task, advance=len(df), info=f"{n} events")
        finally:
            if writer is not None:
                writer.close()
    return n


def read_scores(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """A scores table and its ``rareflow`` metadata (empty dict for foreign files)."""
    path = Path(path)
    if not path.exists():
        raise RareflowError(f"{path}: file not found; produce it with `rareflow score` or `rareflow compare`")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise RareflowError(f"{path}: cannot read as Parquet ({type(exc).__name__})") from None
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    meta = json.loads(raw) if raw else {}
    df = table.to_pandas()
    if "score" not in df.columns:
        raise RareflowError(f"{path}: no 'score' column; produce the file with `rareflow score`")
    return df, meta
