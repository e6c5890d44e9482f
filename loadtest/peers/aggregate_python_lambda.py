#!/usr/bin/env python3
"""A typical Python Lambda aggregator, for comparison with sluice's Rust handler.

For each Kinesis-shaped batch file (the JSON Lambda receives): parse the event (the runtime's
work), then per record base64-decode + json.loads + validate the fields that matter + aggregate
in dicts per (event_type, window, window_start, dims; nested dimensions such as
order_placed's `context/country` read through their objects): count, sum, min, max, set of identities,
list of measure values (quantiles by sorting at the end), late count. Single thread.

Usage: aggregate_python_lambda.py BATCH.json [BATCH.json ...]
Prints one JSON line: {"events": n, "cpu_seconds": s, "wall_seconds": w, "events_per_sec": r, "max_rss_kb": k}.
"""
import base64
import json
import resource
import sys
import time
from datetime import datetime

SCHEMAS = {
    "page_view": (("device", "country"), "duration_ms", "user_id"),
    "api_call": (("route", "status"), "latency_ms", "client_id"),
    "purchase": (("currency", "country"), "amount", "user_id"),
    "order_placed": (("context/country", "context/channel"), "total", "user_id"),
}
DEVICES = {"ios", "android", "web", "tv"}
CHANNELS = {"web", "ios", "android", "pos"}
WINDOWS = (60, 3600)
LATENESS = 300


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def at(d, path):
    """The value at a field path (`context/country`) of a data object, or None."""
    for key in path.split("/"):
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def valid_order(d):
    c = d.get("context")
    if not isinstance(c, dict) or c.get("channel") not in CHANNELS:
        return False
    country = c.get("country")
    if not (isinstance(country, str) and len(country) == 2 and country.isupper()):
        return False
    items = d.get("items")
    if not isinstance(items, list) or not 1 <= len(items) <= 100:
        return False
    for i in items:
        if not isinstance(i, dict) or not isinstance(i.get("sku"), str) or not i["sku"]:
            return False
        q, p = i.get("qty"), i.get("unit_price")
        if not isinstance(q, int) or isinstance(q, bool) or q < 1:
            return False
        if not isinstance(p, (int, float)) or isinstance(p, bool) or p < 0:
            return False
    if d.get("coupon") is not None and not isinstance(d["coupon"], str):
        return False
    try:
        ts(d["placed_at"])
    except (KeyError, TypeError, ValueError):
        return False
    return isinstance(d.get("order_id"), str)


def valid(e):
    d = e.get("data")
    t = SCHEMAS.get(e.get("event_type"))
    if t is None or not isinstance(d, dict):
        return False
    dims, measure, identity = t
    m = d.get(measure)
    if not isinstance(m, (int, float)) or isinstance(m, bool) or m < 0:
        return False
    if not isinstance(d.get(identity), str) or not d[identity]:
        return False
    if e["event_type"] == "page_view":
        if d.get("device") not in DEVICES:
            return False
        c = d.get("country")
        if not (isinstance(c, str) and len(c) == 2 and c.isupper()):
            return False
    elif e["event_type"] == "order_placed":
        return valid_order(d)
    elif e["event_type"] == "api_call":
        s = d.get("status")
        if not isinstance(s, int) or not 100 <= s <= 599 or not isinstance(d.get("route"), str):
            return False
    else:
        if not (isinstance(d.get("currency"), str) and len(d["currency"]) == 3):
            return False
    return True


def process(batch, aggs):
    n = 0
    for r in batch["Records"]:
        e = json.loads(base64.b64decode(r["kinesis"]["data"]))
        if not valid(e):
            continue
        dims, measure, identity = SCHEMAS[e["event_type"]]
        d = e["data"]
        occurred = ts(e["occurred_at"])
        received = ts(e["received_at"])
        x = d[measure]
        dv = tuple(at(d, k) for k in dims)
        for w in WINDOWS:
            start = int(occurred // w) * w
            key = (e["event_type"], w, start, dv)
            a = aggs.get(key)
            if a is None:
                a = aggs[key] = {"count": 0, "sum": 0.0, "min": x, "max": x, "ids": set(), "values": [], "late": 0}
            a["count"] += 1
            a["sum"] += x
            a["min"] = min(a["min"], x)
            a["max"] = max(a["max"], x)
            a["ids"].add(d[identity])
            a["values"].append(x)
            if received > start + w + LATENESS:
                a["late"] += 1
        n += 1
    # Finalize per batch (what would be written): quantiles by sorting.
    for a in aggs.values():
        v = sorted(a["values"])
        a["p50"], a["p90"], a["p99"] = (v[int(q * (len(v) - 1))] for q in (0.5, 0.9, 0.99))
        a["distinct"] = len(a["ids"])
    return n


def main():
    files = sys.argv[1:]
    raw = [open(f, "rb").read() for f in files]
    events = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for data in raw:
        batch = json.loads(data)
        events += process(batch, {})
    wall = time.perf_counter() - t0
    secs = time.process_time() - c0  # CPU seconds: per-core rate, robust to a busy machine
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"events": events, "cpu_seconds": secs, "wall_seconds": wall, "events_per_sec": events / secs, "max_rss_kb": rss}))


if __name__ == "__main__":
    main()
