"""Building warehouse scenarios for the traceability tests: records as a station would
send them (at 20 °C unless said otherwise), loaded the way the ingest loads them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from fueltrace.settings import Settings
from ingest.frames import to_frame
from ingest.jsonl import convert_record
from processors.normalize import normalize
from schemas import default_registry
from warehouse.load import DEAD_LETTER_SCHEMA, Batch, load_batch

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
_offsets = itertools.count()


def at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def station(station_id: str, tanks: tuple[str, ...] = ("T1",), city: str = "Shenyang") -> dict:
    return {
        "facility_id": station_id, "kind": "station", "name": f"Station {station_id}",
        "city": city, "operator": "Sinopec", "updated_at": at(-240),
        "tanks": [{"tank_id": t, "product": "gasoline_92", "capacity_l": 40000.0} for t in tanks],
        "nozzles": [{"nozzle_id": f"N-{t}", "dispenser_id": "D1", "tank_id": t} for t in tanks],
        "licences": [],
    }  # fmt: skip


def dispatch(dispatch_id: str, batch: str, station_id: str, volume: float, hours: float,
             density: float = 740.0) -> dict:  # fmt: skip
    return {
        "dispatch_id": dispatch_id, "depot_id": "DEPOT-1", "batch_id": batch,
        "product": "gasoline_92", "station_id": station_id, "vehicle_plate": "辽A12345",
        "seal_ids": ["S1", "S2"], "volume_l": volume, "temperature_c": 20.0,
        "density_kg_m3": density, "dispatched_at": at(hours),
    }  # fmt: skip


def delivery(
    delivery_id: str, station_id: str, volume: float, start: float, end: float,
    dispatch_id: str | None, tank: str = "T1", density: float = 740.0,
) -> dict:  # fmt: skip
    return {
        "delivery_id": delivery_id, "station_id": station_id, "tank_id": tank,
        "dispatch_id": dispatch_id, "product": "gasoline_92", "vehicle_plate": "辽A12345",
        "seal_ids": ["S1", "S2"], "seals_intact": True, "volume_l": volume,
        "temperature_c": 20.0, "density_kg_m3": density, "started_at": at(start),
        "ended_at": at(end),
    }  # fmt: skip


def reading(station_id: str, hours: float, volume: float, tank: str = "T1",
            temperature: float = 20.0) -> dict:  # fmt: skip
    return {
        "station_id": station_id, "tank_id": tank, "product": "gasoline_92",
        "read_at": at(hours), "level_mm": 1000.0, "volume_l": volume, "water_mm": 0.0,
        "temperature_c": temperature,
    }  # fmt: skip


_txn = itertools.count(1)
_totalizers: dict[tuple[str, str], float] = {}


def sale(station_id: str, hours: float, volume: float, tank: str = "T1") -> dict:
    """A sale on the tank's nozzle; its totalizer chains on from the nozzle's last sale."""
    n = next(_txn)
    begin = _totalizers.get((station_id, f"N-{tank}"), 1000.0)
    _totalizers[(station_id, f"N-{tank}")] = round(begin + volume, 2)
    start = T0 + timedelta(hours=hours) - timedelta(minutes=2)
    return {
        "txn_id": f"X{n:05d}", "station_id": station_id, "dispenser_id": "D1",
        "nozzle_id": f"N-{tank}", "product": "gasoline_92", "volume_l": volume,
        "unit_price_fen": 800, "amount_fen": round(800 * volume),
        "totalizer_start_l": begin, "totalizer_end_l": round(begin + volume, 2),
        "started_at": start.isoformat().replace("+00:00", "Z"), "ended_at": at(hours),
        "invoice_id": None,
    }  # fmt: skip


def load(con: duckdb.DuckDBPyConnection, db: Path, **records: list[dict[str, Any]]) -> None:
    """Load records of several types as one micro-batch, as the ingest would."""
    frames = {}
    for record_type, items in records.items():
        schema = default_registry().current(record_type).schema
        rows = [{**convert_record(r, schema), "src_partition": 0, "src_offset": next(_offsets),
                 "src_index": 0} for r in items]  # fmt: skip
        frames[record_type] = normalize(record_type, to_frame(record_type, rows))
    load_batch(con, db, Batch(frames, pl.DataFrame(schema=DEAD_LETTER_SCHEMA), {}))


def settings(tmp: Path) -> Settings:
    return Settings(db=tmp / "w.duckdb", state_dir=tmp)
