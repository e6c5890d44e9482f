//! Stream sequence numbers (Kinesis: up to 56 decimal digits, more than a u128 holds).

use std::fmt;
use std::str::FromStr;

/// A stream sequence number: a non-negative decimal of up to 76 digits, ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SeqNo {
    hi: u128,
    lo: u128,
}

const LO_DIGITS: usize = 38;
const LO_MOD: u128 = 10u128.pow(LO_DIGITS as u32);
/// Width of [`SeqNo::padded`].
pub const PADDED_WIDTH: usize = 76;

/// Not a decimal sequence number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a sequence number (1 to 76 decimal digits)")]
pub struct BadSeqNo(pub String);

impl SeqNo {
    /// The smallest sequence number.
    pub const ZERO: SeqNo = SeqNo { hi: 0, lo: 0 };
    /// Larger than any parsed sequence number.
    pub const MAX: SeqNo = SeqNo { hi: u128::MAX, lo: u128::MAX };

    /// A sequence number that fits in a u128.
    pub fn from_u128(v: u128) -> SeqNo {
        SeqNo { hi: v / LO_MOD, lo: v % LO_MOD }
    }

    /// Zero-padded to [`PADDED_WIDTH`] digits: string order equals numeric order (the stored form).
    pub fn padded(&self) -> String {
        format!("{:0>38}{:038}", self.hi, self.lo)
    }
}

impl FromStr for SeqNo {
    type Err = BadSeqNo;
    fn from_str(s: &str) -> Result<SeqNo, BadSeqNo> {
        SeqNo::from_digits(s.as_bytes())
    }
}

impl SeqNo {
    /// [`FromStr`] on the text's bytes (what a record's `sequenceNumber` is, unchecked for UTF-8:
    /// digits are ASCII).
    #[inline]
    pub fn from_digits(digits: &[u8]) -> Result<SeqNo, BadSeqNo> {
        SeqNo::parse_ascii(digits).ok_or_else(|| BadSeqNo(String::from_utf8_lossy(digits).into_owned()))
    }

    /// Parses 1 to [`PADDED_WIDTH`] ASCII decimal digits (the same rule as `FromStr`, which
    /// reports the error): 16-digit groups from the right, 8 digits at a time (SWAR), combined
    /// once into the two u128 halves. Reads the input in place (a copy into a padded buffer
    /// costs more than the parse: its 8-byte reads straddle the copy's stores).
    #[inline]
    fn parse_ascii(s: &[u8]) -> Option<SeqNo> {
        if s.is_empty() || s.len() > PADDED_WIDTH {
            return None;
        }
        let (h, l) = s.split_at(s.len().saturating_sub(LO_DIGITS));
        Some(SeqNo { hi: parse_upto38(h)?, lo: parse_upto38(l)? })
    }
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

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.hi == 0 { write!(f, "{}", self.lo) } else { write!(f, "{}{:038}", self.hi, self.lo) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kinesis_sized_numbers() {
        let s = "49590338271490256608559692538361571095921575989136588898";
        let n: SeqNo = s.parse().unwrap();
        assert_eq!(n.to_string(), s);
        assert_eq!(n.padded().len(), PADDED_WIDTH);
        assert_eq!(n.padded().parse::<SeqNo>().unwrap(), n);
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
            assert!(bad.parse::<SeqNo>().is_err());
        }
    }

    proptest! {
        #[test]
        fn order_is_numeric(a in "[0-9]{1,76}", b in "[0-9]{1,76}") {
            let (x, y): (SeqNo, SeqNo) = (a.parse().unwrap(), b.parse().unwrap());
            let norm = |s: &str| { let t = s.trim_start_matches('0'); (t.len(), t.to_owned()) };
            prop_assert_eq!(x.cmp(&y), norm(&a).cmp(&norm(&b)));
            prop_assert_eq!(x.padded().cmp(&y.padded()), x.cmp(&y));
            prop_assert_eq!(x.to_string().parse::<SeqNo>().unwrap(), x);
            // Exact value against a plain reference (digits split at the 38th from the right).
            let split = a.len().saturating_sub(LO_DIGITS);
            let reference = |d: &str| if d.is_empty() { 0 } else { d.parse::<u128>().unwrap() };
            prop_assert_eq!(x, SeqNo { hi: reference(&a[..split]), lo: reference(&a[split..]) });
            // Any non-digit anywhere is rejected.
            let mut broken = a.clone().into_bytes();
            let at = b.len() % broken.len();
            for c in [b'/', b':', b'a', b' ', 0xb0] {
                broken[at] = c;
                prop_assert!(std::str::from_utf8(&broken).map_or(true, |t| t.parse::<SeqNo>().is_err()));
            }
        }
    }
}
