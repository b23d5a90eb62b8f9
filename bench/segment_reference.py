"""The pre-005 way to trace a batch: joining each segment with the sales of ``sale_std`` it
covers (only a lower time bound reaches the scan). ``segment_sales`` (migration 005)
stores what these joins compute: ``bench/trace_bench.py`` measures them as a baseline in
the same run, and ``tests/processors/segment_reference.py`` checks the stored rows
against them."""

from __future__ import annotations

_COVERS = ("s.station_id = seg.station_id AND s.tank_id = seg.tank_id AND s.at >= seg.valid_from "
           "AND (seg.valid_to IS NULL OR s.at < seg.valid_to)")  # fmt: skip

# per segment row (a batch in a segment): sold litres of the batch, sales, first, last,
# and the litres of it left in the tank after the open segment's sales
BY_JOIN = f"""
    SELECT seg.station_id, seg.tank_id, seg.valid_from, seg.batch_id,
           count(s.txn_id) AS sales, min(s.at) AS first_sale_at, max(s.at) AS last_sale_at,
           coalesce(sum(seg.share * s.volume_20_l), 0) AS sold_l,
           CASE WHEN seg.valid_to IS NULL
                THEN seg.litres_20 - seg.share * coalesce(sum(s.volume_20_l), 0) END AS in_tank
    FROM tank_segment seg LEFT JOIN sale_std s ON {_COVERS}
    GROUP BY seg.station_id, seg.tank_id, seg.valid_from, seg.valid_to, seg.batch_id,
             seg.share, seg.litres_20
    ORDER BY ALL
"""
STORED = """
    SELECT station_id, tank_id, valid_from, batch_id, sales, first_sale_at, last_sale_at,
           sold_20_l, in_tank_20_l
    FROM segment_sales ORDER BY ALL
"""

# trace_batch's tanks as computed before migration 005 (warehouse/trace.py, _batch_tanks)
BATCH_TANKS_BY_JOIN = f"""
    WITH received AS (
        SELECT station_id, tank_id, sum(litres_20) AS received_l, min("at") AS received_at
        FROM delivery_batch WHERE batch_id = $b GROUP BY ALL
    ), segs AS (
        SELECT * FROM tank_segment WHERE batch_id = $b
    ), sold AS (
        SELECT seg.station_id, seg.tank_id, sum(seg.share * s.volume_20_l) AS sold_l,
               count(*) AS sales, min(s.at) AS first_sale_at, max(s.at) AS last_sale_at
        FROM segs seg JOIN sale_std s ON {_COVERS} GROUP BY ALL
    ), now_in AS (
        SELECT seg.station_id, seg.tank_id,
               seg.litres_20 - seg.share * coalesce(
                   (SELECT sum(s.volume_20_l) FROM sale_std s WHERE {_COVERS}), 0)
               AS in_tank_l
        FROM segs seg WHERE seg.valid_to IS NULL
    ), variance AS (
        SELECT station_id, tank_id, sum(litres_20) AS variance_l
        FROM batch_variance WHERE batch_id = $b GROUP BY ALL
    )
    SELECT r.station_id, st.name AS station_name, st.city, r.tank_id, r.received_at,
           r.received_l, coalesce(sold.sold_l, 0) AS sold_l,
           coalesce(now_in.in_tank_l, 0) AS in_tank_l,
           -coalesce(variance.variance_l, 0) AS losses_l,
           coalesce(sold.sales, 0) AS sales, sold.first_sale_at, sold.last_sale_at
    FROM received r
    LEFT JOIN sold USING (station_id, tank_id)
    LEFT JOIN now_in USING (station_id, tank_id)
    LEFT JOIN variance USING (station_id, tank_id)
    LEFT JOIN station st ON st.station_id = r.station_id
    ORDER BY r.station_id, r.tank_id
"""
