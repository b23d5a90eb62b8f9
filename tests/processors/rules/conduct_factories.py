"""Record factories for the station-conduct rule tests: vapour-recovery samples, device
status changes, licences, and stamping a load's arrival time (``ingest_load.finished_at``
is the wall clock; the silence rules read it as the moment the records arrived)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import duckdb

from tests.processors.scenario import T0, at


def vapor(station_id: str, hours: float, al_ratio: float = 1.1, pressure_pa: float = 0.0,
          nozzle: str = "N-T1") -> dict[str, Any]:  # fmt: skip
    return {"station_id": station_id, "nozzle_id": nozzle, "measured_at": at(hours),
            "al_ratio": al_ratio, "pressure_pa": pressure_pa}  # fmt: skip


def status(station_id: str, hours: float, state: str, device_id: str = "ATG1",
           kind: str = "atg") -> dict[str, Any]:  # fmt: skip
    return {"station_id": station_id, "device_id": device_id, "device_kind": kind,
            "status": state, "at": at(hours)}  # fmt: skip


def licence(kind: str, number: str, valid_from: str, valid_until: str,
            state: str = "valid") -> dict[str, Any]:  # fmt: skip
    return {"kind": kind, "number": number, "valid_from": valid_from,
            "valid_until": valid_until, "status": state}  # fmt: skip


def arrived(con: duckdb.DuckDBPyConnection, hours: float) -> None:
    """Say the latest load finished at ``T0 + hours``."""
    con.execute("UPDATE ingest_load SET finished_at = $t WHERE load_id = "
                "(SELECT max(load_id) FROM ingest_load)", {"t": h(hours)})  # fmt: skip


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)
