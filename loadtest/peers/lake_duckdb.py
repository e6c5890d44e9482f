#!/usr/bin/env python3
"""The DuckDB peer of the lake writer benchmark: read_json -> COPY ... (FORMAT parquet).

Usage: lake_duckdb.py <events.ndjson> <out_dir>

DuckDB (1 thread, for a per-core figure) reads the same events as newline-delimited JSON (the
decoded stream record payloads: no Kinesis envelope, no base64, no validation - an advantage)
and writes one Hive-partitioned Parquet table per event type (zstd), with typed columns from
the data object. Prints JSON: events, seconds, events/s per core, Parquet bytes per event.
"""

import json
import os
import sys
import time

import duckdb


def main():
    src, out = sys.argv[1], sys.argv[2]
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET TimeZone = 'UTC'")
    os.makedirs(out, exist_ok=True)
    start = time.process_time()
    wall = time.perf_counter()
    con.execute(
        f"CREATE TEMP TABLE raw AS SELECT * FROM read_json('{src}', format = 'newline_delimited', sample_size = -1)")
    types = [t for (t,) in con.execute("SELECT DISTINCT event_type FROM raw ORDER BY 1").fetchall()]
    for t in types:
        con.execute(
            f"COPY (SELECT * EXCLUDE (data), data.*, strftime(occurred_at, '%Y-%m-%d') AS dt, "
            f"hour(occurred_at) AS hour FROM raw WHERE event_type = '{t}') "
            f"TO '{out}/event_type={t}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt, hour), "
            "OVERWRITE_OR_IGNORE true)")
    cpu = time.process_time() - start
    wall = time.perf_counter() - wall
    events = con.execute("SELECT count(*) FROM raw").fetchone()[0]
    size = 0
    for root, _dirs, names in os.walk(out):
        size += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    seconds = max(cpu, wall) if cpu > 0 else wall
    print(json.dumps({"events": events, "cpu_s": cpu, "wall_s": wall, "events_per_s": events / seconds,
                      "parquet_bytes_per_event": size / events, "duckdb": duckdb.__version__}))


if __name__ == "__main__":
    main()
