#!/usr/bin/env python3
"""The Python peer of the lake writer benchmark: what a Python Lambda using json + pyarrow does
with the same Kinesis batches.

Usage: lake_python_lambda.py <dir with batch-*.json> [--rounds N]

Per batch: json.loads the Kinesis event, base64-decode and json.loads every record, check each
event against its schema's fields (required present, JSON types, no unknown fields: the checks a
hand-written validator does; no full JSON Schema validation, which would be far slower), group by
(event_type, dt, hour of occurred_at UTC), build one pyarrow Table per group with the lake schema
(timestamps us UTC) and write it as Parquet (zstd, statistics, page index) to memory.
Prints JSON: events, cpu seconds, events/s per core, Parquet bytes per event. The pass over all
batches runs `--rounds` times (default 1); the best round counts (as in the Rust benchmark) and
the median is printed too.
`lake_python_lambda.py --memory <batch.json>` prints the peak RSS growth of one batch instead.
"""

import base64
import datetime as dt
import glob
import io
import json
import os
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")
JSON_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}
ARROW_TYPES = {"string": pa.string(), "integer": pa.int64(), "number": pa.float64(), "boolean": pa.bool_()}
TS = pa.timestamp("us", tz="UTC")


def load_schemas():
    tables = {}
    for path in sorted(glob.glob(os.path.join(SCHEMAS, "*", "v*.json"))):
        doc = json.load(open(path))
        t, v = doc["x-sluice-event-type"], doc["x-sluice-version"]
        tables.setdefault(t, {})[v] = doc
    out = {}
    for t, versions in tables.items():
        latest = versions[max(versions)]
        fields = [(name, prop["type"]) for name, prop in latest["properties"].items()]
        arrow = pa.schema(
            [("event_id", pa.string(), False), ("event_type", pa.string(), False),
             ("schema_version", pa.int32(), False), ("occurred_at", TS, False),
             ("received_at", TS, False), ("producer", pa.string(), False),
             ("shard_id", pa.string(), False), ("sequence_number", pa.string(), False)]
            + [(name, ARROW_TYPES[kind]) for name, kind in fields])
        out[t] = {"fields": fields, "arrow": arrow,
                  "versions": {v: (set(d.get("required", [])), {n: p["type"] for n, p in d["properties"].items()})
                               for v, d in versions.items()}}
    return out


def valid(event, table):
    spec = table["versions"].get(event.get("schema_version"))
    if spec is None:
        return False
    required, props = spec
    data = event.get("data")
    if not isinstance(data, dict) or not required.issubset(data.keys()):
        return False
    for name, value in data.items():
        kind = props.get(name)
        if kind is None or not isinstance(value, JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
            return False
    return True


def ts(s):
    return dt.datetime.fromisoformat(s)


def handle(body, tables):
    batch = json.loads(body)
    groups = {}
    for record in batch["Records"]:
        event = json.loads(base64.b64decode(record["kinesis"]["data"]))
        table = tables.get(event.get("event_type"))
        if table is None or not valid(event, table):
            continue  # would be dead-lettered
        occurred = ts(event["occurred_at"])
        shard = record["eventID"].rsplit(":", 1)[0]
        key = (event["event_type"], occurred.strftime("%Y-%m-%d"), occurred.hour, shard)
        groups.setdefault(key, []).append((event, occurred, shard, record["kinesis"]["sequenceNumber"]))
    sizes = 0
    for (event_type, _day, _hour, _shard), rows in groups.items():
        table = tables[event_type]
        columns = {
            "event_id": [e["event_id"] for e, *_ in rows],
            "event_type": [e["event_type"] for e, *_ in rows],
            "schema_version": [e["schema_version"] for e, *_ in rows],
            "occurred_at": [o for _, o, _, _ in rows],
            "received_at": [ts(e["received_at"]) for e, *_ in rows],
            "producer": [e["producer"] for e, *_ in rows],
            "shard_id": [s for _, _, s, _ in rows],
            "sequence_number": [q for *_, q in rows],
        }
        for name, _kind in table["fields"]:
            columns[name] = [e["data"].get(name) for e, *_ in rows]
        arrow = pa.Table.from_pydict(columns, schema=table["arrow"])
        out = io.BytesIO()
        pq.write_table(arrow, out, compression="zstd", write_statistics=True, write_page_index=True)
        sizes += out.tell()
    return len(batch["Records"]), sizes


def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def memory_of_one_batch(path, tables):
    """Peak RSS growth (MB) of reading and handling one batch in this fresh process."""
    base = status_kb("VmRSS:")
    with open(path, "rb") as f:
        body = f.read()
    handle(body, tables)
    del body
    return (status_kb("VmHWM:") - base) / 1024


def main():
    tables = load_schemas()
    if sys.argv[1] == "--memory":
        print(json.dumps({"peak_mb": memory_of_one_batch(sys.argv[2], tables)}))
        return
    args = sys.argv[1:]
    rounds = int(args[args.index("--rounds") + 1]) if "--rounds" in args else 1
    files = sorted(glob.glob(os.path.join(args[0], "batch-*.json")))
    bodies = [open(f, "rb").read() for f in files]
    handle(bodies[0], tables)  # warm-up
    cpus = []
    for _ in range(max(rounds, 1)):
        events = size = 0
        cpu = time.process_time()
        for body in bodies:
            n, s = handle(body, tables)
            events += n
            size += s
        cpus.append(time.process_time() - cpu)
    cpus.sort()
    print(json.dumps({"events": events, "cpu_s": cpus[0], "events_per_s": events / cpus[0],
                      "events_per_s_median": events / cpus[len(cpus) // 2], "rounds": len(cpus),
                      "parquet_bytes_per_event": size / events,
                      "pyarrow": pa.__version__}))


if __name__ == "__main__":
    main()
