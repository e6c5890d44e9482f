#!/usr/bin/env python3
"""Reads a sluice lake directory with pyarrow.dataset and DuckDB and prints one JSON report.

Usage: lake_check.py <lake_dir>

The lake layout is <lake_dir>/events/event_type=<t>/dt=YYYY-MM-DD/hour=HH/*.parquet. For each
event type (table directory) the report holds, per reader: row count, column types, duplicate
event_ids; plus, from the Parquet footers: compression codecs and encodings per column, which
columns have a dictionary page in every file, timestamp logical types, whether every column chunk
has statistics and a page index (column index + offset index).
"""

import json
import os
import sys

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def table_dirs(lake):
    events = os.path.join(lake, "events")
    out = {}
    for name in sorted(os.listdir(events)):
        if name.startswith("event_type="):
            out[name.split("=", 1)[1]] = os.path.join(events, name)
    return out


def parquet_files(table_dir):
    files = []
    for root, _dirs, names in os.walk(table_dir):
        for n in names:
            if n.endswith(".parquet"):
                files.append(os.path.join(root, n))
    return sorted(files)


def footer_facts(files):
    codecs, encodings, dictionary, ts_types = {}, {}, {}, {}
    stats_everywhere, page_index_everywhere = True, True
    row_groups = 0
    for f in files:
        meta = pq.ParquetFile(f).metadata
        schema = meta.schema
        for i in range(meta.num_columns):
            col = schema.column(i)
            if col.logical_type.type == "TIMESTAMP":
                ts_types[col.name] = col.logical_type.to_json()
        for rg in range(meta.num_row_groups):
            row_groups += 1
            group = meta.row_group(rg)
            for c in range(group.num_columns):
                chunk = group.column(c)
                codecs.setdefault(chunk.path_in_schema, set()).add(chunk.compression)
                encodings.setdefault(chunk.path_in_schema, set()).update(chunk.encodings)
                dictionary[chunk.path_in_schema] = (dictionary.get(chunk.path_in_schema, True)
                                                    and chunk.has_dictionary_page)
                if not chunk.is_stats_set:
                    stats_everywhere = False
                if not (chunk.has_column_index and chunk.has_offset_index):
                    page_index_everywhere = False
    return {
        "files": len(files),
        "row_groups": row_groups,
        "compression": {column: sorted(seen) for column, seen in codecs.items()},
        "encodings": {column: sorted(seen) for column, seen in encodings.items()},
        "dictionary": dictionary,
        "timestamp_logical_types": ts_types,
        "statistics_everywhere": stats_everywhere,
        "page_index_everywhere": page_index_everywhere,
    }


def with_pyarrow(table_dir, files):
    # Files of older schema versions lack the newer columns: unify all file schemas (as a
    # query engine's schema merging does) instead of trusting the first file.
    unified = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="default")
    partitioning = ds.partitioning(pa.schema([("dt", pa.string()), ("hour", pa.int32())]), flavor="hive")
    dataset = ds.dataset(table_dir, format="parquet", partitioning=partitioning,
                         schema=pa.unify_schemas([unified, partitioning.schema]))
    table = dataset.to_table()
    ids = table.column("event_id").to_pylist()
    hours = sorted(set(table.column("hour").to_pylist()))
    return {
        "rows": table.num_rows,
        "columns": {f.name: str(f.type) for f in table.schema},
        "duplicate_event_ids": len(ids) - len(set(ids)),
        "hours": hours,
    }


def with_duckdb(con, table_dir):
    glob = os.path.join(table_dir, "*", "*", "*.parquet")
    src = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {src}").fetchone()
    columns = {name: typ for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
    return {"rows": rows, "columns": columns, "duplicate_event_ids": rows - distinct}


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    lake = sys.argv[1]
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    report = {"pyarrow_version": pa.__version__, "duckdb_version": duckdb.__version__, "tables": {}}
    for event_type, table_dir in table_dirs(lake).items():
        files = parquet_files(table_dir)
        report["tables"][event_type] = {
            "pyarrow": with_pyarrow(table_dir, files),
            "duckdb": with_duckdb(con, table_dir),
            "footer": footer_facts(files),
        }
    every = os.path.join(lake, "events", "*", "*", "*", "*.parquet")
    by_type = con.execute(
        f"SELECT event_type, count(*) FROM read_parquet('{every}', hive_partitioning = true, "
        "union_by_name = true) GROUP BY 1 ORDER BY 1").fetchall()
    report["duckdb_all_types"] = {t: n for t, n in by_type}
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
