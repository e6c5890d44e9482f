//! Aggregate keys: (event type, window size, window start, dimension values in schema order).

use std::borrow::Cow;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use sluice_bytescan::{Text, short_eq};

use crate::window::WindowSize;

/// A dimension value (dimensions are string or integer fields).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DimValue {
    Int(i64),
    Str(String),
}

/// A borrowed dimension value, as the decoder extracts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimRef<'a> {
    Int(i64),
    Str(Utf8<'a>),
}

impl DimRef<'_> {
    /// The owned value.
    pub fn to_owned_value(&self) -> DimValue {
        match self {
            DimRef::Int(i) => DimValue::Int(*i),
            DimRef::Str(s) => DimValue::Str(s.as_str().to_owned()),
        }
    }

    /// Whether it equals `v`.
    pub fn matches(&self, v: &DimValue) -> bool {
        match (self, v) {
            (DimRef::Int(a), DimValue::Int(b)) => a == b,
            (DimRef::Str(a), DimValue::Str(b)) => short_eq(a.as_bytes(), b.as_bytes()),
            _ => false,
        }
    }

    pub(crate) fn hash_into(&self, h: &mut impl Hasher) {
        match self {
            DimRef::Int(i) => {
                0u8.hash(h);
                i.hash(h);
            }
            DimRef::Str(s) => {
                1u8.hash(h);
                s.as_bytes().hash(h);
            }
        }
    }
}

/// Text kept as its UTF-8 bytes, borrowed (from a stored record's [`Text`]) or owned (from a
/// decoded `Event`). Whoever makes one has checked the UTF-8 (the view decoder does while it
/// scans, at no cost for ASCII), so comparing, hashing and fingerprinting never check
/// again; only [`Utf8::as_str`] does, for the callers that need a `&str`.
#[derive(Clone, PartialEq, Eq)]
pub struct Utf8<'a>(Cow<'a, [u8]>);

impl<'a> Utf8<'a> {
    /// The UTF-8 bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// As a `&str` (checks again, as safe code must; valid by construction, so this is never
    /// the empty fallback).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Number of characters (the bytes that do not continue a UTF-8 sequence).
    pub fn chars(&self) -> usize {
        self.0.iter().filter(|&&b| (b as i8) >= -0x40).count()
    }
}

impl<'a> From<Text<'a>> for Utf8<'a> {
    #[inline]
    fn from(t: Text<'a>) -> Self {
        Utf8(Cow::Borrowed(t.as_bytes()))
    }
}

impl<'a> From<&'a str> for Utf8<'a> {
    fn from(s: &'a str) -> Self {
        Utf8(Cow::Borrowed(s.as_bytes()))
    }
}

impl From<String> for Utf8<'static> {
    fn from(s: String) -> Self {
        Utf8(Cow::Owned(s.into_bytes()))
    }
}

impl std::fmt::Debug for Utf8<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The key of one aggregate (without the shard).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggKey {
    pub event_type: String,
    pub window: WindowSize,
    /// Window start, Unix seconds.
    pub window_start: i64,
    /// Values of the schema's dimensions, in declared order.
    pub dims: Vec<DimValue>,
}

impl AggKey {
    /// The dimension values as compact JSON (`["web","US"]`): the stored form, unambiguous.
    pub fn dims_text(&self) -> String {
        dims_text(&self.dims)
    }
}

/// `dims` as compact JSON.
pub fn dims_text(dims: &[DimValue]) -> String {
    serde_json::to_string(dims).unwrap_or_else(|_| "[]".to_owned())
}

/// Parses [`dims_text`] output.
pub fn parse_dims_text(text: &str) -> Option<Vec<DimValue>> {
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `Utf8` counts characters, compares and checks exactly as `str` does.
        #[test]
        fn utf8_agrees_with_str(s in "\\PC{0,12}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)) {
            let text = Utf8::from(s.as_str());
            proptest::prop_assert_eq!(text.chars(), s.chars().count());
            proptest::prop_assert_eq!(text.as_str(), s.as_str());
            proptest::prop_assert_eq!(text.len(), s.len());
            if let Some(t) = Text::checked(&bytes, false) {
                let t = Utf8::from(t);
                proptest::prop_assert_eq!(t.as_bytes(), &bytes[..]);
            }
        }
    }

    #[test]
    fn dims_text_roundtrip() {
        let dims = vec![DimValue::Str("a\"|b".into()), DimValue::Int(-3)];
        assert_eq!(dims_text(&dims), r#"["a\"|b",-3]"#);
        assert_eq!(parse_dims_text(&dims_text(&dims)), Some(dims));
        assert_eq!(parse_dims_text("{"), None);
    }
}
