//! LEB128 varints and zigzag, the building blocks of the state encoding.

/// Appends `v` as an unsigned LEB128 varint (1..=10 bytes).
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads an unsigned LEB128 varint, advancing `input`. `None` if truncated or over 64 bits.
pub fn get(input: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        let part = u64::from(b & 0x7f);
        if shift == 63 && part > 1 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Zigzag-encodes a signed value.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads `N` raw bytes, advancing `input`.
pub fn bytes<const N: usize>(input: &mut &[u8]) -> Option<[u8; N]> {
    if input.len() < N {
        return None;
    }
    let (head, rest) = input.split_at(N);
    *input = rest;
    head.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(v in any::<u64>(), s in any::<i64>()) {
            let mut buf = Vec::new();
            put(&mut buf, v);
            let mut input = buf.as_slice();
            prop_assert_eq!(get(&mut input), Some(v));
            prop_assert!(input.is_empty());
            prop_assert_eq!(unzigzag(zigzag(s)), s);
        }
    }

    #[test]
    fn rejects_truncated_and_overlong() {
        assert_eq!(get(&mut &[0x80u8][..]), None);
        assert_eq!(get(&mut &[0xffu8; 11][..]), None);
    }
}
