"""Logging set-up for the entry points only: one line per event, with levels.

Call sites log an event name followed by ``key=value`` context::

    log.info("batch loaded load_id=%d records=%d", load_id, records)

``text`` (the default) prints that line after a timestamp, the level and the logger:

    ts=2026-11-24T03:08:44.123Z level=info logger=ingest.consumer msg="batch loaded" load_id=7 …

``json`` (``FUELTRACE_LOG_FORMAT=json``) prints one JSON object per line, with the
``key=value`` pairs as fields (numbers as numbers) for a log shipper. Nothing is logged
per record: the ingest logs per micro-batch.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

#: ``key=value`` or ``key="quoted value"`` in a rendered message.
PAIR = re.compile(r'(?<![^\s])([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')
#: Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


def split_message(message: str) -> tuple[str, dict[str, Any]]:
    """``"batch loaded load_id=7 x="a b""`` → ``("batch loaded", {"load_id": 7, "x": "a b"})``."""
    first = PAIR.search(message)
    if first is None:
        return message.strip(), {}
    fields = {key: _value(raw) for key, raw in PAIR.findall(message[first.start():])}
    return message[: first.start()].strip(), fields


def _value(raw: str) -> Any:
    if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
        return raw[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _timestamp(record: logging.LogRecord) -> str:
    when = datetime.fromtimestamp(record.created, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class KeyValueFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg="event" key=value …`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        first = PAIR.search(text)
        event, tail = (text[: first.start()], text[first.start():]) if first else (text, "")
        parts = [f"ts={_timestamp(record)}", f"level={record.levelname.lower()}",
                 f"logger={record.name}", f"msg={_quote(event.strip())}"]  # fmt: skip
        if tail.strip():
            parts.append(tail.strip().replace("\n", "\\n"))
        parts += [f"{k}={_quote(v)}" for k, v in _extra(record).items()]
        if record.exc_info:
            parts.append("exc=" + _quote(self.formatException(record.exc_info)))
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        message, fields = split_message(record.getMessage())
        entry: dict[str, Any] = {"ts": _timestamp(record), "level": record.levelname.lower(),
                                 "logger": record.name, "msg": message}  # fmt: skip
        for key, value in {**fields, **_extra(record)}.items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(verbose: bool = False, json_format: bool | None = None) -> None:
    """Log to stderr at ``FUELTRACE_LOG_LEVEL`` (``verbose``: DEBUG) in
    ``FUELTRACE_LOG_FORMAT`` (``json_format`` overrides it, e.g. from ``--log-json``)."""
    from fueltrace.settings import Settings

    try:
        settings = Settings()
        level_name, fmt = settings.log_level, settings.log_format
    except ValueError:  # a bad setting is reported by the command itself, with context
        level_name, fmt = "WARNING", "text"
    level = logging.DEBUG if verbose else getattr(logging, level_name.upper())
    as_json = fmt == "json" if json_format is None else json_format
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else KeyValueFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("kafka").setLevel(max(level, logging.ERROR))
