"""The one root error of fueltrace and its two kinds.

Every error says whether retrying can help (:class:`TransientError`) or not
(:class:`TerminalError`) and carries where it came from, so a caller decides
retry, dead-letter or abort from the error alone.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """Where a piece of input came from: a Kafka position or a file line."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    record_index: int | None = None
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        if self.file is not None:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        parts = [f"{self.topic}[{self.partition}]@{self.offset}"]
        if self.record_index is not None:
            parts.append(f"record {self.record_index}")
        return " ".join(parts)


class FuelTraceError(Exception):
    """Root of every error fueltrace raises on purpose."""

    transient: bool = False

    def __init__(self, message: str, *, where: Where | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class TransientError(FuelTraceError):
    """The same call may succeed later (a broker away, a lock held)."""

    transient = True


class TerminalError(FuelTraceError):
    """Retrying cannot help: the input or the configuration must change."""


class RecordRejected(TerminalError):
    """A message or record breaks the contract; it goes to the dead-letter topic.

    ``reason`` is machine-readable (see :mod:`ingest.reasons`), ``detail`` is for people
    and names the field at fault where there is one.
    """

    def __init__(
        self, reason: str, detail: str, *, field: str | None = None, where: Where | None = None
    ) -> None:
        super().__init__(f"{reason}: {detail}", where=where)
        self.reason = reason
        self.detail = detail
        self.field = field


class BrokerUnavailable(TransientError):
    """The Kafka broker did not answer."""


class NoBrokerConfigured(TerminalError):
    """FUELTRACE_BOOTSTRAP is unset and no embedded broker is running."""


class WarehouseBusy(TransientError):
    """Another process holds the DuckDB file."""


class WarehouseError(TerminalError):
    """The warehouse refused an operation for a reason retrying will not fix."""


class UsageError(TerminalError):
    """A command-line argument or API parameter that cannot be used as given."""


class WarehouseFull(TransientError):
    """The disk under the warehouse (or DuckDB's temp directory) has no space left: the
    write was rolled back; it succeeds once space is freed."""


class WarehouseDamaged(WarehouseError):
    """The warehouse file is not a readable fueltrace warehouse (corrupt, truncated, not a
    DuckDB file, another application's database). It is left untouched."""


class WarehouseTooNew(WarehouseError):
    """The warehouse was written by a newer fueltrace (a schema version this code does not
    know) or a newer DuckDB (a storage format this library cannot read)."""


class WarehouseInvalidated(WarehouseError):
    """DuckDB stopped using the file after a failed write (e.g. a checkpoint on a full
    disk); this process must reopen it. Nothing committed is lost."""
