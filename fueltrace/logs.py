"""Logging set-up for the entry points only: one line per event, key=value context."""

from __future__ import annotations

import logging
import os
import sys


def configure(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(
        logging, os.environ.get("FUELTRACE_LOG_LEVEL", "WARNING").upper(), logging.WARNING
    )
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
    )
    logging.getLogger("kafka").setLevel(max(level, logging.ERROR))
