"""One module per record type: its topic, keys, table and validation rules."""

from __future__ import annotations

from ingest.records import (
    delivery,
    device_status,
    dispatch,
    facility,
    sale,
    tank_reading,
    vapor,
)
from ingest.records.base import RecordSpec, Rule

SPECS: dict[str, RecordSpec] = {
    m.SPEC.name: m.SPEC
    for m in (facility, dispatch, delivery, tank_reading, sale, vapor, device_status)
}

__all__ = ["SPECS", "RecordSpec", "Rule"]
