//! The fast decoder agrees with `Registry::decode_stored` on every input, flat or nested, and
//! allocates nothing per record on the view path.

use std::hint::black_box;
use std::sync::Arc;

use crate::generate::{GenConfig, Generator, record_bytes};
use serde_json::{Value, json};
use sluice_aggregators::decode::{Decoder, Path};
use sluice_aggregators::{Contribution, DimRef};
use sluice_schemas::{Registry, ViewCache};

fn check(decoder: &Decoder, registry: &Registry, bytes: &[u8]) -> Option<Path> {
    let slow = registry.decode_stored(bytes);
    let fast = decoder.decode(bytes);
    // decode_into a reused contribution (left-over dimensions of another event) agrees.
    let mut reused = Contribution {
        dims: vec![DimRef::from("left over"), DimRef::Int(7), DimRef::Int(8), DimRef::Int(9)],
        ..Contribution::empty()
    };
    match (&fast, decoder.decode_into(bytes, &mut reused)) {
        (Ok((c, path)), Ok(p)) => assert_eq!((c, *path), (&reused, p)),
        (Err(a), Err(b)) => assert_eq!(a, &b),
        _ => panic!("decode and decode_into disagree on {}", String::from_utf8_lossy(bytes)),
    }
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
    // Number spellings the canonical scanner must read exactly as serde_json does.
    for field in ["status", "duration_ms", "latency_ms", "amount"] {
        let key = format!("\"{field}\":");
        if let Some(at) = text.find(&key) {
            let start = at + key.len();
            let end = start + text[start..].find([',', '}']).unwrap();
            for n in [
                "-0",
                "-0.0",
                "0",
                "00",
                "01",
                "1.",
                ".5",
                "1e2",
                "1E+2",
                "1e-2",
                "2.5e",
                "-",
                "--1",
                "1.5.5",
                "200.0",
                "123456789012345678",
                "1234567890123456789",
                "-123456789012345678",
                "0.1000000000000000055511151231257827",
                "2.2250738585072011e-308",
                "1e400",
                "7.0e0",
                "404 ",
                " 404",
            ] {
                out.push(format!("{}{n}{}", &text[..start], &text[end..]).into_bytes());
            }
        }
    }
    // Data members in reverse order (not the rule order the decoder expects first).
    if let Some(data) = v["data"].as_object() {
        let reversed: Vec<String> =
            data.iter().rev().map(|(k, x)| format!("{}:{x}", Value::from(k.as_str()))).collect();
        let data_text = serde_json::to_string(&v["data"]).unwrap();
        out.push(text.replacen(&data_text, &format!("{{{}}}", reversed.join(",")), 1).into_bytes());
        // A member repeated at the end.
        if let Some((k, x)) = data.iter().next() {
            let dup = format!("{},{}:{x}}}", &data_text[..data_text.len() - 1], Value::from(k.as_str()));
            out.push(text.replacen(&data_text, &dup, 1).into_bytes());
        }
    }
    // Canonical layout with every kind of small deviation.
    out.push(text.replacen("{\"event_id\"", "{ \"event_id\"", 1).into_bytes());
    out.push(text.replacen("\"schema_version\":", "\"schema_version\":0", 1).into_bytes());
    out.push(format!("{text} ").into_bytes());
    out.push(format!("{text}x").into_bytes());
    out.push(text.replacen("\"producer\":\"", "\"producer\":\"\\\"", 1).into_bytes());
    out.push(text.replacen("\"event_id\":\"", "\"event_id\":\"\u{1}", 1).into_bytes());
    out.push(text.replacen("\"data\":{", "\"data\":{}", 1).into_bytes());
    out.push(b"not json".to_vec());
    out.push(vec![0xff, 0xfe]);
    out
}

/// Byte-level mutations of a record as the stream carries it (the canonical layout).
fn byte_mutations(text: &[u8]) -> Vec<Vec<u8>> {
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut out = Vec::new();
    // Invalid UTF-8 inside every kind of string and outside strings; valid non-ASCII where
    // the canonical scanner only checks (event_id, producer) or hands out (values) a string.
    let bytes_with = |from: &str, to: &[u8]| -> Option<Vec<u8>> {
        let at = find(text, from.as_bytes())?;
        let mut b = text[..at].to_vec();
        b.extend_from_slice(to);
        b.extend_from_slice(&text[at + from.len()..]);
        Some(b)
    };
    for (from, to) in [
        ("\"event_id\":\"", &b"\"event_id\":\"\xff"[..]),
        ("\"event_id\":\"", b"\"event_id\":\"\xc3\xa9"),
        ("\"event_id\":\"", b"\"event_id\":\"\xed\xa0\x80"),
        ("\"event_id\":\"", b"\"event_id\":\"abcdefgh\xc3"),
        ("\"producer\":\"", b"\"producer\":\"\xc3\x28"),
        ("\"producer\":\"", b"\"producer\":\"\xe2\x82\xac"),
        ("\"event_type\":\"", b"\"event_type\":\"\x80"),
        ("\"occurred_at\":\"", b"\"occurred_at\":\"\xf0\x9f\x98"),
        ("\"received_at\":\"2", b"\"received_at\":\"\xef\xbc\x92"),
        ("\"user_id\":\"", b"\"user_id\":\"\xfe"),
        ("\"user_id\":\"", b"\"user_id\":\"abcdefgh\xc3"),
        ("\"user_id\":\"", b"\"user_id\":\"abcdefghijklmno\xed\xa0\x80"),
        ("\"country\":\"", b"\"country\":\"\xc0\xaf"),
        ("\"user_id\":\"", b"\"user_id\":\"\xc3\xa9"),
        ("\"user_id\":\"", b"\"user_id\":\"\xf4\x90\x80\x80"),
        ("\"country\":\"", b"\"country\":\"\xc3\x84"),
        ("\"user_id\"", b"\"user_id\xff\""),
        ("\"data\":{", b"\"data\":{\"\xff\":1,"),
        (",\"data\"", b"\xff,\"data\""),
        ("\"data\":{", b"\"data\"\xc2\xa0:{"),
    ] {
        out.extend(bytes_with(from, to));
    }
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
        // Valid non-ASCII text (in producer, user_id) stays on the fast path.
        let fast_bytes =
            byte_mutations(&bytes).iter().filter(|m| check(&decoder, &registry, m) == Some(Path::Fast)).count();
        assert!(fast_bytes >= 1, "{fast_bytes}");
    }
    assert!(total > 10_000);
    assert!(fast > 0);
}

/// Mutations of an `order_placed` record at its nested roles and around them: values of every
/// kind at each path, each path removed, `context` with its members reordered or repeated.
fn nested_mutations(v: &Value) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let pointers = [
        "/data/context/country",
        "/data/context/channel",
        "/data/context/app_version",
        "/data/context",
        "/data/user_id",
        "/data/total",
        "/data/items",
        "/data/items/0",
        "/data/items/0/qty",
        "/data/coupon",
        "/data/placed_at",
    ];
    let values = [
        json!(null),
        json!("x"),
        json!("ZZ"),
        json!("us"),
        json!("web"),
        json!(-1),
        json!(1.5),
        json!(3.0),
        json!(2),
        json!(""),
        json!({}),
        json!([]),
        json!([1]),
        json!(true),
        json!(18446744073709551615u64),
        json!("é€"),
        json!("2026-01-01T00:00:00+02:00"),
        json!("2026-01-01T00:00:00.5Z"),
        json!("2026-01-01T00:00:00.500Z"),
        json!({"country": "DE", "channel": "pos"}),
        json!({"sku": "s", "qty": 1, "unit_price": 1}),
    ];
    for pointer in pointers {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let mut removed = v.clone();
        if let Some(object) = removed.pointer_mut(parent).and_then(Value::as_object_mut) {
            object.remove(key);
        }
        out.push(serde_json::to_vec(&removed).unwrap());
        for value in &values {
            let mut m = v.clone();
            if let Some(at) = m.pointer_mut(pointer) {
                *at = value.clone();
                out.push(serde_json::to_vec(&m).unwrap());
            }
        }
    }
    let text = serde_json::to_string(v).unwrap();
    if let Some(context) = v["data"]["context"].as_object() {
        let members: Vec<String> = context.iter().map(|(k, x)| format!("{}:{x}", Value::from(k.as_str()))).collect();
        let written = serde_json::to_string(&v["data"]["context"]).unwrap();
        let reversed: Vec<String> = members.iter().rev().cloned().collect();
        out.push(text.replacen(&written, &format!("{{{}}}", reversed.join(",")), 1).into_bytes());
        let repeated = format!("{{{},{}}}", members.join(","), members[0]);
        out.push(text.replacen(&written, &repeated, 1).into_bytes());
        out.push(text.replacen(&written, &format!("{{{}}}", members.join(", ")), 1).into_bytes());
    }
    out
}

/// Records of every type, `order_placed` among them.
fn mixed_records(seed: u64, n: usize) -> Vec<Vec<u8>> {
    let cfg = GenConfig { seed, mix: [60, 25, 15, 30], ..GenConfig::default() };
    Generator::new(cfg).take(n).iter().map(record_bytes).collect()
}

#[test]
fn order_placed_decodes_on_the_view_as_the_registry_does() {
    let registry = Arc::new(Registry::builtin().unwrap());
    let decoder = Decoder::new(Arc::clone(&registry));
    let mut fast = 0;
    let mut total = 0;
    for e in Generator::new(GenConfig { seed: 11, mix: [0, 0, 0, 1], ..GenConfig::default() }).take(150) {
        assert_eq!(e.event_type, "order_placed");
        let bytes = record_bytes(&e);
        assert_eq!(check(&decoder, &registry, &bytes), Some(Path::Fast), "{}", String::from_utf8_lossy(&bytes));
        // The dimensions are `context/country` and `context/channel`, borrowed from the record.
        let (c, _) = decoder.decode(&bytes).unwrap();
        let context = &e.data["context"];
        assert_eq!(
            c.dims,
            [DimRef::from(context["country"].as_str().unwrap()), DimRef::from(context["channel"].as_str().unwrap())]
        );
        assert!(c.dims.iter().all(|d| matches!(d, DimRef::Str(_))), "{:?}", c.dims);
        assert_eq!(c.obs.measure, e.data["total"].as_f64());
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        for m in mutations(&v).into_iter().chain(nested_mutations(&v)) {
            total += 1;
            if check(&decoder, &registry, &m) == Some(Path::Fast) {
                fast += 1;
            }
        }
        let fast_bytes =
            byte_mutations(&bytes).iter().filter(|m| check(&decoder, &registry, m) == Some(Path::Fast)).count();
        assert!(fast_bytes >= 1, "{fast_bytes}");
    }
    assert!(total > 20_000, "{total}");
    assert!(fast > 150, "valid mutations (another coupon, timestamp, quantity) stay on the view: {fast}");
}

#[test]
fn the_view_path_allocates_nothing_per_record() {
    let registry = Arc::new(Registry::builtin().unwrap());
    let decoder = Decoder::new(Arc::clone(&registry));
    let records = mixed_records(5, 400);
    let nested = records.iter().filter(|r| r.windows(14).any(|w| w == b"\"order_placed\"")).count();
    assert!(nested > 50, "{nested} order_placed records");
    assert!(allocation_counter::measure(|| drop(black_box(vec![1u8]))).count_total == 1, "the counter counts");
    let mut cache = ViewCache::default();
    let mut out = Contribution::empty();
    // Warm-up: the cache learns each version, `out.dims` grows to the most dimensions.
    for r in &records {
        assert_eq!(decoder.decode_cached(r, &mut out, &mut cache), Ok(Path::Fast));
    }
    let mut viewed = 0;
    let info = allocation_counter::measure(|| {
        for r in &records {
            viewed += usize::from(decoder.decode_cached(black_box(r), &mut out, &mut cache) == Ok(Path::Fast));
        }
    });
    assert_eq!(viewed, records.len());
    assert_eq!(info.count_total, 0, "allocations on the view path: {info:?}");
    // The registry path allocates (an Event per record), which the same counter sees.
    let info = allocation_counter::measure(|| {
        for r in &records {
            black_box(registry.decode_stored(black_box(r)).is_ok());
        }
    });
    assert!(info.count_total >= records.len() as u64, "{info:?}");
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

#[test]
fn stored_records_outside_the_event_time_range_are_rejected_like_the_registry_does() {
    let registry = Arc::new(Registry::builtin().unwrap());
    let decoder = Decoder::new(Arc::clone(&registry));
    let record = |occurred: &str, received: &str| {
        format!(
            "{{\"event_id\":\"e\",\"event_type\":\"api_call\",\"schema_version\":1,\"occurred_at\":\"{occurred}\",\
             \"received_at\":\"{received}\",\"producer\":\"p\",\"data\":{{\"client_id\":\"c\",\"latency_ms\":1.5,\
             \"route\":\"/r\",\"status\":200}}}}"
        )
        .into_bytes()
    };
    for (occurred, received, ok) in [
        ("2000-01-01T00:00:00Z", "2024-05-01T12:00:00Z", true),
        ("1999-12-31T23:59:59.999999Z", "2024-05-01T12:00:00Z", false),
        ("0000-01-01T00:00:00Z", "2024-05-01T12:00:00Z", false),
        ("2024-05-01T12:05:00Z", "2024-05-01T12:00:00Z", true),
        ("2024-05-01T12:05:00.000001Z", "2024-05-01T12:00:00Z", false),
    ] {
        let bytes = record(occurred, received);
        assert_eq!(check(&decoder, &registry, &bytes).is_some(), ok, "{occurred}");
        if !ok {
            let rejection = decoder.decode(&bytes).unwrap_err();
            assert_eq!(rejection.violations[0].pointer, "/occurred_at", "{occurred}");
        }
    }
}
