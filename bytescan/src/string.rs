//! The end of a JSON string's raw content.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Offset of the first `"`, `\` or control character (`< 0x20`) in `s` (the end of a JSON
/// string's raw content, or an escape), if any, and whether every byte before it is ASCII
/// (conservatively: `false` may also mean a non-ASCII byte shortly after it). 8 bytes at a
/// time, the tail too (padded with a byte that never stops): the short strings of a record end
/// within a few words, where `memchr`'s setup would dominate.
#[inline(always)]
pub fn string_end(s: &[u8]) -> Option<(usize, bool)> {
    let mut chunks = s.chunks_exact(8);
    let mut base = 0;
    let mut high = 0u64;
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = u64::from_le_bytes(w);
        high |= x;
        if let Some(i) = stop_byte(x) {
            return Some((base + i, high & HIGHS == 0));
        }
        base += 8;
    }
    let rest = chunks.remainder();
    let mut w = [b'a'; 8];
    w.get_mut(..rest.len())?.copy_from_slice(rest);
    let x = u64::from_le_bytes(w);
    stop_byte(x).map(|i| (base + i, (high | x) & HIGHS == 0))
}

/// The index of the first byte of `x` (little-endian) that is `< 0x20`, `"` or `\\`.
#[inline(always)]
fn stop_byte(x: u64) -> Option<usize> {
    // A byte is flagged (high bit set) if it is < 0x20, == '"' or == '\\' (bytes >= 0x80 are
    // filtered by `& !x`). The lowest flagged byte is exact: a borrow only starts at a byte that
    // is itself a hit and only propagates upwards (checked against `rest_end` by a property test).
    let quote = x ^ (ONES * u64::from(b'"'));
    let backslash = x ^ (ONES * u64::from(b'\\'));
    let hits = (x.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES)) & !x & HIGHS;
    (hits != 0).then(|| (hits.trailing_zeros() / 8) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time [`string_end`] (the reference of its property test).
    fn rest_end(bytes: &[u8]) -> Option<usize> {
        bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)
    }

    proptest::proptest! {
        #[test]
        fn string_end_finds_the_first_stop_byte(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::prelude::Just(b'"'),
                    proptest::prelude::Just(b'\\'),
                    0x20u8..0x7f,
                ],
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(string_end(&bytes).map(|(at, _)| at), rest_end(&bytes));
        }
    }

    #[test]
    fn finds_specials_at_every_position() {
        for len in 0..40 {
            for pos in 0..len {
                for special in [b'"', b'\\', 0x1f, 0] {
                    let mut s = vec![b'a'; len];
                    s[pos] = special;
                    if pos + 1 < len {
                        s[pos + 1] = b'"';
                    }
                    assert_eq!(string_end(&s), Some((pos, true)), "len {len} pos {pos} {special}");
                    // Sound about ASCII: a non-ASCII byte anywhere before the special is seen.
                    for high in 0..pos {
                        let mut t = s.clone();
                        t[high] = 0xc3;
                        assert_eq!(string_end(&t), Some((pos, false)), "len {len} pos {pos} high {high}");
                    }
                }
            }
            let mut s: Vec<u8> =
                (0..len).map(|i| 0x20 + ((i * 7) % 0x5f) as u8).filter(|&c| c != b'"' && c != b'\\').collect();
            s.extend([0xc3, 0xa9, 0x7f, 0xff]);
            assert_eq!(string_end(&s), None);
        }
    }
}
