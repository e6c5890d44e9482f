//! `Registry::decode_stored` (the per-record hot path of the aggregator and lake-writer
//! Lambdas): the fast path against the reference path (chrono + jsonschema), same run, same
//! records, and the allocation-free `Registry::decode_stored_view` (the lake writer's hot path),
//! for the flat types and for `order_placed` (nested objects, an array of objects, a nullable
//! string, a date-time). Run: `cargo bench -p sluice-schemas --bench decode` (prints ns/event).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sluice_schemas::{IngestContext, Registry};

const RECORDS: usize = 10_000;
const ROUNDS: usize = 7;

/// A tiny deterministic generator (no extra dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
}

/// Producer input of one typical event: `kind` 0..7 page_view v2, 7 page_view v1, 8 purchase,
/// 9 api_call.
fn input(rng: &mut Lcg, i: usize) -> Value {
    let occurred = format!("2026-11-26T09:{:02}:{:02}.{:03}Z", rng.next() % 60, rng.next() % 60, rng.next() % 1000);
    let user = format!("u{}", rng.next() % 100_000);
    let country = rng.pick(&["DE", "US", "FR", "GB", "JP"]);
    let (t, v, data) = match rng.next() % 10 {
        0..=6 => (
            "page_view",
            2,
            json!({"user_id": user, "session_id": format!("s{}", rng.next() % 1_000_000),
                "page": rng.pick(&["/", "/x", "/products/42", "/checkout"]),
                "device": rng.pick(&["ios", "android", "web", "tv"]), "country": country,
                "duration_ms": (rng.next() % 100_000) as f64 / 8.0}),
        ),
        7 => (
            "page_view",
            1,
            json!({"user_id": user, "session_id": "s1", "page": "/x", "referrer": "https://example.com/",
                "device": "web", "country": country, "duration_ms": 12.5}),
        ),
        8 => (
            "purchase",
            1,
            json!({"user_id": user, "order_id": format!("o{i}"), "amount": (rng.next() % 10_000) as f64 / 100.0,
                "currency": rng.pick(&["EUR", "USD"]), "country": country}),
        ),
        _ => (
            "api_call",
            1,
            json!({"client_id": user, "route": "GET /v1/items/{id}", "status": 200 + (rng.next() % 300) as i64,
                "latency_ms": (rng.next() % 5000) as f64 / 10.0}),
        ),
    };
    json!({"event_type": t, "schema_version": v, "occurred_at": occurred, "data": data})
}

/// Producer input of one `order_placed`: 1 to 4 line items, a coupon on one order in four, an
/// app version for app orders, the placement time with an offset.
fn order_input(rng: &mut Lcg, i: usize) -> Value {
    let occurred = format!("2026-11-26T09:{:02}:{:02}.{:03}Z", rng.next() % 60, rng.next() % 60, rng.next() % 1000);
    let channel = rng.pick(&["web", "ios", "android", "pos"]);
    let mut context = json!({"country": rng.pick(&["DE", "US", "FR", "GB", "JP"]), "channel": channel});
    if matches!(channel, "ios" | "android") {
        context["app_version"] = json!(format!("5.{}.0", rng.next() % 4));
    }
    let lines = 1 + (rng.next() % 4) as usize;
    let items: Vec<Value> = (0..lines)
        .map(|_| {
            json!({"sku": format!("SKU-{:05}", rng.next() % 5000), "qty": 1 + rng.next() % 3,
                "unit_price": (rng.next() % 10_000) as f64 / 100.0})
        })
        .collect();
    let coupon = if rng.next().is_multiple_of(4) { json!("SAVE10") } else { Value::Null };
    let data = json!({"order_id": format!("o{i}"), "user_id": format!("u{}", rng.next() % 100_000),
        "context": context, "items": items, "coupon": coupon,
        "placed_at": format!("2026-11-26T10:{:02}:{:02}.250+01:00", rng.next() % 60, rng.next() % 60),
        "total": (rng.next() % 100_000) as f64 / 100.0});
    json!({"event_type": "order_placed", "schema_version": 1, "occurred_at": occurred, "data": data})
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Best-of-[`ROUNDS`] nanoseconds per record for `f` over `records`.
fn ns_per_event<'a>(records: &'a [Vec<u8>], mut f: impl FnMut(&'a [u8]) -> bool) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        let mut ok = 0usize;
        for r in records {
            ok += usize::from(f(black_box(r)));
        }
        let elapsed = start.elapsed().as_nanos() as f64 / records.len() as f64;
        assert_eq!(ok, records.len(), "every generated record is valid");
        best = best.min(elapsed);
    }
    best
}

fn main() {
    let registry = Registry::builtin().unwrap();
    let ctx = IngestContext::new("p", utc("2026-11-26T10:00:00.123456Z"));
    let mut rng = Lcg(42);
    let records: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| serde_json::to_vec(&registry.validate(&input(&mut rng, i), &ctx).unwrap()).unwrap())
        .collect();
    for r in &records {
        assert_eq!(registry.decode_stored(r), registry.decode_stored_reference(r));
    }
    // DECODE_PROFILE=1: only loop the fast path (for `perf record`); DECODE_PROFILE=view: the
    // allocation-free view.
    match std::env::var("DECODE_PROFILE").as_deref() {
        Ok("view") => {
            let mut values = sluice_schemas::ViewValues::default();
            for _ in 0..1000 {
                for r in &records {
                    black_box(registry.decode_stored_view(black_box(r), &mut values).is_some());
                }
            }
            return;
        }
        Ok(_) => {
            for _ in 0..300 {
                for r in &records {
                    black_box(registry.decode_stored(black_box(r)).is_ok());
                }
            }
            return;
        }
        Err(_) => {}
    }
    let typical: Vec<Vec<u8>> =
        records.iter().filter(|r| r.windows(11).any(|w| w == b"\"page_view\"")).cloned().collect();
    let avg_len = records.iter().map(Vec::len).sum::<usize>() as f64 / records.len() as f64;
    println!(
        "decode_stored: {} records ({} page_view), avg {avg_len:.0} bytes, best of {ROUNDS} rounds",
        records.len(),
        typical.len()
    );

    let orders: Vec<Vec<u8>> = (0..RECORDS)
        .map(|i| serde_json::to_vec(&registry.validate(&order_input(&mut rng, i), &ctx).unwrap()).unwrap())
        .collect();
    for r in &orders {
        assert_eq!(registry.decode_stored(r), registry.decode_stored_reference(r));
    }
    let order_len = orders.iter().map(Vec::len).sum::<usize>() as f64 / orders.len() as f64;
    println!("  (order_placed: {} records, avg {order_len:.0} bytes)", orders.len());

    let rows: [(&str, &[Vec<u8>]); 3] = [("all types", &records), ("page_view", &typical), ("order_placed", &orders)];
    for (label, set) in rows {
        let reference = ns_per_event(set, |r| registry.decode_stored_reference(r).is_ok());
        let fast = ns_per_event(set, |r| registry.decode_stored(r).is_ok());
        let mut values = sluice_schemas::ViewValues::default();
        let view = ns_per_event(set, |r| registry.decode_stored_view(r, &mut values).is_some());
        println!(
            "  {label:<12} reference {reference:>7.0} ns/event   fast {fast:>7.0} ns/event   speed-up {:.1}x   \
             view (no allocation) {view:>5.0} ns/event",
            reference / fast
        );
    }
    // Floor: parsing the same bytes into a serde_json::Value (no validation at all).
    let parse = ns_per_event(&records, |r| serde_json::from_slice::<Value>(r).is_ok());
    println!("  (floor: serde_json::from_slice::<Value> alone {parse:.0} ns/event)");
    // The ingest path shares the table: validate() on the same events (producer form).
    let producer = |records: &[Vec<u8>]| -> Vec<Value> {
        records
            .iter()
            .map(|r| {
                let mut v: Value = serde_json::from_slice(r).unwrap();
                let o = v.as_object_mut().unwrap();
                o.remove("received_at");
                o.remove("producer");
                v
            })
            .collect()
    };
    let bench_validate = |inputs: &[Value], f: &dyn Fn(&Value) -> bool| {
        let mut best = f64::INFINITY;
        for _ in 0..ROUNDS {
            let start = Instant::now();
            for v in inputs {
                assert!(f(black_box(v)));
            }
            best = best.min(start.elapsed().as_nanos() as f64 / inputs.len() as f64);
        }
        best
    };
    for (label, set) in [("flat types", producer(&records)), ("order_placed", producer(&orders))] {
        let reference = bench_validate(&set, &|v| registry.validate_reference(v, &ctx).is_ok());
        let fast = bench_validate(&set, &|v| registry.validate(v, &ctx).is_ok());
        println!(
            "validate {label:<12} (ingest, from a parsed Value): reference {reference:.0} ns/event   fast {fast:.0} \
             ns/event   speed-up {:.1}x",
            reference / fast
        );
    }
}
