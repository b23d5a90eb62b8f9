"""Simulated time: integer milliseconds since the Unix epoch (UTC) and the conversions
the records need. Local time in Liaoning is Beijing time, UTC+8, all year."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

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


@lru_cache(maxsize=1024)
def _year_start_ms(day: int) -> int:
    return to_ms(datetime(to_datetime(day * DAY_MS).year, 1, 1, tzinfo=UTC))


def day_of_year(t_ms: int) -> float:
    """Day of the year (UTC), 0 ≤ d < 366 (fractional)."""
    return (t_ms - _year_start_ms(t_ms // DAY_MS)) / DAY_MS


@lru_cache(maxsize=1024)
def _iso_day(day: int) -> str:
    return to_datetime(day * DAY_MS).strftime("%Y-%m-%dT")


def iso_ms(t_ms: int) -> str:
    """``2026-11-20T08:00:00.000Z`` for epoch milliseconds (what ``iso_z`` gives for the
    same instant, without building a ``datetime``)."""
    day, rest = divmod(t_ms, DAY_MS)
    hours, rest = divmod(rest, HOUR_MS)
    minutes, rest = divmod(rest, MINUTE_MS)
    seconds, millis = divmod(rest, SECOND_MS)
    return f"{_iso_day(day)}{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


@lru_cache(maxsize=1024)
def _local_date(day: int) -> str:
    return to_datetime(day * DAY_MS).strftime("%Y%m%d")


def beijing_date(t_ms: int) -> str:
    """``YYYYMMDD`` of the Beijing calendar day ``t_ms`` falls on."""
    return _local_date((t_ms + BEIJING_OFFSET_MS) // DAY_MS)
