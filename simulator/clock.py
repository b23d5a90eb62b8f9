"""Simulated time: integer milliseconds since the Unix epoch (UTC) and the conversions
the records need. Local time in Liaoning is Beijing time, UTC+8, all year."""

from __future__ import annotations

from datetime import UTC, datetime

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
BEIJING_OFFSET_MS = 8 * HOUR_MS


def to_ms(t: datetime) -> int:
    """Milliseconds since the epoch; a naive ``datetime`` is taken as UTC."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return round(t.timestamp() * 1000)


def to_datetime(t_ms: int) -> datetime:
    """An aware UTC ``datetime`` for ``t_ms`` (exact to the millisecond)."""
    return datetime.fromtimestamp(t_ms // 1000, UTC).replace(microsecond=t_ms % 1000 * 1000)


def local_hour(t_ms: int) -> float:
    """Hour of the day in Beijing time, 0 ≤ h < 24 (fractional)."""
    return (t_ms + BEIJING_OFFSET_MS) % DAY_MS / HOUR_MS


def day_of_year(t_ms: int) -> float:
    """Day of the year (UTC), 0 ≤ d < 366 (fractional)."""
    t = to_datetime(t_ms)
    start = datetime(t.year, 1, 1, tzinfo=UTC)
    return (t - start).total_seconds() / 86_400
