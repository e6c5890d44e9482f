#!/usr/bin/env python3
"""The DuckDB peer of the backfill benchmark: the same aggregates from the same partition.

Usage: backfill_duckdb.py <partition_dir> [--rounds N]

DuckDB (1 thread, for a per-core figure) reads every Parquet file of the partition, keeps the
first row per event_id by received_at (then shard_id, sequence_number), as compaction and the
backfill do, and computes per shard, 1-minute and 1-hour window (by occurred_at) and page_view
dimensions (device, country): count, sum, min and max of the measure (duration_ms),
approx_count_distinct of the identity (user_id) and approx_quantile of the measure at 0.5, 0.9
and 0.99, both window sizes in one GROUPING SETS query, into a temporary table. Prints JSON:
rows in, unique rows, groups, seconds (best round: the larger of CPU and wall time), rows/s per
core, and the median round.
"""

import json
import sys
import time

import duckdb

QUERY = """
CREATE OR REPLACE TEMP TABLE backfill AS
WITH unique_rows AS (
    SELECT shard_id, occurred_at, device, country, duration_ms, user_id FROM (
        SELECT shard_id, occurred_at, device, country, duration_ms, user_id,
               row_number() OVER (PARTITION BY event_id
                                  ORDER BY received_at, shard_id, sequence_number) AS rn
        FROM read_parquet('{src}/*.parquet'))
    WHERE rn = 1)
SELECT shard_id,
       date_trunc('minute', occurred_at) AS minute_start,
       date_trunc('hour', occurred_at) AS hour_start,
       device, country,
       count(*) AS n,
       sum(duration_ms) AS total,
       min(duration_ms) AS lowest,
       max(duration_ms) AS highest,
       approx_count_distinct(user_id) AS users,
       approx_quantile(duration_ms, [0.5, 0.9, 0.99]) AS quantiles
FROM unique_rows
GROUP BY GROUPING SETS ((shard_id, minute_start, device, country),
                        (shard_id, hour_start, device, country))
"""


def run(con, src):
    start = time.process_time()
    wall = time.perf_counter()
    con.execute(QUERY.format(src=src))
    return time.process_time() - start, time.perf_counter() - wall


def main():
    args = sys.argv[1:]
    src = args[0]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET TimeZone = 'UTC'")
    rows_in = con.execute(f"SELECT count(*) FROM read_parquet('{src}/*.parquet')").fetchone()[0]
    times = sorted(max(cpu, wall) for cpu, wall in (run(con, src) for _ in range(rounds)))
    groups, rows_unique = con.execute(
        "SELECT count(*), sum(n) FILTER (WHERE hour_start IS NOT NULL) FROM backfill").fetchone()
    best, median = times[0], times[len(times) // 2]
    print(json.dumps({
        "rows_in": rows_in, "rows_unique": rows_unique, "groups": groups,
        "seconds": best, "median_seconds": median,
        "rows_per_s": rows_in / best, "median_rows_per_s": rows_in / median,
        "duckdb": duckdb.__version__,
    }))


if __name__ == "__main__":
    main()
