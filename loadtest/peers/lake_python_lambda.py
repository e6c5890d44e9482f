#!/usr/bin/env python3
"""The Python peer of the lake writer benchmark: what a Python Lambda using json + pyarrow does
with the same Kinesis batches.

Usage: lake_python_lambda.py <dir with batch-*.json> [--rounds N]

Per batch: json.loads the Kinesis event, base64-decode and json.loads every record, check each
event against its schema's fields (required present, JSON types, no unknown fields, inside
nested objects and arrays too: the checks a hand-written validator does; no full JSON Schema validation, which would be far slower), group by
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


def kind_of(prop):
    """The property's type without "null" (`["string", "null"]` -> "string"), date-times apart."""
    kind = prop["type"]
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind == "string" and prop.get("format") == "date-time":
        return "date-time"
    return kind


def arrow_type(prop):
    kind = kind_of(prop)
    if kind == "object":
        return pa.struct([(n, arrow_type(p)) for n, p in prop["properties"].items()])
    if kind == "array":
        return pa.list_(pa.field("element", arrow_type(prop["items"])))
    return TS if kind == "date-time" else ARROW_TYPES[kind]


def load_schemas():
    tables = {}
    for path in sorted(glob.glob(os.path.join(SCHEMAS, "*", "v*.json"))):
        doc = json.load(open(path))
        t, v = doc["x-sluice-event-type"], doc["x-sluice-version"]
        tables.setdefault(t, {})[v] = doc
    out = {}
    for t, versions in tables.items():
        latest = versions[max(versions)]
        fields = list(latest["properties"].items())
        arrow = pa.schema(
            [("event_id", pa.string(), False), ("event_type", pa.string(), False),
             ("schema_version", pa.int32(), False), ("occurred_at", TS, False),
             ("received_at", TS, False), ("producer", pa.string(), False),
             ("shard_id", pa.string(), False), ("sequence_number", pa.string(), False)]
            + [(name, arrow_type(prop)) for name, prop in fields])
        out[t] = {"fields": fields, "arrow": arrow, "versions": versions}
    return out


def valid_value(value, prop):
    """The hand-written checks: JSON types, required present, no unknown fields, at every depth."""
    if value is None:
        return isinstance(prop["type"], list) and "null" in prop["type"]
    kind = kind_of(prop)
    if kind == "object":
        return valid_object(value, prop)
    if kind == "array":
        return isinstance(value, list) and all(valid_value(v, prop["items"]) for v in value)
    if kind == "date-time":
        return isinstance(value, str)
    return isinstance(value, JSON_TYPES[kind]) and (kind == "boolean" or not isinstance(value, bool))


def valid_object(value, schema):
    if not isinstance(value, dict) or not set(schema.get("required", [])).issubset(value.keys()):
        return False
    props = schema["properties"]
    return all(name in props and valid_value(v, props[name]) for name, v in value.items())


def valid(event, table):
    schema = table["versions"].get(event.get("schema_version"))
    return schema is not None and valid_object(event.get("data"), schema)


def to_arrow_value(value, prop):
    """`value` as pyarrow takes it: date-time strings parsed, at every depth."""
    if value is None:
        return None
    kind = kind_of(prop)
    if kind == "date-time":
        return ts(value)
    if kind == "object":
        return {n: to_arrow_value(value.get(n), p) for n, p in prop["properties"].items()}
    if kind == "array":
        return [to_arrow_value(v, prop["items"]) for v in value]
    return value


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
        for name, prop in table["fields"]:
            if kind_of(prop) in ("object", "array", "date-time"):
                columns[name] = [to_arrow_value(e["data"].get(name), prop) for e, *_ in rows]
            else:
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
