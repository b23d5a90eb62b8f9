"""Wiring of fueltrace: settings, errors, metrics, the command line and the demo.

The architecture lives in the sibling packages: ``ingest`` (Kafka in and out,
decoding, validation, dead letters), ``processors`` (Polars jobs), ``warehouse``
(DuckDB) and ``schemas`` (the Avro contract).
"""

__version__ = "0.1.0"
