"""Scores tables (``rareflow score`` / ``compare`` output): the reader and the metadata key.

Written by :mod:`rareflow.scoring`; read here so that the evaluation layer reads them without
importing the scoring machinery (models, persistence).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from rareflow.errors import RareflowError

__all__ = ["METADATA_KEY", "read_scores"]

#: Parquet schema-metadata key holding the JSON settings of a scores table.
METADATA_KEY = b"rareflow"


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
