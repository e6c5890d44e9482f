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
        let bad = || BadSeqNo(s.to_owned());
        if s.is_empty() || s.len() > PADDED_WIDTH || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let split = s.len().saturating_sub(LO_DIGITS);
        let (h, l) = s.split_at(split);
        let hi = parse_digits(h.as_bytes());
        let lo = parse_digits(l.as_bytes());
        Ok(SeqNo { hi, lo })
    }
}

/// Decimal digits (at most 38, all ASCII digits: checked by the caller) as u128, 19 at a time
/// in u64 arithmetic.
fn parse_digits(d: &[u8]) -> u128 {
    let chunk = |c: &[u8]| c.iter().fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    if d.len() <= 19 {
        u128::from(chunk(d))
    } else {
        let (a, b) = d.split_at(d.len() - 19);
        u128::from(chunk(a)) * 10_000_000_000_000_000_000u128 + u128::from(chunk(b))
    }
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
        for bad in ["", "-1", "1a", &"1".repeat(77)] {
            assert!(bad.parse::<SeqNo>().is_err());
        }
    }

    proptest! {
        #[test]
        fn order_is_numeric(a in "[0-9]{1,60}", b in "[0-9]{1,60}") {
            let (x, y): (SeqNo, SeqNo) = (a.parse().unwrap(), b.parse().unwrap());
            let norm = |s: &str| { let t = s.trim_start_matches('0'); (t.len(), t.to_owned()) };
            prop_assert_eq!(x.cmp(&y), norm(&a).cmp(&norm(&b)));
            prop_assert_eq!(x.padded().cmp(&y.padded()), x.cmp(&y));
            prop_assert_eq!(x.to_string().parse::<SeqNo>().unwrap(), x);
        }
    }
}
