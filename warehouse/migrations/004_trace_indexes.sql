-- Schema version 4: trace a sale by lookup, not by scan. Rows arrive in time order,
-- so zone maps cannot skip anything for a txn_id; DuckDB uses an ART index when the
-- indexed column's equality is the whole filter (warehouse/trace.py is shaped for it).
-- Measured on a year of 300 stations: trace_sale p95 from ~500 ms to 27–54 ms
-- (docs/benchmarks-trace.md, --what-if).
CREATE INDEX sale_txn ON sale (txn_id);
CREATE INDEX sale_std_txn ON sale_std (txn_id);
