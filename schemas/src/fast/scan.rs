//! The scanner of the stored record layout: exactly what `serde_json::to_vec(&Event)` writes,
//! compact, fields in declaration order, canonical timestamps, no escapes in strings:
//!
//! `{"event_id":"..","event_type":"..","schema_version":N,"occurred_at":"..","received_at":"..","producer":"..","data":{..}}`
//!
//! Anything else is refused (`None`) and the caller takes serde's general parser. Whatever it
//! accepts, serde_json would parse into the same values: strings are taken verbatim (no
//! escapes, no control characters), numbers are computed as serde_json computes them. The
//! view reads `data` with the [`Cursor`] primitives, at any depth its schema has
//! (`super::view`); [`parse_canonical`] reads scalar `data` only.
//!
//! It reads bytes: outside strings it accepts only ASCII (literals, digits), and every string
//! it hands out is valid UTF-8, checked once for the whole record before scanning
//! ([`Cursor::over_str`]) or, without that pass, only for strings holding a non-ASCII byte
//! ([`Cursor::over_bytes`]); keys and the event type are compared with registered names, which
//! are UTF-8, and timestamps are ASCII by their grammar. So an accepted record, and any span of
//! it the scanner read through ([`Cursor::span`]: a nested object or array), is valid UTF-8
//! either way.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sluice_bytescan::{Instant, Text, digit_run, parse_canonical_instant, short_eq, string_end};

use super::view::StoredValue;

/// Powers of ten exactly representable as f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A position in a stored record.
#[derive(Clone)]
pub(crate) struct Cursor<'b> {
    b: &'b [u8],
    /// The record as text, when its UTF-8 was checked before scanning (strings are then
    /// slices of it: `&str` for free).
    text: Option<&'b str>,
    pub(crate) i: usize,
}

impl<'b> Cursor<'b> {
    /// Over a record already checked to be UTF-8.
    #[inline]
    pub(crate) fn over_str(text: &'b str) -> Self {
        Cursor { b: text.as_bytes(), text: Some(text), i: 0 }
    }

    /// Over bytes not checked yet (strings are checked while scanning, where not ASCII).
    #[inline]
    pub(crate) fn over_bytes(b: &'b [u8]) -> Self {
        Cursor { b, text: None, i: 0 }
    }

    /// Whether the whole record was read.
    #[inline]
    pub(crate) fn at_end(&self) -> bool {
        self.i == self.b.len()
    }

    #[inline]
    pub(crate) fn lit(&mut self, expected: &[u8]) -> Option<()> {
        let rest = self.b.get(self.i..)?;
        short_eq(rest.get(..expected.len())?, expected).then(|| self.i += expected.len())
    }

    #[inline]
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        let hit = self.b.get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }

    /// A JSON string without escapes or control characters: the range of its contents and
    /// whether they are all ASCII (see [`string_end`]).
    #[inline(always)]
    fn raw_string(&mut self) -> Option<(usize, usize, bool)> {
        if self.b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let (len, ascii) = string_end(self.b.get(start..)?)?;
        let end = start + len;
        if self.b.get(end) != Some(&b'"') {
            return None;
        }
        self.i = end + 1;
        Some((start, end, ascii))
    }

    /// A string's raw bytes, not checked: only for comparing with known (UTF-8) names.
    #[inline(always)]
    pub(crate) fn name(&mut self) -> Option<&'b [u8]> {
        let (start, end, _) = self.raw_string()?;
        self.b.get(start..end)
    }

    /// A string as [`Text`] (valid UTF-8).
    #[inline(always)]
    pub(crate) fn text(&mut self) -> Option<Text<'b>> {
        let (start, end, ascii) = self.raw_string()?;
        match self.text {
            // `start` and `end` sit next to ASCII quotes, so they are char boundaries.
            Some(text) => text.get(start..end).map(Text::from),
            None => Text::checked(self.b.get(start..end)?, ascii),
        }
    }

    /// A canonical timestamp string (ASCII by its grammar, so no UTF-8 check).
    #[inline]
    pub(crate) fn instant(&mut self) -> Option<Instant> {
        let (start, end, _) = self.raw_string()?;
        parse_canonical_instant(self.b.get(start..end)?)
    }

    /// A decimal u32 as JSON writes it (no sign, no leading zero, no fraction).
    #[inline]
    pub(crate) fn u32(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..)?;
        let len = digit_run(digits);
        let digits = digits.get(..len)?;
        if len == 0 || len > 9 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        self.i += len;
        Some(digits.iter().fold(0u32, |a, &c| a * 10 + u32::from(c - b'0')))
    }

    /// A string, number, boolean or null as a [`StoredValue`] (objects, arrays: `None`).
    #[inline(always)]
    pub(crate) fn stored_value(&mut self) -> Option<StoredValue<'b>> {
        match *self.b.get(self.i)? {
            b'"' => self.text().map(StoredValue::String),
            b't' => self.lit(b"true").map(|()| StoredValue::Boolean(true)),
            b'f' => self.lit(b"false").map(|()| StoredValue::Boolean(false)),
            b'n' => self.lit(b"null").map(|()| StoredValue::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// The text read since `start` (a position this cursor passed): valid UTF-8 when it holds
    /// only what the scanner accepted (see the module docs).
    #[inline]
    pub(crate) fn span(&self, start: usize) -> Option<Text<'b>> {
        let len = self.i.checked_sub(start)?;
        match self.text {
            // Spans start and end next to ASCII delimiters, so at char boundaries. (Sliced in
            // two steps: the one-step slice of `text()` stays inlined there.)
            Some(text) => text.get(start..)?.get(..len).map(Text::from),
            None => self.b.get(start..self.i).map(Text::from_valid),
        }
    }

    /// A JSON number (RFC 8259 grammar, checked here: Rust's float parser is more lenient).
    /// Integer literals of up to 18 digits are `Integer` (as serde_json: `u64`/`i64`), `-0` and
    /// literals with a fraction or exponent are `Number` (serde_json: `f64`, correctly rounded
    /// under `float_roundtrip`, as computed here). Longer integers: `None`.
    pub(crate) fn number(&mut self) -> Option<StoredValue<'b>> {
        let b = self.b;
        let start = self.i;
        let negative = b.get(start) == Some(&b'-');
        let int_start = start + usize::from(negative);
        let int_digits = match b.get(int_start)? {
            b'0' => 1,
            b'1'..=b'9' => digit_run(b.get(int_start..)?),
            _ => return None,
        };
        let mut i = int_start + int_digits;
        let mut frac_digits = 0;
        if b.get(i) == Some(&b'.') {
            frac_digits = digit_run(b.get(i + 1..)?);
            if frac_digits == 0 {
                return None;
            }
            i += 1 + frac_digits;
        }
        let exponent = matches!(b.get(i), Some(b'e' | b'E'));
        if exponent {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let n = digit_run(b.get(i..)?);
            if n == 0 {
                return None;
            }
            i += n;
        }
        self.i = i;
        // `-0` is the one integer literal serde_json holds as an f64 (-0.0).
        let minus_zero = negative && b.get(int_start) == Some(&b'0') && int_digits == 1;
        if frac_digits == 0 && !exponent && !minus_zero {
            if int_digits > 18 {
                return None; // a long integer: serde_json's u64/f64 choice is not worth copying
            }
            let digits = b.get(int_start..int_start + int_digits)?;
            let magnitude = digits.iter().fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
            return Some(StoredValue::Integer(if negative { -magnitude } else { magnitude }));
        }
        if !exponent && int_digits + frac_digits <= 19 {
            let digit = |acc: u64, &d: &u8| acc * 10 + u64::from(d.wrapping_sub(b'0'));
            let int = b.get(int_start..int_start + int_digits)?.iter().fold(0u64, digit);
            let n = b.get(i - frac_digits..i)?.iter().fold(int, digit);
            // Clinger's fast path: the significand and the power of ten are exact doubles, so
            // one IEEE division is the correctly rounded value, which is what serde_json
            // computes too (with or without `float_roundtrip`).
            if n <= 1 << 53
                && let Some(&p) = POW10.get(frac_digits)
            {
                let x = n as f64 / p;
                return Some(StoredValue::Number(if negative { -x } else { x }));
            }
        }
        // The grammar is checked and ASCII; Rust's parser rounds correctly, as serde_json does.
        let f: f64 = std::str::from_utf8(b.get(start..i)?).ok()?.parse().ok()?;
        f.is_finite().then_some(StoredValue::Number(f))
    }

    /// A string, number, boolean or null (objects and arrays: `None`).
    fn scalar(&mut self) -> Option<Value> {
        match *self.b.get(self.i)? {
            b'"' => self.text().map(|s| Value::String(s.as_str().to_owned())),
            b't' => self.lit(b"true").map(|()| Value::Bool(true)),
            b'f' => self.lit(b"false").map(|()| Value::Bool(false)),
            b'n' => self.lit(b"null").map(|()| Value::Null),
            b'-' | b'0'..=b'9' => {
                let rest = self.b.get(self.i..)?;
                let len =
                    rest.iter().take_while(|b| matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')).count();
                let number = rest.get(..len)?;
                self.i += len;
                // serde_json's own number parser (same rounding, same integer/float choice).
                match serde_json::from_slice::<Value>(number).ok()? {
                    n @ Value::Number(_) => Some(n),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// The fields of a stored record, as parsed by [`parse_canonical`].
pub(crate) struct CanonicalRecord {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) schema_version: u32,
    pub(crate) occurred_at: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) producer: String,
    pub(crate) data: Value,
}

/// Parses a record in the stored layout (see the module docs) into owned values, any scalar
/// `data` (what `Registry::decode_stored` validates next). `None` for anything else. Numbers
/// are parsed by serde_json itself, duplicate `data` keys keep the last value as serde_json's
/// map does.
pub(crate) fn parse_canonical(text: &str) -> Option<CanonicalRecord> {
    let mut p = Cursor::over_str(text);
    p.lit(b"{\"event_id\":")?;
    let event_id = p.text()?;
    p.lit(b",\"event_type\":")?;
    let event_type = p.text()?;
    p.lit(b",\"schema_version\":")?;
    let schema_version = p.u32()?;
    p.lit(b",\"occurred_at\":")?;
    let occurred_at = p.instant()?.to_datetime()?;
    p.lit(b",\"received_at\":")?;
    let received_at = p.instant()?.to_datetime()?;
    p.lit(b",\"producer\":")?;
    let producer = p.text()?;
    p.lit(b",\"data\":{")?;
    let mut data = Map::new();
    if !p.eat(b'}') {
        loop {
            let key = p.text()?;
            p.lit(b":")?;
            let value = p.scalar()?;
            data.insert(key.as_str().to_owned(), value);
            if p.eat(b',') {
                continue;
            }
            p.lit(b"}")?;
            break;
        }
    }
    p.lit(b"}")?;
    if !p.at_end() {
        return None;
    }
    Some(CanonicalRecord {
        event_id: event_id.as_str().to_owned(),
        event_type: event_type.as_str().to_owned(),
        schema_version,
        occurred_at,
        received_at,
        producer: producer.as_str().to_owned(),
        data: Value::Object(data),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_records() {
        let head = r#"{"event_id":"e","event_type":"t","schema_version":2,"occurred_at":"2024-05-01T12:00:00Z","received_at":"2024-05-01T12:00:00.5Z","producer":"p","data":"#;
        let parse = |data: &str| parse_canonical(&format!("{head}{data}}}"));
        let r =
            parse(r#"{"a":"x","b":-0.0,"c":12.5,"d":true,"e":null,"f":-0,"a":"y","g":18446744073709551615}"#).unwrap();
        assert_eq!(
            (r.event_id.as_str(), r.event_type.as_str(), r.schema_version, r.producer.as_str()),
            ("e", "t", 2, "p")
        );
        assert_eq!(r.received_at.timestamp_subsec_millis(), 500);
        let expected: Value = serde_json::from_str(
            r#"{"a":"x","b":-0.0,"c":12.5,"d":true,"e":null,"f":-0,"a":"y","g":18446744073709551615}"#,
        )
        .unwrap();
        assert_eq!(r.data, expected);
        assert_eq!(r.data["a"], "y", "the last duplicate wins, as in serde_json");
        assert_eq!(parse("{}").unwrap().data, serde_json::json!({}));
        for bad in [
            r#"{"a":"x\"y"}"#,
            r#"{"a":"\u0041"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":[1]}"#,
            r#"{"a":{}}"#,
            r#"{"a":1,}"#,
            r#"{"a" :1}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":tru}"#,
            r#"{"a":1}  "#,
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
        let text = format!("{head}{{}}}}");
        for (from, to) in [
            ("\"schema_version\":2", "\"schema_version\":02"),
            ("\"schema_version\":2", "\"schema_version\":4294967296"),
            ("\"schema_version\":2", "\"schema_version\":-2"),
            ("12:00:00Z", "12:00:00+00:00"),
            ("\"e\"", "\"e\\u0000\""),
            (",", ", "),
        ] {
            assert!(parse_canonical(&text.replacen(from, to, 1)).is_none(), "{to}");
        }
        assert!(parse_canonical(&format!("{text} ")).is_none());
        assert!(parse_canonical(&text).is_some());
    }

    proptest::proptest! {
        #[test]
        fn fast_floats_agree_with_serde_json(int in "-?(0|[1-9][0-9]{0,17})", frac in "[0-9]{1,20}") {
            let text = format!("{int}.{frac}");
            let mut p = Cursor::over_bytes(text.as_bytes());
            let fast = match p.number() {
                Some(StoredValue::Number(x)) => x,
                _ => panic!("{text}"),
            };
            let serde: f64 = serde_json::from_str(&text).unwrap();
            proptest::prop_assert_eq!(fast.to_bits(), serde.to_bits(), "{}", text);
            proptest::prop_assert_eq!(p.i, text.len());
        }
    }
}
