-- Schema version 5: trace a batch forward without reading the sales. Beside each
-- tank_segment row (a batch in a segment), what the segment's sales took of that batch
-- and, for the open segment, what of it is left in the tank; the lineage replay
-- (processors/lineage.py, processors/traceability.py) writes them with the segments and
-- late data rewrites them with them. trace_batch (warehouse/trace.py) reads this table
-- alone, by batch_id: before, it joined the batch's segments with the sales of sale_std
-- they cover and read most of sale_std for an old batch (p95 ~170 ms on a year of 300
-- stations, docs/benchmarks-trace.md).
--
-- A table of its own, keyed like tank_segment, rather than columns on it: a segment's
-- composition never changes once written before a restart point, its sales do when a
-- delivery arriving late cuts it short.
CREATE TABLE segment_sales (
    station_id VARCHAR NOT NULL, tank_id VARCHAR NOT NULL,
    valid_from TIMESTAMPTZ NOT NULL, batch_id VARCHAR NOT NULL,  -- the tank_segment row
    sold_20_l DOUBLE NOT NULL,     -- share × Σ volume_20_l of the tank's sales with
                                   -- valid_from <= "at" < valid_to: litres of the batch
    sales BIGINT NOT NULL,         -- how many sales the segment covers (every batch's)
    first_sale_at TIMESTAMPTZ,     -- the first and the last of them ("at"); NULL: none
    last_sale_at TIMESTAMPTZ,
    in_tank_20_l DOUBLE            -- the open segment (valid_to IS NULL) only: litres_20
                                   -- − sold_20_l, the batch still in the tank; else NULL
);

-- Segments written before this version: their sales from sale_std, each sale matched to
-- the segment covering it by an ASOF join (a range join per tank would compare every
-- sale with every segment of its tank).
INSERT INTO segment_sales
WITH segs AS (
    SELECT DISTINCT station_id, tank_id, valid_from, valid_to FROM tank_segment
), covered AS (
    SELECT seg.station_id, seg.tank_id, seg.valid_from, sum(s.volume_20_l) AS sold,
           count(*) AS sales, min(s."at") AS first_sale_at, max(s."at") AS last_sale_at
    FROM sale_std s
    ASOF JOIN segs seg
      ON seg.station_id = s.station_id AND seg.tank_id = s.tank_id
     AND s."at" >= seg.valid_from
    WHERE seg.valid_to IS NULL OR s."at" < seg.valid_to
    GROUP BY ALL
)
SELECT t.station_id, t.tank_id, t.valid_from, t.batch_id,
       t.share * coalesce(c.sold, 0), coalesce(c.sales, 0), c.first_sale_at, c.last_sale_at,
       CASE WHEN t.valid_to IS NULL THEN t.litres_20 - t.share * coalesce(c.sold, 0) END
FROM tank_segment t LEFT JOIN covered c USING (station_id, tank_id, valid_from);

-- No index on batch_id: an ART index scan halved _batch_tanks on a copy of the year
-- warehouse (4.8 M rows here) but made it 3–4× slower at 60 days (0.55 M rows), where the
-- sequential scan is cheap (docs/benchmarks-trace.md).
