#!/usr/bin/env python3
"""Reads the order_placed table of a sluice lake with pyarrow.dataset and with DuckDB and prints
its rows as JSON, per reader, sorted by event_id: the data fields as each reader hands them to
Python (structs as objects, lists as arrays, nulls as null), placed_at as microseconds since the
epoch.

Usage: order_rows.py <lake_dir>
"""

import json
import os
import sys

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

COLUMNS = ["event_id", "order_id", "user_id", "context", "items", "coupon", "total"]


def with_pyarrow(table_dir):
    partitioning = ds.partitioning(pa.schema([("dt", pa.string()), ("hour", pa.int32())]), flavor="hive")
    table = ds.dataset(table_dir, format="parquet", partitioning=partitioning).to_table()
    out = table.select(COLUMNS).append_column("placed_at_us", pc.cast(table.column("placed_at"), pa.int64()))
    return sorted(out.to_pylist(), key=lambda r: r["event_id"])


def with_duckdb(table_dir):
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    glob = os.path.join(table_dir, "*", "*", "*.parquet")
    cursor = con.execute(
        f"SELECT {', '.join(COLUMNS)}, epoch_us(placed_at) AS placed_at_us "
        f"FROM read_parquet('{glob}', hive_partitioning = true) ORDER BY event_id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    table_dir = os.path.join(sys.argv[1], "events", "event_type=order_placed")
    json.dump({"pyarrow": with_pyarrow(table_dir), "duckdb": with_duckdb(table_dir)}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
