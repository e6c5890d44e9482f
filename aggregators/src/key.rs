//! Aggregate keys: (event type, window size, window start, dimension values in schema order).

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

/// A dimension value as the decoder extracts it: borrowed from the stored record
/// ([`DimRef::Str`], UTF-8 checked while the view scanned it, so never checked again) or owned
/// (the reference path's values, from a decoded `Event`). Equality and hashing are those of the
/// value: `Str` and `OwnedStr` of the same text are equal and hash alike.
#[derive(Debug, Clone)]
pub enum DimRef<'a> {
    Int(i64),
    Str(Text<'a>),
    OwnedStr(String),
}

impl DimRef<'_> {
    /// The owned value.
    pub fn to_owned_value(&self) -> DimValue {
        match self {
            DimRef::Int(i) => DimValue::Int(*i),
            DimRef::Str(s) => DimValue::Str(s.as_str().to_owned()),
            DimRef::OwnedStr(s) => DimValue::Str(s.clone()),
        }
    }

    /// A string value's UTF-8 bytes.
    #[inline]
    fn text(&self) -> Option<&[u8]> {
        match self {
            DimRef::Int(_) => None,
            DimRef::Str(s) => Some(s.as_bytes()),
            DimRef::OwnedStr(s) => Some(s.as_bytes()),
        }
    }

    /// Whether it equals `v`.
    pub fn matches(&self, v: &DimValue) -> bool {
        match (self, v) {
            (DimRef::Int(a), DimValue::Int(b)) => a == b,
            (DimRef::Int(_), _) => false,
            (text, DimValue::Str(b)) => text.text().is_some_and(|a| short_eq(a, b.as_bytes())),
            _ => false,
        }
    }

    pub(crate) fn hash_into(&self, h: &mut impl Hasher) {
        match (self, self.text()) {
            (DimRef::Int(i), _) => {
                0u8.hash(h);
                i.hash(h);
            }
            (_, text) => {
                1u8.hash(h);
                text.unwrap_or_default().hash(h);
            }
        }
    }
}

impl PartialEq for DimRef<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (DimRef::Int(a), DimRef::Int(b)) => a == b,
            _ => self.text().is_some_and(|a| other.text() == Some(a)),
        }
    }
}

impl Eq for DimRef<'_> {}

impl<'a> From<&'a str> for DimRef<'a> {
    fn from(s: &'a str) -> Self {
        DimRef::Str(Text::from(s))
    }
}

impl From<String> for DimRef<'static> {
    fn from(s: String) -> Self {
        DimRef::OwnedStr(s)
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

    #[test]
    fn borrowed_and_owned_text_are_one_value() {
        use std::hash::DefaultHasher;
        let hash = |d: &DimRef<'_>| {
            let mut h = DefaultHasher::new();
            d.hash_into(&mut h);
            h.finish()
        };
        let (borrowed, owned) = (DimRef::Str(Text::from_valid(b"web")), DimRef::from("web".to_owned()));
        assert_eq!(borrowed, owned);
        assert_eq!(hash(&borrowed), hash(&owned));
        assert!(borrowed.matches(&DimValue::Str("web".into())) && owned.matches(&DimValue::Str("web".into())));
        assert_ne!(borrowed, DimRef::from("app"));
        assert_ne!(DimRef::Int(1), DimRef::from("1"));
        assert!(!DimRef::from("1").matches(&DimValue::Int(1)));
        assert_eq!(owned.to_owned_value(), borrowed.to_owned_value());
    }

    #[test]
    fn dims_text_roundtrip() {
        let dims = vec![DimValue::Str("a\"|b".into()), DimValue::Int(-3)];
        assert_eq!(dims_text(&dims), r#"["a\"|b",-3]"#);
        assert_eq!(parse_dims_text(&dims_text(&dims)), Some(dims));
        assert_eq!(parse_dims_text("{"), None);
    }
}
