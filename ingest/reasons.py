"""Machine-readable reasons a message or record is dead-lettered.

The reason travels in the dead-letter message's ``fueltrace.reason`` header, in the
``dead_letters`` table and as the ``reason`` label of
``fueltrace_records_rejected_total`` (a bounded set: exactly the names below).
"""

from __future__ import annotations

REASONS: dict[str, str] = {
    # `fueltrace push` (JSON lines), before anything is sent
    "schema_violation": "a JSON line does not fit the record schema (the field is named)",
    # the message as a whole
    "malformed_message": "not Avro single-object encoding nor an Avro object container file",
    "malformed_avro": "the Avro bytes do not decode under the writer's schema (truncated, "
    "trailing bytes, bad enum index, invalid UTF-8, a boolean byte other than 0 or 1, a "
    "container block whose record count does not match its bytes)",
    "unknown_fingerprint": "single-object message whose schema fingerprint no known "
    "version has",
    "wrong_record_type": "the writer's schema is another record type than the topic carries",
    "incompatible_schema": "the writer's schema cannot be resolved to the current one",
    # one record, by the rules of its type
    "not_finite": "a number is NaN or infinite",
    "volume_not_positive": "a volume that must be > 0 is not",
    "negative_value": "a level, volume, price or ratio that cannot be negative is",
    "ended_before_started": "ended_at is before started_at",
    "timestamp_in_future": "a timestamp is more than FUELTRACE_MAX_FUTURE_S ahead of the clock "
    "(or beyond the year 9999)",
    "timestamp_implausible": "a timestamp before 2000-01-01, or a date before the year 1 or "
    "after 9999",
    "totalizer_mismatch": "totalizer_end_l − totalizer_start_l differs from volume_l",
    "amount_mismatch": "amount_fen differs from unit_price_fen × volume_l",
    "flow_rate_impossible": "volume_l / (ended_at − started_at) exceeds what a nozzle delivers",
    "temperature_implausible": "product temperature outside −50…70 °C",
    "density_implausible": "density at 20 °C outside 600…1100 kg/m³",
    "unknown_city": "city is not one of the 14 prefecture-level cities of Liaoning",
    "capacity_not_positive": "a tank's capacity_l is not > 0",
    "licence_dates_reversed": "a licence's valid_until is before its valid_from",
    "duplicate_id": "a facility lists the same tank_id or nozzle_id twice",
    "unknown_tank": "a facility's nozzle draws from a tank_id not among its tanks",
    "missing_key": "the field that keys the record (station_id, dispatch_id, …) is empty",
}


def describe(reason: str) -> str:
    """Text for a reason, for people (CLI summary, docs)."""
    return REASONS.get(reason, reason)
