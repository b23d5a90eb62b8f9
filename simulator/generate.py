"""Generate a province's records as JSON-ready dicts and write them as JSON lines.

Timestamps become ISO-8601 UTC strings with millisecond precision and a trailing ``Z``
(``2026-11-20T08:00:00.000Z``), licence dates ``YYYY-MM-DD``; field names are the
SPEC's, optional fields are present (``None`` where absent). Each type's records are
ordered by their event time.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from simulator.clock import MINUTE_MS, to_ms
from simulator.physics import RECORD_TYPES, simulate
from simulator.province import build_province

#: Default start of the simulated window: a fixed midnight UTC, so output is reproducible.
DEFAULT_START = datetime(2026, 11, 20, tzinfo=UTC)
#: The field each record type is ordered by (then by station/facility, for stable output).
TIME_FIELDS: dict[str, str] = {
    "facility": "updated_at",
    "dispatch": "dispatched_at",
    "delivery": "started_at",
    "tank_reading": "read_at",
    "sale": "started_at",
    "vapor": "measured_at",
    "device_status": "at",
}


def iso_z(t: datetime) -> str:
    """``2026-11-20T08:00:00.000Z`` for an aware (or naive UTC) datetime."""
    if t.tzinfo is not None:
        t = t.astimezone(UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def to_json_ready(value: Any) -> Any:
    """``value`` with datetimes as ISO-8601 ``Z`` strings and dates as ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_json_ready(v) for v in value]
    return value


def _order_key(record_type: str) -> Any:
    time_field = TIME_FIELDS[record_type]

    def key(record: dict[str, Any]) -> tuple[datetime, str]:
        return record[time_field], record.get("station_id") or record.get("facility_id", "")

    return key


def generate_province(
    *,
    seed: int = 7,
    depots: int = 3,
    stations: int = 24,
    days: float = 2.0,
    start: datetime | None = None,
    reading_interval_min: int = 15,
) -> dict[str, list[dict[str, Any]]]:
    """Simulate ``stations`` stations supplied by ``depots`` depots for ``days`` days from
    ``start`` (default 2026-11-20T00:00Z; a naive datetime is taken as UTC), with a tank
    gauge reading every ``reading_interval_min`` minutes. The same arguments always give
    the same records. Returns JSON-ready records keyed by record type, each list in
    event-time order."""
    if days <= 0 or reading_interval_min < 1:
        raise ValueError("days must be > 0 and reading_interval_min ≥ 1")
    start_ms = to_ms(start or DEFAULT_START)
    end_ms = start_ms + round(timedelta(days=days).total_seconds() * 1000)
    rng = random.Random(seed)
    province = build_province(
        rng, depots=depots, stations=stations, start_ms=start_ms, end_ms=end_ms
    )
    native = simulate(province, rng, start_ms, end_ms, reading_interval_min * MINUTE_MS)
    return {
        t: [to_json_ready(r) for r in sorted(native[t], key=_order_key(t))] for t in RECORD_TYPES
    }


def write_jsonl(
    records_by_type: dict[str, list[dict[str, Any]]], directory: str | Path
) -> dict[str, Path]:
    """Write ``<type>.jsonl`` (one JSON record per line, UTF-8) per record type into
    ``directory`` (created if missing). Returns the path written for each type."""
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for record_type, records in records_by_type.items():
        path = out_dir / f"{record_type}.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for record in records:
                fh.write(json.dumps(to_json_ready(record), ensure_ascii=False) + "\n")
        paths[record_type] = path
    return paths
