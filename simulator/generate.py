"""Generate a province's records as JSON-ready dicts, with the ground truth of any injected
wrongdoing, and write them as JSON lines.

Timestamps become ISO-8601 UTC strings with millisecond precision and a trailing ``Z``
(``2026-11-20T08:00:00.000Z``), licence dates ``YYYY-MM-DD``; field names are the
SPEC's, optional fields are present (``None`` where absent). Each type's records are
ordered by their event time (then station).

Without scenarios the data is clean: every licence valid, totalizers continuous, A/L in
its band, every dispatch received as loaded, devices online. The noise in it is only the
legal and physical kind (``simulator.tank``, ``simulator.sales``, ``simulator.depot``).
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from simulator.clock import MINUTE_MS, iso_ms, to_datetime, to_ms
from simulator.injections import finish, make_injections
from simulator.physics import RECORD_TYPES, Records, simulate
from simulator.planning import plan_incidents
from simulator.province import Province, build_province
from simulator.scenarios import Incident, Scenario

#: Default start of the simulated window: a fixed midnight UTC, so output is reproducible.
DEFAULT_START = datetime(2026, 11, 20, tzinfo=UTC)
#: The time fields of each record type; the first orders the records.
TIME_FIELDS: dict[str, tuple[str, ...]] = {
    "facility": ("updated_at",),
    "dispatch": ("dispatched_at",),
    "delivery": ("started_at", "ended_at"),
    "tank_reading": ("read_at",),
    "sale": ("started_at", "ended_at"),
    "vapor": ("measured_at",),
    "device_status": ("at",),
}


@dataclass(frozen=True)
class RandomScenarios:
    """Ask for incidents planned at random: ``per_kind`` of each of ``kinds`` (default:
    every kind), placed by :func:`simulator.scenarios.plan_incidents` with a stream
    seeded by the generation seed and ``seed``."""

    per_kind: int = 1
    kinds: tuple[str, ...] | None = None
    seed: int = 0


class Generated(NamedTuple):
    """What :func:`generate_with_truth` returns."""

    records: dict[str, list[dict[str, Any]]]
    incidents: list[Incident]


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


def _window(start: datetime | None, days: float) -> tuple[int, int]:
    start_ms = to_ms(start or DEFAULT_START)
    return start_ms, start_ms + round(timedelta(days=days).total_seconds() * 1000)


def province_for(
    *,
    seed: int = 7,
    depots: int = 3,
    stations: int = 24,
    days: float = 2.0,
    start: datetime | None = None,
) -> Province:
    """The registry :func:`generate_with_truth` simulates with these arguments (before any
    scenario changes it): the station, tank, nozzle and device ids to aim scenarios at."""
    start_ms, end_ms = _window(start, days)
    return build_province(
        random.Random(seed), depots=depots, stations=stations, start_ms=start_ms, end_ms=end_ms
    )


def _json_ready(record_type: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Sorted by event time then station, time fields as ISO strings (in place)."""
    fields = TIME_FIELDS[record_type]
    who = "facility_id" if record_type == "facility" else "station_id"
    records.sort(key=itemgetter(fields[0], who))
    for record in records:
        for name in fields:
            record[name] = iso_ms(record[name])
    if record_type == "facility":
        return [to_json_ready(r) for r in records]
    return records


def generate_with_truth(
    *,
    seed: int = 7,
    depots: int = 3,
    stations: int = 24,
    days: float = 2.0,
    start: datetime | None = None,
    reading_interval_min: int = 15,
    sales_scale: float = 1.0,
    scenarios: Sequence[Scenario] | RandomScenarios = (),
) -> Generated:
    """Simulate ``stations`` stations supplied by ``depots`` depots for ``days`` days from
    ``start`` (default 2026-11-20T00:00Z; a naive datetime is taken as UTC), with a tank
    gauge reading every ``reading_interval_min`` minutes and ``sales_scale`` × the usual
    number of customers (1.0 ≈ 270 sales a station-day; a lower value makes fewer sales
    and deliveries, and makes a given leak or meter fraud a larger share of the
    throughput, so detection figures should be measured at 1.0), with ``scenarios``
    injected (explicit, or ``RandomScenarios``). The same arguments always give the same
    records and incidents. Returns JSON-ready records keyed by record type, each list in
    event-time order, and the incidents that happened."""
    if days <= 0 or reading_interval_min < 1 or sales_scale <= 0:
        raise ValueError("days and sales_scale must be > 0 and reading_interval_min ≥ 1")
    start_ms, end_ms = _window(start, days)
    rng = random.Random(seed)
    province = build_province(
        rng, depots=depots, stations=stations, start_ms=start_ms, end_ms=end_ms
    )
    if isinstance(scenarios, RandomScenarios):
        planner = random.Random(f"{seed}/plan/{scenarios.seed}")
        scenarios = plan_incidents(
            planner,
            province,
            scenarios.kinds,
            scenarios.per_kind,
            to_datetime(start_ms),
            to_datetime(end_ms),
        )
    province, injections = make_injections(
        scenarios, province, seed=seed, window=(start_ms, end_ms)
    )
    native: Records = simulate(
        province,
        rng,
        start_ms,
        end_ms,
        reading_interval_min * MINUTE_MS,
        seed=seed,
        sales_scale=sales_scale,
        injections=injections,
    )
    incidents = finish(native, injections)
    records = {t: _json_ready(t, native[t]) for t in RECORD_TYPES}
    return Generated(records, incidents)


def generate_province(
    *,
    seed: int = 7,
    depots: int = 3,
    stations: int = 24,
    days: float = 2.0,
    start: datetime | None = None,
    reading_interval_min: int = 15,
    sales_scale: float = 1.0,
    scenarios: Sequence[Scenario] | RandomScenarios = (),
) -> dict[str, list[dict[str, Any]]]:
    """The records of :func:`generate_with_truth` (same arguments), without the truth."""
    return generate_with_truth(
        seed=seed,
        depots=depots,
        stations=stations,
        days=days,
        start=start,
        reading_interval_min=reading_interval_min,
        sales_scale=sales_scale,
        scenarios=scenarios,
    ).records


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_z(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


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
                fh.write(json.dumps(record, ensure_ascii=False, default=_json_default) + "\n")
        paths[record_type] = path
    return paths
