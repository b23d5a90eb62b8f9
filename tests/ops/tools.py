"""Finding the external tools the operations tests need, or saying how to install them."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The Debian packages CI installs for these tests: `prometheus` brings both binaries.
APT = "apt-get install -y prometheus"


def need(tool: str, install: str = f"Debian's prometheus package: `{APT}`") -> str:
    """The path of ``tool`` (beside this Python, or on PATH), else fail saying how to get it."""
    found = shutil.which(tool, path=str(Path(sys.executable).parent)) or shutil.which(tool)
    if found is None:
        pytest.fail(f"`{tool}` is not installed; this test needs {install} (see README, "
                    "'Running it with Docker Compose')", pytrace=False)  # fmt: skip
    return found


def env_for(settings: object, **extra: object) -> dict[str, str]:
    """The environment a `fueltrace` subprocess needs to see ``settings``."""
    from fueltrace.settings import Settings
    from tests.helpers import settings_env

    assert isinstance(settings, Settings)
    return settings_env(settings, **extra)
