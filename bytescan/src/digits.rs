//! Runs of ASCII digits.

/// Non-empty and only ASCII digits, 8 bytes at a time (a sequence number's check).
#[inline]
pub fn all_digits(d: &[u8]) -> bool {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    const HIGH_NIBBLES: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    let mut chunks = d.chunks_exact(8);
    let words = chunks.by_ref().all(|c| {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let v = u64::from_le_bytes(w);
        // Every byte 0x30..=0x3F, and its low nibble + 6 stays below 16 (no carry: <= 9).
        v & HIGH_NIBBLES == ZEROS && v.wrapping_sub(ZEROS).wrapping_add(0x0606_0606_0606_0606) & HIGH_NIBBLES == 0
    });
    !d.is_empty() && words && chunks.remainder().iter().all(u8::is_ascii_digit)
}

/// How many ASCII digits `b` starts with.
#[inline]
pub fn digit_run(b: &[u8]) -> usize {
    b.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// `n` in decimal (as `n.to_string()` writes it), into `buf`: no allocation.
#[inline]
pub fn decimal(n: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut m = n.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'0' + (m % 10) as u8;
        }
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        if let Some(slot) = buf.get_mut(i) {
            *slot = b'-';
        }
    }
    buf.get(i..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn all_digits_is_the_bytewise_check(
            bytes in proptest::collection::vec(proptest::prop_oneof![proptest::prelude::any::<u8>(), b'0'..=b'9', b'0'..=b'9'], 0..40)
        ) {
            let bytewise = !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
            proptest::prop_assert_eq!(all_digits(&bytes), bytewise);
            let run = bytes.iter().position(|b| !b.is_ascii_digit()).unwrap_or(bytes.len());
            proptest::prop_assert_eq!(digit_run(&bytes), run);
        }

        #[test]
        fn decimal_is_to_string(n in proptest::prelude::any::<i64>()) {
            let (mut buf, text) = ([0; 20], n.to_string());
            proptest::prop_assert_eq!(decimal(n, &mut buf), text.as_bytes());
        }
    }

    #[test]
    fn decimal_extremes() {
        for n in [0, 9, 10, -1, i64::MIN, i64::MAX] {
            let mut buf = [0; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }
}
