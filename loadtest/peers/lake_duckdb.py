#!/usr/bin/env python3
"""The DuckDB peer of the lake writer benchmark: read_json -> COPY ... (FORMAT parquet).

Usage: lake_duckdb.py <events.ndjson> <out_dir> [--rounds N]

DuckDB (1 thread, for a per-core figure) reads the same events as newline-delimited JSON (the
decoded stream record payloads: no Kinesis envelope, no base64, no validation - an advantage)
and writes one Hive-partitioned Parquet table per event type (zstd), with typed columns from
the data object. Prints JSON: events, seconds, events/s per core, Parquet bytes per event. The
whole job runs `--rounds` times (default 1, each into a fresh output directory); the best round
counts (as in the Rust benchmark) and the median is printed too.
"""

import json
import os
import shutil
import sys
import time

import duckdb


def run(con, src, out):
    """One round: load, then one Hive-partitioned COPY per event type. Returns CPU and wall s."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    start = time.process_time()
    wall = time.perf_counter()
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE raw AS SELECT * FROM read_json('{src}', format = 'newline_delimited', "
        "sample_size = -1)")
    types = [t for (t,) in con.execute("SELECT DISTINCT event_type FROM raw ORDER BY 1").fetchall()]
    for t in types:
        con.execute(
            f"COPY (SELECT * EXCLUDE (data), data.*, strftime(occurred_at, '%Y-%m-%d') AS dt, "
            f"hour(occurred_at) AS hour FROM raw WHERE event_type = '{t}') "
            f"TO '{out}/event_type={t}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (dt, hour), "
            "OVERWRITE_OR_IGNORE true)")
    return time.process_time() - start, time.perf_counter() - wall


def main():
    args = sys.argv[1:]
    src, out = args[0], args[1]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1
    con = duckdb.connect()
    con.execute("SET threads = 1")
    con.execute("SET TimeZone = 'UTC'")
    # A round's time is the larger of CPU and wall (DuckDB may do I/O off the thread).
    times = sorted((max(cpu, wall) if cpu > 0 else wall, cpu, wall) for cpu, wall in
                   (run(con, src, out) for _ in range(max(rounds, 1))))
    seconds, cpu, wall = times[0]
    events = con.execute("SELECT count(*) FROM raw").fetchone()[0]
    size = 0
    for root, _dirs, names in os.walk(out):
        size += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    print(json.dumps({"events": events, "cpu_s": cpu, "wall_s": wall, "events_per_s": events / seconds,
                      "events_per_s_median": events / times[len(times) // 2][0], "rounds": len(times),
                      "parquet_bytes_per_event": size / events, "duckdb": duckdb.__version__}))


if __name__ == "__main__":
    main()
