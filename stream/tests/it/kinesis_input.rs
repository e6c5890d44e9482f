//! `KinesisInput::from_slice`, `KinesisBatch::parse` / `parse_with` / `parse_retaining` agree
//! with `serde_json::from_slice::<KinesisEvent>` on real AWS-shaped fixtures, on mutations of
//! them, and never panics on bad input.

use aws_lambda_events::event::kinesis::KinesisEvent;
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice_stream::kinesis_input::{InputRecord, KinesisBatch, KinesisInput, KinesisInputError};

const FIXTURES: &[&str] = &[
    include_str!("../../../aggregators/tests/data/kinesis-event.json"),
    include_str!("../../../sinks/tests/data/kinesis_batch.json"),
    include_str!("../../../schemas/tests/data/fixtures/kinesis_event.json"),
];

fn expected(event: KinesisEvent) -> Vec<InputRecord> {
    KinesisInput::from(event).records
}

/// Whenever serde accepts, the fast parser accepts with the same records; whenever the fast
/// parser accepts, the payload is valid JSON; it never panics. Returns whether it accepted.
fn check(payload: &[u8]) -> bool {
    let reference = serde_json::from_slice::<KinesisEvent>(payload);
    let fast = KinesisInput::from_slice(payload);
    // The borrowed, shared-buffer form accepts exactly the same payloads with the same records.
    let batch = KinesisBatch::parse(payload);
    assert_eq!(batch.as_ref().err(), fast.as_ref().err());
    // The streaming form too: same verdict, and it hands over every record once, in order,
    // before the batch is returned, with the same fields.
    let mut seen: Vec<(usize, InputRecord)> = Vec::new();
    let streamed = KinesisBatch::parse_with(payload, |i, r| seen.push((i, r.to_owned())));
    assert_eq!(streamed.as_ref().err(), fast.as_ref().err());
    assert!(seen.iter().enumerate().all(|(n, (i, _))| n == *i), "indexes in order");
    // Keeping only some records' data changes nothing else.
    let retained = KinesisBatch::parse_retaining(payload, |i, _| i % 2 == 0);
    assert_eq!(retained.as_ref().err(), fast.as_ref().err());
    if let (Ok(batch), Ok(streamed), Ok(retained)) = (&batch, &streamed, &retained) {
        let owned: Vec<InputRecord> = batch.iter().map(|r| r.to_owned()).collect();
        assert_eq!(seen.into_iter().map(|(_, r)| r).collect::<Vec<_>>(), owned);
        assert_eq!(streamed.iter().map(|r| r.to_owned()).collect::<Vec<_>>(), owned);
        let thinned: Vec<InputRecord> = owned
            .iter()
            .enumerate()
            .map(|(i, r)| InputRecord { data: if i % 2 == 0 { r.data.clone() } else { Vec::new() }, ..r.clone() })
            .collect();
        assert_eq!(retained.iter().map(|r| r.to_owned()).collect::<Vec<_>>(), thinned);
    }
    if let (Ok(batch), Ok(fast)) = (&batch, &fast) {
        assert_eq!(batch.len(), fast.len());
        let owned: Vec<InputRecord> = batch.iter().map(|r| r.to_owned()).collect();
        assert_eq!(owned, fast.records);
        for (i, r) in fast.records.iter().enumerate() {
            let view = batch.get(i).unwrap();
            assert_eq!((view.shard_id(), view.data), (r.shard_id(), r.data.as_slice()));
        }
        // Views of an owned input see the same records.
        let view: Vec<InputRecord> = KinesisBatch::from(fast).iter().map(|r| r.to_owned()).collect();
        assert_eq!(view, fast.records);
    }
    if let Ok(event) = reference {
        // A view of the standard event is the same records, nothing copied.
        let view: Vec<InputRecord> = KinesisBatch::from(&event).iter().map(|r| r.to_owned()).collect();
        assert_eq!(view, expected(event.clone()));
        let fast =
            fast.unwrap_or_else(|e| panic!("rejected what serde accepts: {e}\n{}", String::from_utf8_lossy(payload)));
        assert_eq!(fast.records, expected(event), "{}", String::from_utf8_lossy(payload));
        // The serde entry point (what lambda_runtime calls) is the same parser.
        let via_serde: KinesisInput = serde_json::from_slice(payload).unwrap();
        assert_eq!(via_serde, fast);
        true
    } else {
        // Lenient only about fields it does not read: the payload is still valid JSON (up to
        // invalid UTF-8 in strings it skips).
        if fast.is_ok() {
            assert!(
                serde_json::from_str::<Value>(&String::from_utf8_lossy(payload)).is_ok(),
                "accepted invalid JSON: {}",
                String::from_utf8_lossy(payload)
            );
        }
        fast.is_ok()
    }
}

#[test]
fn real_fixtures_agree_with_aws_lambda_events() {
    for f in FIXTURES {
        assert!(check(f.as_bytes()));
        let input = KinesisInput::from_slice(f.as_bytes()).unwrap();
        assert!(!input.is_empty());
        let event: KinesisEvent = serde_json::from_str(f).unwrap();
        assert_eq!(KinesisInput::from(event.clone()), input, "From<KinesisEvent> is the same");
        for (r, e) in input.records.iter().zip(&event.records) {
            assert_eq!(r.shard_id(), sluice_stream::shard_id_of(e));
        }
        // Compact and pretty forms too.
        let v: Value = serde_json::from_str(f).unwrap();
        assert!(check(&serde_json::to_vec(&v).unwrap()));
        assert!(check(&serde_json::to_vec_pretty(&v).unwrap()));
    }
}

#[test]
fn lambda_runtime_deserialization_path_works() {
    // lambda_runtime deserializes with serde_path_to_error over serde_json::from_slice.
    for f in FIXTURES {
        let jd = &mut serde_json::Deserializer::from_slice(f.as_bytes());
        let input: KinesisInput = serde_path_to_error::deserialize(jd).unwrap();
        assert_eq!(input, KinesisInput::from_slice(f.as_bytes()).unwrap());
    }
    // Deserializers that cannot lend their input give an error, not a panic.
    let v: Value = serde_json::from_str(FIXTURES[0]).unwrap();
    assert!(serde_json::from_value::<KinesisInput>(v).is_err());
    assert!(serde_json::from_reader::<_, KinesisInput>(FIXTURES[0].as_bytes()).is_err());
}

fn record_mutations(base: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let mut with = |f: &dyn Fn(&mut Value)| {
        let mut m = base.clone();
        f(&mut m);
        out.push(m);
    };
    for field in ["data", "sequenceNumber", "partitionKey", "approximateArrivalTimestamp", "kinesisSchemaVersion"] {
        with(&|m| {
            m["Records"][0]["kinesis"].as_object_mut().unwrap().remove(field);
        });
        for bad in [
            json!(null),
            json!(5),
            json!(""),
            json!("QR=="),
            json!("aGk"),
            json!("aGk=="),
            json!("a Gk="),
            json!("aGk=\n"),
            json!("aG\u{e9}="),
            json!({}),
            json!([]),
            json!("é"),
        ] {
            with(&move |m| m["Records"][0]["kinesis"][field] = bad.clone());
        }
    }
    for field in ["eventID", "kinesis", "eventSourceARN", "awsRegion"] {
        with(&|m| {
            m["Records"][0].as_object_mut().unwrap().remove(field);
        });
        for bad in [
            json!(null),
            json!(1),
            json!("shardId-1"),
            json!("x:1"),
            json!(":1"),
            json!("s:"),
            json!([1, {"a": [true, false, null, -1.5e3]}]),
        ] {
            with(&move |m| m["Records"][0][field] = bad.clone());
        }
    }
    with(&|m| m["Records"][0]["unknownField"] = json!({"nested": [1, 2.5, "x\"y", {"z": null}]}));
    with(&|m| m["Records"][0]["kinesis"]["unknownField"] = json!([[[[]]]]));
    with(&|m| m["unknownTop"] = json!("v"));
    with(&|m| m["Records"] = json!(null));
    with(&|m| m["Records"] = json!({}));
    with(&|m| m["Records"] = json!([]));
    with(&|m| m["Records"] = json!([1]));
    with(&|m| {
        m.as_object_mut().unwrap().remove("Records");
    });
    out
}

fn text_mutations(text: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut add = |s: String| out.push(s.into_bytes());
    // Escapes in kept and skipped strings, keys and base64.
    add(text.replacen("\"pk-0\"", "\"pk\\u002d0\\n\\\"\\\\\\/\\b\\f\\r\\t\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\\ud83d\\ude00\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\\ud83d\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\\ude00\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\\u12\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\\x\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\u{1}\"", 1));
    add(text.replacen("\"pk-0\"", "\"pk\u{7f}é\"", 1));
    add(text.replacen("\"partitionKey\"", "\"partition\\u004bey\"", 1));
    add(text.replacen("\"data\":\"eyJ", "\"data\":\"\\u0065yJ", 1));
    add(text.replacen("\"data\":\"eyJ", "\"data\":\"e\\/yJ", 1));
    add(text.replacen("\"data\":\"eyJ", "\"data\":\"\\\"eyJ", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"data\":\"aGk=\",", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"sequenceNumber\":\"1\",", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":01,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":1.,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":-,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":1e,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":1E+5,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":tru,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":[1,],", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{\"x\":{\"a\"},", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\":{,", 1));
    add(text.replacen("\"kinesis\":{", "\"kinesis\" {", 1));
    add(format!("{}{}", "[".repeat(200), "]".repeat(200)));
    add(text.replacen("\"kinesis\":{", &format!("\"kinesis\":{{\"deep\":{}{},", "[".repeat(130), "]".repeat(130)), 1));
    add(text.replacen("\"kinesis\":{", &format!("\"kinesis\":{{\"deep\":{}{},", "[".repeat(100), "]".repeat(100)), 1));
    add(text.replacen("\"Records\"", "\"Records\":[],\"Records\"", 1));
    add(format!("{text} x"));
    add(format!("{text}}}"));
    add(format!(" \n\t{text}\r\n"));
    add(text.replacen(',', ",,", 1));
    add(String::new());
    add("{".into());
    add("{\"Records\":[".into());
    add("{\"Records\":[{\"kinesis\":{\"data\":\"aGk=".into());
    add("{\"Records\":[{\"kinesis\":{\"data\":\"aGk=\"}".into());
    add("\"Records\"".into());
    add("null".into());
    out.push(vec![0xff, 0xfe, b'{']);
    let mut bad_utf8 = text.replacen("\"pk-0\"", "\"pk-\u{1}\"", 1).into_bytes();
    if let Some(p) = bad_utf8.iter().position(|&b| b == 1) {
        bad_utf8[p] = 0xff;
    }
    out.push(bad_utf8);
    out
}

#[test]
fn mutations_agree_with_aws_lambda_events() {
    let mut accepted = 0;
    let mut total = 0;
    for f in FIXTURES {
        let base: Value = serde_json::from_str(f).unwrap();
        for m in record_mutations(&base) {
            total += 1;
            accepted += usize::from(check(&serde_json::to_vec(&m).unwrap()));
        }
        let compact = serde_json::to_string(&base).unwrap();
        for m in text_mutations(&compact) {
            total += 1;
            accepted += usize::from(check(&m));
        }
    }
    assert!(total > 300, "{total}");
    assert!(accepted > 30 && accepted < total, "{accepted} of {total}");
}

#[test]
fn errors_are_clear() {
    let missing = KinesisInput::from_slice(br#"{"records":[]}"#).unwrap_err();
    assert_eq!(missing, KinesisInputError::MissingField { field: "Records", record: None });
    assert!(missing.to_string().contains("Records"), "{missing}");
    let no_data = KinesisInput::from_slice(br#"{"Records":[{"kinesis":{}},{"kinesis":{"x":1}}]}"#).unwrap_err();
    assert_eq!(no_data, KinesisInputError::MissingField { field: "data", record: Some(0) });
    let bad = KinesisInput::from_slice(br#"{"Records":[{"kinesis":{"data":"aGk="}},{"kinesis":{"data":"a!=="}}]}"#);
    assert_eq!(bad.unwrap_err(), KinesisInputError::BadBase64 { record: 1 });
    // parse_with has already handed over the records before the error (documented).
    let mut seen = Vec::new();
    let bad = KinesisBatch::parse_with(
        br#"{"Records":[{"kinesis":{"data":"aGk="}},{"kinesis":{"data":"a!=="}}]}"#,
        |i, r| seen.push((i, r.data.to_vec())),
    );
    assert_eq!(bad.unwrap_err(), KinesisInputError::BadBase64 { record: 1 });
    assert_eq!(seen, vec![(0, b"hi".to_vec())]);
    let e = KinesisInput::from_slice(b"{\"Records\":[}").unwrap_err();
    assert!(matches!(e, KinesisInputError::Malformed { offset: 12, .. }), "{e:?}");
    assert!(e.to_string().contains("byte 12"), "{e}");
}

#[test]
fn unknown_fields_and_nulls_are_tolerated() {
    let input = KinesisInput::from_slice(
        br#"{"Records":[{"eventID":null,"new":{"a":[1,{"b":"\u00e9"}]},"kinesis":{"data":"","new":false}}],"more":1}"#,
    )
    .unwrap();
    assert_eq!(input.records, vec![InputRecord::default()]);
}

/// The fields it reads (`eventID`, `sequenceNumber`, `partitionKey`) are checked for UTF-8 like
/// serde does, whatever the position of the offending byte (the scanner checks 8 bytes at a
/// time, then the tail); valid non-ASCII text is kept byte for byte.
#[test]
fn read_fields_are_checked_for_utf8_at_every_position() {
    let invalid: &[&[u8]] = &[b"\xff", b"\xc3", b"\xe2\x82", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"];
    for field in ["eventID", "sequenceNumber", "partitionKey"] {
        let template = |value: &[u8]| -> Vec<u8> {
            let mut out = b"{\"Records\":[{\"kinesis\":{\"data\":\"aGk=\",".to_vec();
            let (inner, outer) = if field == "eventID" { ("", field) } else { (field, "") };
            if !inner.is_empty() {
                out.extend(format!("\"{inner}\":\"").bytes());
                out.extend(value);
                out.extend(b"\",");
            }
            out.extend(b"\"k\":1}");
            if !outer.is_empty() {
                out.extend(format!(",\"{outer}\":\"").bytes());
                out.extend(value);
                out.extend(b"\"");
            }
            out.extend(b"}]}");
            out
        };
        for len in 0..20 {
            for at in 0..=len {
                for bad in invalid {
                    let mut value = vec![b'7'; len];
                    value.splice(at..at, bad.iter().copied());
                    let payload = template(&value);
                    assert!(serde_json::from_slice::<KinesisEvent>(&payload).is_err(), "serde rejects");
                    assert!(
                        KinesisBatch::parse(&payload).is_err(),
                        "{field}: accepted invalid UTF-8 {bad:?} at {at} of {len}"
                    );
                }
                let mut value = "7".repeat(len);
                value.insert_str(at, "é€😀");
                let input = KinesisInput::from_slice(&template(value.as_bytes())).unwrap();
                let r = &input.records[0];
                let got = match field {
                    "eventID" => &r.event_id,
                    "sequenceNumber" => &r.sequence_number,
                    _ => &r.partition_key,
                };
                assert_eq!(got, &value, "{field}");
            }
        }
    }
}

#[test]
fn shard_id_follows_shard_id_of() {
    let rec = |id: &str| InputRecord { event_id: id.to_owned(), ..InputRecord::default() };
    assert_eq!(rec("shardId-000000000003:4959").shard_id(), Some("shardId-000000000003"));
    assert_eq!(rec("a:b:12").shard_id(), Some("a:b"));
    for bad in ["", "shardId-1", ":1", "s:", "s:1x"] {
        assert_eq!(rec(bad).shard_id(), None, "{bad}");
    }
}

fn payload(records: &[(String, String, String, Vec<u8>)]) -> String {
    let recs: Vec<Value> = records
        .iter()
        .map(|(id, seq, pk, data)| {
            json!({
                "awsRegion": "us-east-1",
                "eventID": id,
                "eventName": "aws:kinesis:record",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
                "kinesis": {
                    "approximateArrivalTimestamp": 1_767_225_600.5,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                    "partitionKey": pk,
                    "sequenceNumber": seq,
                }
            })
        })
        .collect();
    serde_json::to_string(&json!({ "Records": recs })).unwrap()
}

proptest! {
    #[test]
    fn generated_payloads_agree(records in proptest::collection::vec(
        (".{0,12}", "[0-9]{0,60}", ".{0,20}", proptest::collection::vec(any::<u8>(), 0..300)), 0..8)) {
        let text = payload(&records);
        prop_assert!(check(text.as_bytes()));
    }

    #[test]
    fn truncations_and_byte_flips_never_panic(cut in 0usize..2000, flip in 0usize..2000, byte in any::<u8>()) {
        let text = FIXTURES[0].as_bytes();
        let _ = check(&text[..cut.min(text.len())]);
        let mut flipped = text.to_vec();
        let i = flip % flipped.len();
        flipped[i] = byte;
        let _ = check(&flipped);
    }
}

/// Numbers of skipped members, several the prefix of another.
const NUMBERS: &[&str] = &["15", "153", "15.3", "15e3", "1545084650", "1545084650.987", "15450846509"];

/// A record whose members are chosen by index (`outer`, `inner` for its `kinesis`), so that
/// records repeat each other's runs of skipped members (which the scanner replays by
/// comparison) and vary them slightly: numbers that are prefixes of one another, nested
/// values, tracked fields in between or missing, white space, reordering.
fn record_text(outer: &[usize], n: usize, ts: usize, inner: &[usize], kinesis_at: usize, spaced: bool) -> String {
    let sep = if spaced { ", " } else { "," };
    let kinesis_members = [
        format!(r#""approximateArrivalTimestamp":{}"#, NUMBERS[ts]),
        r#""data":"aGk=""#.to_owned(),
        r#""encryptionType":"NONE""#.to_owned(),
        r#""partitionKey":"pk-1""#.to_owned(),
        r#""sequenceNumber":"49590338271490256608559692530000000000000000000000000000""#.to_owned(),
        r#""kinesisSchemaVersion":"1.0""#.to_owned(),
        format!(r#""m":{}"#, NUMBERS[n]),
    ];
    let kinesis: Vec<&str> = inner.iter().filter_map(|&i| kinesis_members.get(i).map(String::as_str)).collect();
    let kinesis = format!(r#""kinesis":{{{}}}"#, kinesis.join(sep));
    let record_members = [
        r#""awsRegion":"us-east-1""#.to_owned(),
        r#""eventName":"aws:kinesis:record""#.to_owned(),
        format!(r#""n":{}"#, NUMBERS[n]),
        r#""eventID":"shardId-000000000000:7""#.to_owned(),
        r#""o":{"a":[1,{"b":"c"}]}"#.to_owned(),
        r#""t":true"#.to_owned(),
    ];
    let mut members: Vec<&str> = outer.iter().filter_map(|&i| record_members.get(i).map(String::as_str)).collect();
    members.insert(kinesis_at.min(members.len()), &kinesis);
    format!("{{{}}}", members.join(sep))
}

proptest! {
    #[test]
    fn repeated_and_varied_members_agree(records in proptest::collection::vec(
        (proptest::sample::subsequence((0..6).collect::<Vec<usize>>(), 0..=6).prop_shuffle(),
         0..NUMBERS.len(),
         0..NUMBERS.len(),
         proptest::sample::subsequence((0..7).collect::<Vec<usize>>(), 2..=7),
         0usize..7,
         any::<bool>()), 2..6)) {
        let recs: Vec<String> = records
            .iter()
            .map(|(outer, n, ts, inner, at, spaced)| record_text(outer, *n, *ts, inner, *at, *spaced))
            .collect();
        let text = format!(r#"{{"Records":[{}]}}"#, recs.join(","));
        check(text.as_bytes());
    }
}

#[test]
fn a_replayed_number_is_not_the_prefix_of_a_longer_one() {
    // The second record's skipped members start with the first's, but its number goes on.
    let text = format!(
        r#"{{"Records":[{},{}]}}"#,
        record_text(&[0, 2, 3], 0, 4, &[0, 1, 6], 1, false),
        record_text(&[0, 2, 3], 1, 6, &[0, 1, 6], 1, false),
    );
    assert!(text.contains(r#""n":15,"#) && text.contains(r#""n":153,"#), "{text}");
    assert!(check(text.as_bytes()), "{text}");
}
