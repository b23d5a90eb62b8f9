"""Fault injection for the crash tests: ``FUELTRACE_DEBUG_FAILPOINT=POINT:N`` kills this
process with SIGKILL the Nth time it reaches POINT.

The points (``POINTS``) are where a crash is hardest to recover from: ``decode`` (a
micro-batch decoded and validated, its load not started), ``load`` (inside the
warehouse transaction, before COMMIT), ``after_commit`` (the warehouse committed, the
Kafka offsets not yet) and ``analysis`` (traceability committed, the anomaly engine not
run). Unset, :func:`hit` costs one string comparison.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import Counter

log = logging.getLogger(__name__)
POINTS = ("decode", "load", "after_commit", "analysis")
#: ``POINT:N`` with N ≥ 1, or empty (off): the settings' pattern for the value.
PATTERN = rf"^(({'|'.join(POINTS)}):[1-9][0-9]*)?$"
_hits: Counter[str] = Counter()


def hit(name: str, spec: str) -> None:
    """Reaching point ``name``; ``spec`` is ``settings.debug_failpoint``."""
    if not spec:
        return
    point, _, nth = spec.partition(":")
    if point != name:
        return
    _hits[name] += 1
    if _hits[name] >= int(nth):
        log.warning("failpoint %s hit %d: SIGKILL pid=%d", name, _hits[name], os.getpid())
        for handler in logging.getLogger().handlers:  # the line must be out before the kill
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
