"""``python -m fueltrace`` is the ``fueltrace`` command."""

from fueltrace.cli import run

run()
