//! Equality of short byte strings.

/// `a == b` for the short strings of events (keys, names, enum options, dimension values,
/// event types), inlined and without a call to `memcmp`, whose fixed cost dominates at these
/// lengths: up to 16 bytes as two overlapping words of each (no loop), longer ones by a
/// branch-free fold that the compiler vectorizes.
#[inline(always)]
pub fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let n = a.len();
    let u32_at = |s: &[u8], i: usize| s.get(i..i + 4).and_then(|w| w.try_into().ok()).map(u32::from_le_bytes);
    let u64_at = |s: &[u8], i: usize| s.get(i..i + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=8 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        9..=16 => u64_at(a, 0) == u64_at(b, 0) && u64_at(a, n - 8) == u64_at(b, n - 8),
        _ => a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn same_is_byte_equality(a in proptest::collection::vec(0u8..4, 0..24), flip in proptest::option::of(0usize..24)) {
            let mut b = a.clone();
            if let Some(i) = flip.filter(|&i| i < b.len()) {
                b[i] ^= 1;
            }
            proptest::prop_assert_eq!(short_eq(&a, &b), a == b);
            proptest::prop_assert_eq!(short_eq(&a, &b[..b.len().saturating_sub(1)]), a[..] == b[..b.len().saturating_sub(1)]);
        }
    }

    #[test]
    fn bytes_eq_is_slice_equality() {
        let words: [&[u8]; 7] = [b"", b"a", b"b", b"ab", b"ba", b"country", b"countrz"];
        for a in words {
            for b in words {
                assert_eq!(short_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }
}
