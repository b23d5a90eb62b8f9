"""What every benchmark records beside its figures: the machine and the library versions."""

from __future__ import annotations

import os
import platform
from importlib.metadata import version
from typing import Any


def environment(libraries: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """Python, platform, CPUs (all, and those this process may use), total memory, and the
    versions of ``libraries``; ``extra`` entries are added as they are."""
    libs = {}
    for lib in libraries:
        try:
            libs[lib] = version(lib)
        except Exception:  # noqa: BLE001  (not installed, or no metadata: say so, go on)
            libs[lib] = "?"
    mem = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), **extra,
            "nproc": os.cpu_count(), "sched_cpus": len(os.sched_getaffinity(0)),
            "mem_total": mem, "libraries": libs}  # fmt: skip
