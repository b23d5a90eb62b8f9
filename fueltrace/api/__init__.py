"""The HTTP service: the regulator API, the station gateway, the case workflow, tokens.

Wiring only: the data logic is in ``warehouse`` (``anomalies``, ``trace``, ``stations``,
``inspection``, ``cases``, ``access``) and ``ingest``. :func:`fueltrace.api.app.create_app`
builds the ASGI app; :func:`fueltrace.api.serve.serve` runs it with the ingest and the
analyses in one process (`fueltrace serve`).
"""
