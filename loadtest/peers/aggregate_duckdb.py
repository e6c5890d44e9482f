#!/usr/bin/env python3
"""The same aggregation in DuckDB (one thread), for comparison with sluice's Rust handler.

For each Kinesis-shaped batch file: read the JSON, unnest the records, base64-decode and parse
each payload, and GROUP BY (event_type, window, window_start, dims) with count, sum, min, max,
approx_count_distinct, approx_quantile(0.5/0.9/0.99) and the late count, for 1m and 1h windows.

Usage: aggregate_duckdb.py BATCH.json [BATCH.json ...]
Prints one JSON line: {"events": n, "cpu_seconds": s, "wall_seconds": w, "events_per_sec": r, "groups": g}.
"""
import json
import sys
import time

import duckdb

SQL = """
WITH recs AS (
  SELECT unnest(Records, recursive := false) AS r FROM read_json(?, maximum_object_size = 67108864)
), ev AS (
  SELECT decode(from_base64(r.kinesis.data)) AS j FROM recs
), parsed AS (
  SELECT j->>'event_type' AS t,
         CAST(j->>'occurred_at' AS TIMESTAMPTZ) AS occ,
         CAST(j->>'received_at' AS TIMESTAMPTZ) AS rec,
         CASE j->>'event_type' WHEN 'page_view' THEN j->'data'->>'device'
                               WHEN 'api_call' THEN j->'data'->>'route'
                               WHEN 'order_placed' THEN j->'data'->'context'->>'country'
                               ELSE j->'data'->>'currency' END AS d1,
         CASE j->>'event_type' WHEN 'api_call' THEN j->'data'->>'status'
                               WHEN 'order_placed' THEN j->'data'->'context'->>'channel'
                               ELSE j->'data'->>'country' END AS d2,
         CAST(CASE j->>'event_type' WHEN 'page_view' THEN j->'data'->>'duration_ms'
                                    WHEN 'api_call' THEN j->'data'->>'latency_ms'
                                    WHEN 'order_placed' THEN j->'data'->>'total'
                                    ELSE j->'data'->>'amount' END AS DOUBLE) AS m,
         CASE j->>'event_type' WHEN 'api_call' THEN j->'data'->>'client_id'
                               ELSE j->'data'->>'user_id' END AS ident
  FROM ev
), win AS (
  SELECT *, w, time_bucket(to_seconds(w), occ) AS ws FROM parsed, (VALUES (60), (3600)) v(w)
)
SELECT t, w, ws, d1, d2, count(*) AS n, sum(m), min(m), max(m), approx_count_distinct(ident),
       approx_quantile(m, 0.5), approx_quantile(m, 0.9), approx_quantile(m, 0.99),
       count(*) FILTER (WHERE rec > ws + to_seconds(w) + INTERVAL 5 MINUTE) AS late
FROM win WHERE m IS NOT NULL AND m >= 0
GROUP BY ALL
"""


def main():
    con = duckdb.connect()
    con.execute("SET threads = 1")
    files = sys.argv[1:]
    events = 0
    groups = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for f in files:
        rows = con.execute(SQL, [f]).fetchall()
        groups += len(rows)
        events += sum(r[5] for r in rows if r[1] == 60)
    wall = time.perf_counter() - t0
    secs = time.process_time() - c0  # CPU seconds: per-core rate, robust to a busy machine
    print(json.dumps({"events": events, "cpu_seconds": secs, "wall_seconds": wall, "events_per_sec": events / secs, "groups": groups}))


if __name__ == "__main__":
    main()
