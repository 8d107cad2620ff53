"""The UCI MAGIC Gamma Telescope table (Bock et al. 2004, UCI dataset 159).

``magic04.data``: CSV without header, 10 Hillas-type features and a class column with ``g``
(gamma, the rare class) or ``h`` (hadron, the bulk). rareflow maps the class to the ``label``
column: ``g -> gamma``, ``h -> hadron``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rareflow.errors import RareflowError

MAGIC_FEATURES = ["fLength", "fWidth", "fSize", "fConc", "fConc1", "fAsym", "fM3Long", "fM3Trans", "fAlpha", "fDist"]
MAGIC_LABELS = {"g": "gamma", "h": "hadron"}


def looks_like_magic(path: Path) -> bool:
    """MAGIC is detected by its file name (``magic04.data`` or ``*.data``)."""
    return path.name.lower().startswith("magic") or path.suffix.lower() == ".data"


def read_magic(path: Path) -> pd.DataFrame:
    """Read ``magic04.data`` into a feature table with a ``label`` column."""
    try:
        df = pd.read_csv(path, header=None)
    except pd.errors.EmptyDataError:
        raise RareflowError(f"{path}: file is empty; expected the UCI MAGIC table (11 columns)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise RareflowError(f"{path}: not a MAGIC CSV file ({str(exc).splitlines()[0]})") from None
    if df.shape[1] != len(MAGIC_FEATURES) + 1:
        raise RareflowError(
            f"{path}: MAGIC format expects 11 columns (10 features + class g/h), found {df.shape[1]}; "
            "use --format csv for other CSV files"
        )
    df.columns = MAGIC_FEATURES + ["class"]
    cls = df.pop("class").astype(str).str.strip()
    bad = ~cls.isin(list(MAGIC_LABELS))
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise RareflowError(
            f"{path}: row {row + 1} has class {cls.iloc[row]!r}; MAGIC classes are 'g' (gamma) or 'h' (hadron)"
        )
    for col in MAGIC_FEATURES:
        if not pd.api.types.is_numeric_dtype(df[col]):
            raise RareflowError(f"{path}: MAGIC column {col} is not numeric; the file is damaged")
    df["label"] = cls.map(MAGIC_LABELS).astype(str)
    return df
