"""Polars jobs: normalising, reconciliation, traceability, anomaly rules."""
