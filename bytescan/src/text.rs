//! UTF-8 text.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// `bytes` as UTF-8 text, validated with SIMD (a whole stored record at once: several times
/// faster than `std::str::from_utf8` on the records' mostly-ASCII JSON).
#[inline]
pub fn utf8(bytes: &[u8]) -> Option<&str> {
    simdutf8::basic::from_utf8(bytes).ok()
}

/// Text known to be valid UTF-8, kept as it was found: a `&str` (handed out for free) or bytes
/// whose UTF-8 a scanner checked while scanning (at no cost for ASCII), which are compared,
/// hashed and fingerprinted as bytes and never checked again; only [`Text::as_str`] of those
/// checks, as safe code must. Equality, order and hashing are those of the text.
#[derive(Clone, Copy)]
pub struct Text<'b>(Repr<'b>);

#[derive(Clone, Copy)]
enum Repr<'b> {
    Str(&'b str),
    Bytes(&'b [u8]),
}

impl<'b> Text<'b> {
    /// `bytes` if they are UTF-8. `ascii`: the caller knows they are all ASCII (then unchecked).
    #[inline]
    pub fn checked(bytes: &'b [u8], ascii: bool) -> Option<Self> {
        if !ascii {
            std::str::from_utf8(bytes).ok()?;
        }
        Some(Text(Repr::Bytes(bytes)))
    }

    /// `bytes` that the caller has already checked to be UTF-8. Never unsound if they are not
    /// ([`Text::as_str`] checks again and reads invalid bytes as `""`), only wrong.
    #[inline]
    pub fn from_valid(bytes: &'b [u8]) -> Self {
        Text(Repr::Bytes(bytes))
    }

    /// The UTF-8 bytes.
    #[inline]
    pub fn as_bytes(self) -> &'b [u8] {
        match self.0 {
            Repr::Str(s) => s.as_bytes(),
            Repr::Bytes(b) => b,
        }
    }

    /// As a `&str`: free for text made from a `&str`; bytes are checked again (valid by
    /// construction, so this is never the empty fallback).
    #[inline]
    pub fn as_str(self) -> &'b str {
        match self.0 {
            Repr::Str(s) => s,
            Repr::Bytes(b) => std::str::from_utf8(b).unwrap_or_default(),
        }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(self) -> usize {
        self.as_bytes().len()
    }

    /// Whether it is the empty string.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.as_bytes().is_empty()
    }

    /// Number of characters (the bytes that do not continue a UTF-8 sequence).
    #[inline]
    pub fn chars(self) -> usize {
        self.as_bytes().iter().filter(|&&b| (b as i8) >= -0x40).count()
    }
}

impl<'b> From<&'b str> for Text<'b> {
    #[inline]
    fn from(s: &'b str) -> Self {
        Text(Repr::Str(s))
    }
}

impl Default for Text<'_> {
    fn default() -> Self {
        Text(Repr::Str(""))
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text<'_> {}

impl PartialOrd for Text<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Text<'_> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl Hash for Text<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// `Text` counts characters, compares and checks exactly as `str` does.
        #[test]
        fn text_agrees_with_str(s in "\\PC{0,12}", bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12)) {
            let text = Text::from(s.as_str());
            proptest::prop_assert_eq!(text.chars(), s.chars().count());
            proptest::prop_assert_eq!(text.as_str(), s.as_str());
            proptest::prop_assert_eq!(text.len(), s.len());
            let checked = Text::checked(&bytes, false);
            proptest::prop_assert_eq!(checked.is_some(), std::str::from_utf8(&bytes).is_ok());
            proptest::prop_assert_eq!(utf8(&bytes).is_some(), std::str::from_utf8(&bytes).is_ok());
            if let Some(t) = checked {
                proptest::prop_assert_eq!(t.as_bytes(), &bytes[..]);
                proptest::prop_assert_eq!(t, Text::from(std::str::from_utf8(&bytes).unwrap()));
                proptest::prop_assert_eq!(t.as_str().as_bytes(), &bytes[..]);
            }
        }
    }
}
