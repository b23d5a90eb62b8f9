"""Validation of a micro-batch frame by the rules of its record type.

The schema was already enforced by decoding; these are the semantic rules
(``ingest/records/<type>.py``), applied as vectorised Polars expressions. A record
breaking several rules is reported with the first, in the order the type lists them.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from fueltrace.settings import Settings
from ingest.records import SPECS
from ingest.records.base import Rule, common_rules


def rules_for(record_type: str, settings: Settings, now: datetime) -> list[Rule]:
    spec = SPECS[record_type]
    now_expr = pl.lit(now).dt.cast_time_unit("ms")
    return common_rules(spec, settings, now_expr) + spec.rules(settings, now_expr)


def validate(
    record_type: str, frame: pl.DataFrame, settings: Settings, now: datetime | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split ``frame`` into (valid rows, rejected rows).

    Rejected rows keep every column plus ``reason``, ``field`` and ``detail``.
    """
    rules = rules_for(record_type, settings, now or datetime.now(UTC))
    if not rules or frame.is_empty():
        return frame, frame.head(0).with_columns(
            reason=pl.lit(None, pl.String), field=pl.lit(None, pl.String),
            detail=pl.lit(None, pl.String),
        )  # fmt: skip
    broken = [r.broken.fill_null(False) for r in rules]
    flagged = frame.with_columns(_broken=pl.any_horizontal(broken))
    valid = flagged.filter(~pl.col("_broken")).drop("_broken")
    bad = flagged.filter(pl.col("_broken")).drop("_broken")
    if bad.is_empty():
        return valid, bad.with_columns(
            reason=pl.lit(None, pl.String), field=pl.lit(None, pl.String),
            detail=pl.lit(None, pl.String),
        )  # fmt: skip

    def first(attr: str) -> pl.Expr:
        expr = pl.lit(None, pl.String)
        for rule, b in zip(reversed(rules), reversed(broken), strict=True):
            value = pl.lit(getattr(rule, attr)) if attr != "detail" else rule.detail
            expr = pl.when(b).then(value).otherwise(expr)
        return expr

    bad = bad.with_columns(
        reason=first("reason"), field=first("field"), detail=first("detail").fill_null("")
    )
    return valid, bad
