"""What was simulated, kept with the table: a JSON record in the Parquet schema metadata.

Sensitivity needs to know how many showers were *thrown* (including those that never triggered or
were cleaned away), over which energy range and spectral index, impact disk and view cone —
exactly pyirf's :class:`~pyirf.simulations.SimulatedEventsInfo`. The simulator writes one record::

    {"schema": 1, "simulator": "rareflow.toy", "source": "point", "camera": {...},
     "particles": {"gamma": {"n_showers": 10000, "energy_min_tev": 0.7, "energy_max_tev": 300.0,
                             "spectral_index": -2.6, "max_impact_m": 400.0,
                             "viewcone_min_deg": 0.0, "viewcone_max_deg": 0.0}, "proton": {...}}}

``spectral_index`` carries its sign (pyirf's convention: dN/dE ~ E^index). The record is stored as
UTF-8 JSON under :data:`SIMULATION_KEY` in the Arrow schema metadata, next to pandas' own key, so
``pd.read_parquet`` still reads the table unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from rareflow.atomic import atomic_path
from rareflow.errors import RareflowError

__all__ = ["PARTICLE_FIELDS", "SIMULATION_KEY", "read_simulation", "validate_particle", "write_parquet"]

SIMULATION_KEY = b"rareflow.simulation"
#: Fields every particle entry needs (units in the name).
PARTICLE_FIELDS = (
    "n_showers", "energy_min_tev", "energy_max_tev", "spectral_index",
    "max_impact_m", "viewcone_min_deg", "viewcone_max_deg",
)  # fmt: skip


def write_parquet(df: pd.DataFrame, path: str | os.PathLike[str], simulation: dict[str, Any] | None = None) -> None:
    """Write ``df`` as Parquet atomically, with ``simulation`` (JSON-able) in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if simulation is not None:
        meta = dict(table.schema.metadata or {})
        meta[SIMULATION_KEY] = json.dumps(simulation, sort_keys=True).encode("utf-8")
        table = table.replace_schema_metadata(meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_simulation(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The simulation record of a Parquet file, or ``None`` when it has none (real data, CSV ...)."""
    import pyarrow.parquet as pq

    p = Path(path)
    try:
        meta = pq.read_schema(p).metadata or {}
    except Exception as exc:  # missing file, not Parquet
        raise RareflowError(f"{p}: cannot read Parquet schema ({type(exc).__name__}: {exc})") from exc
    raw = meta.get(SIMULATION_KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise RareflowError(f"{p}: damaged {SIMULATION_KEY.decode()} metadata ({exc}); re-simulate the table") from exc


def validate_particle(record: dict[str, Any] | None, particle: str, source: str = "table") -> dict[str, Any]:
    """The entry of ``particle`` with every :data:`PARTICLE_FIELDS` present, or a one-line error."""
    if not record:
        raise RareflowError(
            f"{source}: no simulation metadata ({SIMULATION_KEY.decode()}); sensitivity needs what was simulated — "
            "use a table written by `rareflow simulate`"
        )
    entry = (record.get("particles") or {}).get(particle)
    if entry is None:
        raise RareflowError(f"{source}: simulation metadata has no particle {particle!r} (has {sorted(record.get('particles') or {})})")
    missing = [f for f in PARTICLE_FIELDS if entry.get(f) is None]
    if missing:
        raise RareflowError(f"{source}: simulation metadata of {particle!r} lacks field {missing[0]!r} (needs {', '.join(PARTICLE_FIELDS)})")
    return entry
