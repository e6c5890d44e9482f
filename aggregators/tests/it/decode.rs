//! The fast decoder agrees with `Registry::decode_stored` on every input.

use std::sync::Arc;

use crate::generate::{GenConfig, Generator, record_bytes};
use serde_json::{Value, json};
use sluice_aggregators::decode::{Decoder, Path};
use sluice_schemas::Registry;

fn check(decoder: &Decoder, registry: &Registry, bytes: &[u8]) -> Option<Path> {
    let slow = registry.decode_stored(bytes);
    let fast = decoder.decode(bytes);
    match (&slow, &fast) {
        (Ok(event), Ok((c, path))) => {
            assert_eq!(&decoder.from_event(event.clone()).unwrap(), c, "{}", String::from_utf8_lossy(bytes));
            Some(*path)
        }
        (Err(a), Err(b)) => {
            assert_eq!(a, b);
            None
        }
        _ => panic!(
            "disagreement on {}: registry {:?} decoder {:?}",
            String::from_utf8_lossy(bytes),
            slow.is_ok(),
            fast.is_ok()
        ),
    }
}

fn mutations(v: &Value) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut with = |f: &dyn Fn(&mut Value)| {
        let mut m = v.clone();
        f(&mut m);
        out.push(serde_json::to_vec(&m).unwrap());
    };
    let fields = [
        "user_id",
        "client_id",
        "device",
        "country",
        "duration_ms",
        "status",
        "latency_ms",
        "amount",
        "currency",
        "route",
    ];
    for f in fields {
        with(&|m| {
            m["data"].as_object_mut().unwrap().remove(f);
        });
        for bad in [
            json!(null),
            json!("x"),
            json!(-1),
            json!(1.5),
            json!(200.0),
            json!(1e300),
            json!(""),
            json!({}),
            json!([1]),
            json!(true),
            json!(18446744073709551615u64),
            json!("é€"),
        ] {
            let bad = bad.clone();
            with(&move |m| {
                if m["data"].get(f).is_some() {
                    m["data"][f] = bad.clone();
                }
            });
        }
    }
    with(&|m| m["data"]["extra"] = json!(1));
    with(&|m| m["data"]["device"] = json!("fridge"));
    with(&|m| m["data"]["country"] = json!("us"));
    with(&|m| m["data"]["country"] = json!("USA"));
    with(&|m| m["data"]["status"] = json!(99));
    with(&|m| m["data"]["status"] = json!(600));
    with(&|m| m["event_type"] = json!("nope"));
    with(&|m| m["schema_version"] = json!(9));
    with(&|m| m["schema_version"] = json!(-1));
    with(&|m| m["occurred_at"] = json!("yesterday"));
    with(&|m| m["occurred_at"] = json!("2026-01-01T00:00:00+02:00"));
    with(&|m| {
        m.as_object_mut().unwrap().remove("received_at");
    });
    with(&|m| m["producer"] = json!(5));
    with(&|m| m["data"] = json!(null));
    with(&|m| m["unknown_top_level"] = json!(1));
    let text = serde_json::to_string(v).unwrap();
    // Escapes, duplicate keys, whitespace, truncation, garbage.
    out.push(text.replace("\"user_id\":\"u", "\"user_id\":\"\\u0075").into_bytes());
    out.push(text.replace("\"user_id\"", "\"user\\u005fid\"").into_bytes());
    out.push(text.replace("\"data\":{", "\"data\":{\"country\":\"ZZ\",").into_bytes());
    out.push(text.replace(",", " ,\n ").into_bytes());
    out.push(text.as_bytes()[..text.len() / 2].to_vec());
    out.push(b"not json".to_vec());
    out.push(vec![0xff, 0xfe]);
    out
}

#[test]
fn decode_agrees_with_registry() {
    let registry = Arc::new(Registry::builtin().unwrap());
    let decoder = Decoder::new(Arc::clone(&registry));
    let mut fast = 0;
    let mut total = 0;
    for e in Generator::new(GenConfig { seed: 7, ..GenConfig::default() }).take(300) {
        let bytes = record_bytes(&e);
        assert_eq!(check(&decoder, &registry, &bytes), Some(Path::Fast), "valid events take the fast path");
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        for m in mutations(&v) {
            total += 1;
            if check(&decoder, &registry, &m) == Some(Path::Fast) {
                fast += 1;
            }
        }
    }
    assert!(total > 10_000);
    assert!(fast > 0);
}

#[test]
fn every_builtin_schema_has_fast_rules() {
    let registry = Arc::new(Registry::builtin().unwrap());
    let decoder = Decoder::new(Arc::clone(&registry));
    for t in registry.event_types() {
        for v in t.versions.keys() {
            assert!(decoder.is_fast(&t.name, *v), "{} v{v}", t.name);
        }
    }
}
