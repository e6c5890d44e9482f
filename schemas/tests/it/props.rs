//! Property tests: no input panics; validated events survive the stream encoding.

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::{ctx, registry};

pub(crate) fn arb_f64() -> impl Strategy<Value = f64> {
    prop_oneof![prop::num::f64::NORMAL, prop::num::f64::ZERO, prop::num::f64::SUBNORMAL, (-1e6f64..1e6f64),]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "event_id",
            "event_type",
            "schema_version",
            "occurred_at",
            "data",
            "user_id",
            "device",
            "country",
            "duration_ms",
            "status",
            "a/b~c",
            "",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,8}",
    ]
}

pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        arb_f64().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "page_view",
            "purchase",
            "api_call",
            "ios",
            "US",
            "2024-05-01T11:59:00Z",
            "2099-01-01T00:00:00+14:00",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Envelopes with a plausible shape and random (often invalid) content.
fn arb_envelope() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["page_view", "purchase", "api_call", "nope"]),
        prop::option::of(arb_json()),
        prop::option::of(arb_json()),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "user_id",
                "session_id",
                "page",
                "referrer",
                "device",
                "country",
                "duration_ms",
                "app_version",
                "order_id",
                "amount",
                "currency",
                "client_id",
                "route",
                "status",
                "latency_ms",
                "extra",
            ]),
            arb_json(),
            0..10,
        ),
    )
        .prop_map(|(t, version, id, data)| {
            let mut env = json!({"event_type": t, "occurred_at": "2024-05-01T11:00:00Z", "data": data});
            if let Some(v) = version {
                env["schema_version"] = v;
            }
            if let Some(id) = id {
                env["event_id"] = id;
            }
            env
        })
}

fn check_outcome(input: &Value) -> Result<(), TestCaseError> {
    match registry().validate(input, &ctx()) {
        Ok(event) => {
            let back = registry().decode_stored(&serde_json::to_vec(&event).unwrap());
            prop_assert_eq!(back, Ok(event));
        }
        Err(rejection) => {
            prop_assert!(!rejection.violations.is_empty());
            prop_assert!(rejection.violations.is_sorted(), "{:?}", rejection.violations);
            for v in &rejection.violations {
                prop_assert!(v.pointer.is_empty() || v.pointer.starts_with('/'));
                prop_assert!(!v.message.is_empty());
            }
        }
    }
    Ok(())
}

/// An occurred_at no later than the test ctx's cut-off, with a random offset and nanoseconds.
fn arb_occurred_at() -> impl Strategy<Value = String> {
    // From the default lake start (2000-01-01) to the ctx cut-off.
    (946_684_800i64..=1_714_565_099, 0u32..1_000_000_000, -14 * 60i32..=14 * 60).prop_map(
        |(secs, nanos, offset_min)| {
            let utc = DateTime::<Utc>::from_timestamp(secs, nanos).unwrap();
            let offset = FixedOffset::east_opt(offset_min * 60).unwrap();
            utc.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::AutoSi, false)
        },
    )
}

fn arb_event_id() -> impl Strategy<Value = Option<String>> {
    // 0 and u128::MAX are placeholder ids, which validation rejects.
    let id = any::<u128>().prop_filter("placeholder id", |n| *n != 0 && *n != u128::MAX);
    prop::option::of(prop_oneof![
        id.clone().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
        id.prop_map(|n| ulid::Ulid(n).to_string()),
    ])
}

/// Non-negative measures up to the measure limit (larger positives are scaled down into it).
fn non_negative() -> impl Strategy<Value = f64> {
    let positive =
        prop::num::f64::POSITIVE.prop_map(|x| if x > sluice_schemas::MEASURE_LIMIT { x * 1e-280 } else { x });
    prop_oneof![positive, prop::num::f64::ZERO, 0.0f64..1e7, Just(sluice_schemas::MEASURE_LIMIT)]
}

/// Valid events of every type and version.
pub(crate) fn arb_valid() -> impl Strategy<Value = Value> {
    let page_view = (
        ("\\PC{1,12}", "\\PC{1,12}", "\\PC{1,24}", prop::option::of("\\PC{0,24}")),
        prop::sample::select(vec!["ios", "android", "web", "tv"]),
        "[A-Z]{2}",
        non_negative(),
        prop::option::of(prop::option::of("\\PC{0,8}")),
    )
        .prop_map(|((user, session, page, referrer), device, country, duration, v2)| {
            let mut data = json!({"user_id": user, "session_id": session, "page": page,
                "device": device, "country": country, "duration_ms": duration});
            if let Some(r) = referrer {
                data["referrer"] = json!(r);
            }
            // None: v1; Some(None): latest without app_version; Some(Some(_)): v2 with it.
            let version = match v2 {
                None => Some(1),
                Some(None) => None,
                Some(Some(app)) => {
                    data["app_version"] = json!(app);
                    Some(2)
                }
            };
            ("page_view", version, data)
        });
    let purchase = ("\\PC{1,12}", "\\PC{1,12}", non_negative(), "[A-Z]{3}", "[A-Z]{2}").prop_map(
        |(user, order, amount, currency, country)| {
            let data = json!({"user_id": user, "order_id": order, "amount": amount,
                "currency": currency, "country": country});
            ("purchase", Some(1), data)
        },
    );
    let api_call = ("\\PC{1,12}", "\\PC{1,24}", 100i64..=599, any::<bool>(), non_negative()).prop_map(
        |(client, route, status, as_float, latency)| {
            let status = if as_float { json!(status as f64) } else { json!(status) };
            let data = json!({"client_id": client, "route": route, "status": status,
                "latency_ms": latency});
            ("api_call", None, data)
        },
    );
    (prop_oneof![page_view, purchase, api_call], arb_occurred_at(), arb_event_id()).prop_map(
        |((t, version, data), occurred_at, id)| {
            let mut env = json!({"event_type": t, "occurred_at": occurred_at, "data": data});
            if let Some(v) = version {
                env["schema_version"] = json!(v);
            }
            if let Some(id) = id {
                env["event_id"] = json!(id);
            }
            env
        },
    )
}

proptest! {
    #[test]
    fn validate_never_panics_on_any_json(input in arb_json()) {
        check_outcome(&input)?;
    }

    #[test]
    fn validate_never_panics_on_envelope_shaped_input(input in arb_envelope()) {
        check_outcome(&input)?;
    }

    #[test]
    fn decode_stored_never_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = registry().decode_stored(&bytes);
    }

    #[test]
    fn decode_stored_never_panics_on_corrupted_records(
        input in arb_valid(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let event = registry().validate(&input, &ctx()).unwrap();
        let mut bytes = serde_json::to_vec(&event).unwrap();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        if let Err(rejection) = registry().decode_stored(&bytes) {
            prop_assert!(!rejection.violations.is_empty());
        }
    }

    #[test]
    fn decode_stored_never_panics_on_json_of_any_shape(value in arb_json()) {
        let _ = registry().decode_stored(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn validated_events_round_trip_through_the_stream_encoding(input in arb_valid()) {
        let event = registry().validate(&input, &ctx())
            .map_err(|r| TestCaseError::fail(format!("{input} rejected: {r}")))?;
        prop_assert_eq!(event.data.len(), input["data"].as_object().unwrap().len());
        let bytes = serde_json::to_vec(&event).unwrap();
        prop_assert_eq!(registry().decode_stored(&bytes), Ok(event));
    }
}
