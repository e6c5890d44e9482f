//! The stream sequence number: one type for the local stream, real Kinesis records, the
//! runner's checkpoints and the handlers' exactly-once guards (pure, no I/O).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Decimal digits held by the low half ([`SequenceNumber`] is `hi · 10^38 + lo`).
const LO_DIGITS: usize = 38;
/// `10^38`: the low half's modulus.
const LO_MOD: u128 = 10u128.pow(LO_DIGITS as u32);
/// `10^19`: the chunk of a half rendered as one `u64` (19 digits).
const CHUNK_MOD: u128 = 10u128.pow(19);
/// 49 · 10^16: the high half of the local base `49 · 10^54` (its low half is zero).
const LOCAL_BASE_HI: u128 = 49 * 10u128.pow(16);

/// A Kinesis-style sequence number: an unsigned decimal integer of at most
/// [`SequenceNumber::PADDED_WIDTH`] (76) significant digits, ordered numerically.
///
/// Real Kinesis sequence numbers are 56 decimal digits (more than a `u128` holds), so the value
/// is kept as two `u128` halves in base 10^38: the same type carries local sequence numbers, the
/// ones in real Kinesis events (handlers compare them in their exactly-once guards) and the small
/// ones a Kinesis emulator may return. The local stream's numbers are built by
/// [`SequenceNumber::from_local`] and always render as exactly 56 digits, `49` followed by the
/// local counter zero-padded to 54 digits (`format!("49{:054}", n)`).
///
/// Text forms:
/// - `Display` prints the canonical decimal form (no leading zeros) and `FromStr` parses it back:
///   `s.parse::<SequenceNumber>()?.to_string() == s` for every canonical `s`. Parsing accepts
///   leading zeros ([`SequenceNumber::from_ascii`] is the allocation-free parser).
/// - [`SequenceNumber::padded`] is the storage form: exactly [`SequenceNumber::PADDED_WIDTH`]
///   digits, zero-padded, so string order equals numeric order (the aggregate stores' keys).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SequenceNumber {
    /// The digits above the low 38 (`< 10^38`). Declared first, so the derived `Ord` is numeric.
    hi: u128,
    /// The low 38 digits (`< 10^38`).
    lo: u128,
}

/// Why a string is not a sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceNumberError {
    /// The string is empty.
    #[error("sequence number is empty")]
    Empty,
    /// The string has a character that is not an ASCII decimal digit.
    #[error("sequence number {0:?} is not a decimal integer")]
    NotDecimal(String),
    /// The number has more than [`SequenceNumber::PADDED_WIDTH`] significant digits.
    #[error("sequence number {0:?} is too large (more than 76 digits)")]
    TooLarge(String),
}

impl SequenceNumber {
    /// Zero, the number before every real sequence number.
    pub const ZERO: SequenceNumber = SequenceNumber { hi: 0, lo: 0 };
    /// The largest sequence number, `10^76 - 1` (76 nines): no parsed number is larger.
    pub const MAX: SequenceNumber = SequenceNumber { hi: LO_MOD - 1, lo: LO_MOD - 1 };
    /// Width of [`SequenceNumber::padded`], and the most significant digits a sequence number has.
    pub const PADDED_WIDTH: usize = 2 * LO_DIGITS;

    /// The number whose value is `n` (e.g. the small numbers a Kinesis emulator returns).
    pub const fn from_u128(n: u128) -> Self {
        SequenceNumber { hi: n / LO_MOD, lo: n % LO_MOD }
    }

    /// The local stream's sequence number for counter `n`: `49·10^54 + n`, which renders as
    /// exactly 56 digits, `format!("49{:054}", n)`. Strictly increasing in `n`.
    pub const fn from_local(n: u128) -> Self {
        SequenceNumber { hi: LOCAL_BASE_HI + n / LO_MOD, lo: n % LO_MOD }
    }

    /// The local counter of a number built by [`SequenceNumber::from_local`]; `None` if the number
    /// is below the local base or the counter does not fit in a `u128`.
    pub fn local_counter(&self) -> Option<u128> {
        self.hi.checked_sub(LOCAL_BASE_HI)?.checked_mul(LO_MOD)?.checked_add(self.lo)
    }

    /// The value as a `u128`, if it fits.
    pub fn to_u128(&self) -> Option<u128> {
        self.hi.checked_mul(LO_MOD)?.checked_add(self.lo)
    }

    /// Parses ASCII decimal digits (a record's `sequenceNumber` as bytes, unchecked for UTF-8:
    /// digits are ASCII), with the rule of [`FromStr`]. Allocates only to describe an error.
    ///
    /// The fast path takes 1 to [`SequenceNumber::PADDED_WIDTH`] digits: 16-digit groups from
    /// the right, 8 digits at a time (SWAR), combined once into the two halves, reading the
    /// input in place (a copy into a padded buffer costs more than the parse: its 8-byte reads
    /// straddle the copy's stores). Longer inputs are accepted when the excess is leading zeros.
    #[inline]
    pub fn from_ascii(digits: &[u8]) -> Result<Self, SequenceNumberError> {
        match parse_ascii(digits) {
            Some(n) => Ok(n),
            None => parse_slow(digits),
        }
    }

    /// 32 bytes whose byte order is the numeric order (the two halves, big-endian): a compact
    /// sort key.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(&self.hi.to_be_bytes());
        out[16..].copy_from_slice(&self.lo.to_be_bytes());
        out
    }

    /// The storage form: exactly [`SequenceNumber::PADDED_WIDTH`] digits, zero-padded, so string
    /// order equals numeric order. Parses back with [`FromStr`] / [`SequenceNumber::from_ascii`].
    pub fn padded(&self) -> String {
        self.padded_ascii().iter().map(|&b| char::from(b)).collect()
    }

    /// [`SequenceNumber::padded`] as bytes, without allocating.
    pub fn padded_ascii(&self) -> [u8; SequenceNumber::PADDED_WIDTH] {
        let mut out = [b'0'; SequenceNumber::PADDED_WIDTH];
        let chunks = [self.hi / CHUNK_MOD, self.hi % CHUNK_MOD, self.lo / CHUNK_MOD, self.lo % CHUNK_MOD];
        for (chunk, dst) in chunks.into_iter().zip(out.chunks_exact_mut(19)) {
            let mut v = chunk as u64;
            for d in dst.iter_mut().rev() {
                *d = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        out
    }
}

/// 1 to [`SequenceNumber::PADDED_WIDTH`] ASCII decimal digits, `None` otherwise.
#[inline]
fn parse_ascii(s: &[u8]) -> Option<SequenceNumber> {
    if s.is_empty() || s.len() > SequenceNumber::PADDED_WIDTH {
        return None;
    }
    let (h, l) = s.split_at(s.len().saturating_sub(LO_DIGITS));
    Some(SequenceNumber { hi: parse_upto38(h)?, lo: parse_upto38(l)? })
}

/// What [`parse_ascii`] does not take: leading zeros past the width, or the error.
#[cold]
#[inline(never)]
fn parse_slow(s: &[u8]) -> Result<SequenceNumber, SequenceNumberError> {
    let text = || String::from_utf8_lossy(&s[..s.len().min(100)]).into_owned();
    if s.is_empty() {
        return Err(SequenceNumberError::Empty);
    }
    if !s.iter().all(u8::is_ascii_digit) {
        return Err(SequenceNumberError::NotDecimal(text()));
    }
    let significant = &s[s.iter().position(|&b| b != b'0').unwrap_or(s.len())..];
    if significant.is_empty() {
        return Ok(SequenceNumber::ZERO);
    }
    parse_ascii(significant).ok_or_else(|| SequenceNumberError::TooLarge(text()))
}

/// At most 38 ASCII digits as a u128 (0 when empty), `None` if any byte is not a digit.
#[inline(always)]
fn parse_upto38(d: &[u8]) -> Option<u128> {
    let (rest, g0) = d.split_at(d.len().saturating_sub(16));
    let (rest, g1) = rest.split_at(rest.len().saturating_sub(16));
    let (a, b, c) = (parse_upto16(rest)?, parse_upto16(g1)?, parse_upto16(g0)?);
    Some(u128::from(a) * 10u128.pow(32) + u128::from(b) * 10u128.pow(16) + u128::from(c))
}

/// At most 16 ASCII digits as a u64 (0 when empty).
#[inline(always)]
fn parse_upto16(d: &[u8]) -> Option<u64> {
    let scalar =
        |head: &[u8]| head.iter().try_fold(0u64, |acc, &b| b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0')));
    if d.len() < 8 {
        return scalar(d);
    }
    let (head, tail) = d.split_at(d.len() - 8);
    let high = match <[u8; 8]>::try_from(head) {
        Ok(w) => parse8(w)?,
        Err(_) => scalar(head)?,
    };
    Some(high * 100_000_000 + parse8(tail.try_into().ok()?)?)
}

/// Eight ASCII digits (most significant first) as a number, or `None` if any is not a digit
/// (SWAR: all eight at once).
#[inline(always)]
fn parse8(c: [u8; 8]) -> Option<u64> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    let v = u64::from_le_bytes(c);
    let d = v.wrapping_sub(ZEROS);
    // Every byte in '0'..='9': high nibble 3 and (low nibble + 6) < 16.
    if v & 0xF0F0_F0F0_F0F0_F0F0 != ZEROS || d.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0 != 0 {
        return None;
    }
    let d = (d.wrapping_mul(10) + (d >> 8)) & 0x00FF_00FF_00FF_00FF;
    let d = (d.wrapping_mul(100) + (d >> 16)) & 0x0000_FFFF_0000_FFFF;
    Some((d.wrapping_mul(10_000) + (d >> 32)) & 0xFFFF_FFFF)
}

impl From<u128> for SequenceNumber {
    fn from(n: u128) -> Self {
        SequenceNumber::from_u128(n)
    }
}

impl FromStr for SequenceNumber {
    type Err = SequenceNumberError;

    /// Parses a decimal integer: one or more ASCII digits, leading zeros allowed, at most
    /// [`SequenceNumber::PADDED_WIDTH`] significant digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SequenceNumber::from_ascii(s.as_bytes())
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let padded = self.padded_ascii();
        let start = padded.iter().position(|&b| b != b'0').unwrap_or(padded.len() - 1);
        // Only ASCII digits were written.
        f.pad(std::str::from_utf8(&padded[start..]).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SequenceNumber({self})")
    }
}

impl Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn local_numbers_render_as_56_digits() {
        assert_eq!(SequenceNumber::from_local(0).to_string(), format!("49{:054}", 0));
        assert_eq!(
            SequenceNumber::from_local(7).to_string(),
            "49000000000000000000000000000000000000000000000000000007"
        );
        assert_eq!(SequenceNumber::from_local(u128::MAX).to_string(), format!("49{:054}", u128::MAX));
    }

    #[test]
    fn real_kinesis_numbers_parse_and_compare() {
        let a: SequenceNumber = "49568167373333333333333333333333333333333333333333333333".parse().unwrap();
        let b: SequenceNumber = "49568167373333333334444444444444444444444444444444444444".parse().unwrap();
        assert!(a < b);
        assert_eq!(a.to_string(), "49568167373333333333333333333333333333333333333333333333");
        // Above the local base, but the counter would not fit in a u128.
        assert_eq!(a.local_counter(), None);
        assert_eq!(a.to_u128(), None);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!("".parse::<SequenceNumber>(), Err(SequenceNumberError::Empty));
        assert!(matches!("12a".parse::<SequenceNumber>(), Err(SequenceNumberError::NotDecimal(_))));
        assert!(matches!("-1".parse::<SequenceNumber>(), Err(SequenceNumberError::NotDecimal(_))));
        assert!(matches!("9".repeat(79).parse::<SequenceNumber>(), Err(SequenceNumberError::TooLarge(_))));
        // 10^76 - 1 fits, 10^76 does not.
        let max = "9".repeat(76);
        assert_eq!(max.parse::<SequenceNumber>().unwrap().to_string(), max);
        assert_eq!(max.parse::<SequenceNumber>().unwrap(), SequenceNumber::MAX);
        let over = format!("1{}", "0".repeat(76));
        assert!(matches!(over.parse::<SequenceNumber>(), Err(SequenceNumberError::TooLarge(_))));
        assert_eq!("0".parse::<SequenceNumber>().unwrap(), SequenceNumber::ZERO);
        assert_eq!("007".parse::<SequenceNumber>().unwrap().to_string(), "7");
        // Leading zeros past the width are still only zeros.
        assert_eq!(format!("{}7", "0".repeat(100)).parse::<SequenceNumber>().unwrap().to_string(), "7");
        assert_eq!("0".repeat(100).parse::<SequenceNumber>().unwrap(), SequenceNumber::ZERO);
    }

    #[test]
    fn kinesis_sized_numbers() {
        let s = "49590338271490256608559692538361571095921575989136588898";
        let n: SequenceNumber = s.parse().unwrap();
        assert_eq!(n.to_string(), s);
        assert_eq!(n.padded().len(), SequenceNumber::PADDED_WIDTH);
        assert_eq!(n.padded().parse::<SequenceNumber>().unwrap(), n);
        assert!(n > "9".repeat(55).parse().unwrap());
        for bad in [
            "",
            "-1",
            "1a",
            &"1".repeat(77),
            "1234567/",
            "1234567:",
            "12345678901234567890a",
            " 12345678",
            "1234567\u{0}",
        ] {
            assert!(bad.parse::<SequenceNumber>().is_err());
        }
    }

    #[test]
    fn padded_is_the_stored_form() {
        assert_eq!(SequenceNumber::ZERO.padded(), "0".repeat(76));
        assert_eq!(SequenceNumber::MAX.padded(), "9".repeat(76));
        assert_eq!(
            SequenceNumber::from_local(7).padded(),
            "0000000000000000000049000000000000000000000000000000000000000000000000000007"
        );
        assert_eq!(SequenceNumber::MAX.padded_ascii(), *"9".repeat(76).as_bytes());
    }

    proptest! {
        /// Byte order of `to_be_bytes` and of `padded` is the numeric order, up to 76 digits.
        #[test]
        fn sort_keys_order_as_numbers(a in "[0-9]{1,76}", b in "[0-9]{1,76}") {
            let (sa, sb): (SequenceNumber, SequenceNumber) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(sa.to_be_bytes().cmp(&sb.to_be_bytes()), sa.cmp(&sb));
            prop_assert_eq!(sa.padded().cmp(&sb.padded()), sa.cmp(&sb));
        }

        #[test]
        fn local_roundtrip_and_order(a in any::<u128>(), b in any::<u128>()) {
            let (sa, sb) = (SequenceNumber::from_local(a), SequenceNumber::from_local(b));
            prop_assert_eq!(sa.to_string(), format!("49{a:054}"));
            prop_assert_eq!(sa.to_string().len(), 56);
            prop_assert_eq!(sa.to_string().parse::<SequenceNumber>().unwrap(), sa);
            prop_assert_eq!(sa.local_counter(), Some(a));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }

        #[test]
        fn u128_matches_decimal(a in any::<u128>(), b in any::<u128>()) {
            let (sa, sb) = (SequenceNumber::from(a), SequenceNumber::from(b));
            prop_assert_eq!(sa.to_string(), a.to_string());
            prop_assert_eq!(a.to_string().parse::<SequenceNumber>().unwrap(), sa);
            prop_assert_eq!(sa.to_u128(), Some(a));
            prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
        }

        #[test]
        fn decimal_strings_roundtrip(s in "[1-9][0-9]{0,60}") {
            let n: SequenceNumber = s.parse().unwrap();
            prop_assert_eq!(n.to_string(), s);
        }

        #[test]
        fn numeric_order_of_equal_length_strings(a in "[1-9][0-9]{55}", b in "[1-9][0-9]{55}") {
            let (na, nb): (SequenceNumber, SequenceNumber) = (a.parse().unwrap(), b.parse().unwrap());
            prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,100}") {
            let _ = s.parse::<SequenceNumber>();
        }

        #[test]
        fn order_is_numeric(a in "[0-9]{1,76}", b in "[0-9]{1,76}") {
            let (x, y): (SequenceNumber, SequenceNumber) = (a.parse().unwrap(), b.parse().unwrap());
            let norm = |s: &str| { let t = s.trim_start_matches('0'); (t.len(), t.to_owned()) };
            prop_assert_eq!(x.cmp(&y), norm(&a).cmp(&norm(&b)));
            prop_assert_eq!(x.padded().cmp(&y.padded()), x.cmp(&y));
            prop_assert_eq!(x.to_string().parse::<SequenceNumber>().unwrap(), x);
            // Exact value against a plain reference (digits split at the 38th from the right).
            let split = a.len().saturating_sub(LO_DIGITS);
            let reference = |d: &str| if d.is_empty() { 0 } else { d.parse::<u128>().unwrap() };
            prop_assert_eq!(x, SequenceNumber { hi: reference(&a[..split]), lo: reference(&a[split..]) });
            // The stored form: each half zero-padded to 38 digits.
            prop_assert_eq!(x.padded(), format!("{:0>38}{:038}", x.hi, x.lo));
            // Any non-digit anywhere is rejected.
            let mut broken = a.clone().into_bytes();
            let at = b.len() % broken.len();
            for c in [b'/', b':', b'a', b' ', 0xb0] {
                broken[at] = c;
                prop_assert!(std::str::from_utf8(&broken).map_or(true, |t| t.parse::<SequenceNumber>().is_err()));
                prop_assert!(SequenceNumber::from_ascii(&broken).is_err());
            }
        }
    }
}
