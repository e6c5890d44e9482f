#!/usr/bin/env python3
"""The DuckDB peer of the compaction benchmark: the same job on the same partition.

Usage: compact_duckdb.py <partition_dir> <out_file> [--rounds N]

DuckDB (1 thread, for a per-core figure) reads every Parquet file of the partition, keeps the
first row per event_id by received_at (then shard_id, sequence_number), orders by occurred_at
and writes one zstd Parquet file. Prints JSON: rows in, rows out, seconds (best round: the
larger of CPU and wall time), rows/s per core, output bytes, and the median round.
"""

import json
import os
import sys
import time

import duckdb


def run(con, src, out):
    if os.path.exists(out):
        os.remove(out)
    start = time.process_time()
    wall = time.perf_counter()
    con.execute(
        f"COPY (SELECT * EXCLUDE (rn) FROM (SELECT *, row_number() OVER (PARTITION BY event_id "
        f"ORDER BY received_at, shard_id, sequence_number) AS rn FROM read_parquet('{src}/*.parquet')) "
        f"WHERE rn = 1 ORDER BY occurred_at, event_id) TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    return time.process_time() - start, time.perf_counter() - wall


def main():
    args = sys.argv[1:]
    src, out = args[0], args[1]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET TimeZone = 'UTC'")
    rows_in = con.execute(f"SELECT count(*) FROM read_parquet('{src}/*.parquet')").fetchone()[0]
    times = sorted(max(cpu, wall) for cpu, wall in (run(con, src, out) for _ in range(rounds)))
    rows_out = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    best, median = times[0], times[len(times) // 2]
    print(json.dumps({
        "rows_in": rows_in, "rows_out": rows_out, "seconds": best, "median_seconds": median,
        "rows_per_s": rows_in / best, "median_rows_per_s": rows_in / median,
        "bytes_out": os.path.getsize(out),
    }))


if __name__ == "__main__":
    main()
