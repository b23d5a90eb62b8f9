"""What the routes share: the process's services, and parsing of common parameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from fastapi import Request
from kafka import KafkaProducer

from fueltrace.api.db import Warehouse
from fueltrace.api.errors import InvalidRequest
from fueltrace.settings import Settings

T = TypeVar("T")


@dataclass
class Services:
    """Everything a request may need; one per app (``app.state.services``)."""

    settings: Settings
    warehouse: Warehouse
    producer: KafkaProducer | None = None  # the gateway's; None: the gateway answers 503
    bootstrap: str | None = None
    #: name → check, for /readyz (the warehouse is always checked)
    checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def read(request: Request, fn: Callable[..., T], *args: Any, report: bool = False,
         what: str = "query", **kwargs: Any) -> T:  # fmt: skip
    """``fn(cursor, *args, **kwargs)`` on a fresh cursor, under the query time bound (the
    longer report bound with ``report``)."""
    svc = services(request)
    timeout = svc.settings.api_report_timeout_s if report else svc.settings.api_query_timeout_s
    return svc.warehouse.run(timeout, fn, *args, what=what, **kwargs)


def as_utc(value: datetime | date | None) -> datetime | None:
    """A time parameter as an aware datetime: a date is its UTC midnight, a time without
    an offset is UTC (as on the command line)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def one_of(name: str, value: str | None, allowed: tuple[str, ...] | list[str]) -> str | None:
    if value is not None and value not in allowed:
        raise InvalidRequest(f"{name}: unknown {name} {value!r}; one of: {', '.join(allowed)}",
                             details=[{"message": f"unknown {name}", "where": f"query.{name}",
                                       "allowed": list(allowed)}])  # fmt: skip
    return value
