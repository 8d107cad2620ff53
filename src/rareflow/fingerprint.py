"""Know when scores are in-sample: a fingerprint of the training table and the ``--holdout`` split.

A model remembers the table it was trained on as ``training_data_`` (saved in the model file):

* ``fingerprint`` — SHA-256 (first 16 hex digits) of the row count, the feature names and the
  float64 values of the first :data:`HEAD_ROWS` rows of the feature columns, in file order. Cheap
  to recompute when scoring a streamed Parquet file (one small read). The same table written
  again gives the same fingerprint; a shuffled, cut or extended table does not;
* ``n_rows`` — the table's row count before any row was dropped (labels, NaN);
* ``holdout`` / ``holdout_seed`` — with ``train --holdout F`` the rows where
  :func:`holdout_mask` is True (``round(F n)`` rows, drawn with the seed) were not used for training.

``score`` recomputes the fingerprint of the table it scores. Same table and no holdout: the
scores file is marked ``in_sample`` and ``evaluate`` warns that its numbers are optimistic. Same
table with a holdout: only the held-out rows are scored, so the metrics are honest. Any other
table: nothing changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.seeding import derive_seed, rng

#: Rows of the table that enter the fingerprint (with the row count and the feature names).
HEAD_ROWS = 1024


def table_fingerprint(head: pd.DataFrame, n_rows: int, features: Sequence[str]) -> str:
    """Fingerprint of a table from its first rows (at least :data:`HEAD_ROWS` if it has them)."""
    h = hashlib.sha256(json.dumps([int(n_rows), [str(f) for f in features]]).encode())
    values = head[list(features)].iloc[:HEAD_ROWS].to_numpy(dtype=np.float64)
    h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()[:16]


def holdout_mask(n_rows: int, fraction: float, seed: int) -> np.ndarray:
    """True for the ``round(fraction * n_rows)`` held-out rows (a seeded permutation)."""
    if not 0.0 <= fraction < 1.0:
        raise RareflowError(f"--holdout {fraction}: give a fraction in [0, 1), e.g. --holdout 0.5")
    mask = np.zeros(int(n_rows), dtype=bool)
    k = int(round(fraction * n_rows))
    if k:
        mask[rng(derive_seed(seed, "holdout")).permutation(int(n_rows))[:k]] = True
    return mask


def training_record(df: pd.DataFrame, features: Sequence[str], holdout: float, seed: int) -> dict[str, Any]:
    """What a model stores about the (whole, unsplit) table ``df`` it was trained on."""
    return {
        "fingerprint": table_fingerprint(df, len(df), features),
        "n_rows": int(len(df)),
        "holdout": float(holdout),
        "holdout_seed": int(seed),
    }


def parquet_head(pf: Any, columns: Sequence[str]) -> pd.DataFrame:
    """The first :data:`HEAD_ROWS` rows of ``columns`` of an open ``pyarrow.parquet.ParquetFile``."""
    parts, n = [], 0
    for batch in pf.iter_batches(batch_size=HEAD_ROWS, columns=list(columns)):
        parts.append(batch.to_pandas())
        n += len(parts[-1])
        if n >= HEAD_ROWS:
            break
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(columns))


def compare_with_training(
    record: dict[str, Any] | None, head: pd.DataFrame, n_rows: int, features: Sequence[str]
) -> dict[str, Any]:
    """How a table relates to a model's training table; ``keep`` = rows to score (None = all).

    Returns ``{"training_table": "same" | "other" | "unknown", "in_sample": bool,
    "holdout_only": bool, "keep": mask or None}``.
    """
    if not record:
        return {"training_table": "unknown", "in_sample": False, "holdout_only": False, "keep": None}
    same = record["fingerprint"] == table_fingerprint(head, n_rows, features)
    if not same:
        return {"training_table": "other", "in_sample": False, "holdout_only": False, "keep": None}
    if record.get("holdout"):
        keep = holdout_mask(n_rows, record["holdout"], record["holdout_seed"])
        return {"training_table": "same", "in_sample": False, "holdout_only": True, "keep": keep}
    return {"training_table": "same", "in_sample": True, "holdout_only": False, "keep": None}


IN_SAMPLE_WARNING = (
    "these scores come from the model's training rows: in-sample, optimistic; "
    "train with --holdout 0.5 and score the same table (only held-out rows are scored), or score another table"
)

