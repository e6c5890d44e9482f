//! HyperLogLog distinct counter with an exact sparse mode, mergeable exactly.
//!
//! Every element is reduced to a stable 32-bit fingerprint ([`fingerprint`]). A set of fewer than
//! [`SPARSE_MAX`] fingerprints is kept as the sorted set itself (estimate = exact count of
//! fingerprints, i.e. exact up to 32-bit collisions); a larger one as 2^14 HyperLogLog registers
//! (top 14 bits = register, rank of the remaining 18 bits, standard error 1.04/sqrt(16384) =
//! 0.81%). Because dense registers are a function of the fingerprint set alone, the state after
//! any sequence of inserts and merges is `sparse(U)` if `|U| <= SPARSE_MAX` else `dense(U)` for
//! the union `U`: merge is exactly associative, commutative and idempotent.

/// Register index bits.
pub const PRECISION: u32 = 14;
/// Number of registers.
pub const REGISTERS: usize = 1 << PRECISION;
/// Largest sparse set; one more fingerprint turns the sketch dense.
pub const SPARSE_MAX: usize = 2048;
/// Encoded size of the dense registers (5 bits each; ranks are <= 19).
pub const DENSE_BYTES: usize = REGISTERS * 5 / 8;

/// The stable 32-bit fingerprint of an identity value (FNV-1a 64 + murmur3 fmix64, high bits).
/// Stored sketches depend on it: never change it without a new encoding version.
pub fn fingerprint(bytes: &[u8]) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h >> 32) as u32
}

/// A distinct-count sketch (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Hll {
    /// No element.
    #[default]
    Empty,
    /// Sorted, unique fingerprints (1..=SPARSE_MAX of them).
    Sparse(Vec<u32>),
    /// Registers (rank 0 = untouched), always more than SPARSE_MAX fingerprints seen.
    Dense(Box<[u8]>),
}

fn register_of(fp: u32) -> (usize, u8) {
    let index = (fp >> (32 - PRECISION)) as usize;
    let rest = fp << PRECISION; // the low 18 bits, left-aligned
    // rank = position of the first 1 bit in the 18 remaining bits, 19 if all zero.
    let rank = (rest.leading_zeros().min(32 - PRECISION) + 1) as u8;
    (index, rank)
}

impl Hll {
    /// A sketch of the given fingerprints (any order, duplicates allowed).
    pub fn from_fingerprints(mut fps: Vec<u32>) -> Hll {
        if fps.is_empty() {
            return Hll::Empty;
        }
        fps.sort_unstable();
        fps.dedup();
        Self::from_sorted_unique(fps)
    }

    fn from_sorted_unique(fps: Vec<u32>) -> Hll {
        if fps.is_empty() {
            Hll::Empty
        } else if fps.len() <= SPARSE_MAX {
            Hll::Sparse(fps)
        } else {
            let mut regs = vec![0u8; REGISTERS].into_boxed_slice();
            for fp in fps {
                add_to(&mut regs, fp);
            }
            Hll::Dense(regs)
        }
    }

    /// Merges `other` into `self` (set union).
    pub fn merge(&mut self, other: &Hll) {
        let merged = match (std::mem::take(self), other) {
            (a, Hll::Empty) => a,
            (Hll::Empty, b) => b.clone(),
            (Hll::Sparse(a), Hll::Sparse(b)) => Self::from_sorted_unique(union_sorted(&a, b)),
            (Hll::Sparse(a), Hll::Dense(b)) => {
                let mut regs = b.clone();
                for fp in a {
                    add_to(&mut regs, fp);
                }
                Hll::Dense(regs)
            }
            (Hll::Dense(mut a), Hll::Sparse(b)) => {
                for &fp in b {
                    add_to(&mut a, fp);
                }
                Hll::Dense(a)
            }
            (Hll::Dense(mut a), Hll::Dense(b)) => {
                for (x, y) in a.iter_mut().zip(b.iter()) {
                    *x = (*x).max(*y);
                }
                Hll::Dense(a)
            }
        };
        *self = merged;
    }

    /// Estimated number of distinct elements.
    pub fn estimate(&self) -> u64 {
        match self {
            Hll::Empty => 0,
            Hll::Sparse(v) => v.len() as u64,
            Hll::Dense(regs) => dense_estimate(regs),
        }
    }

    /// Appends the encoding: tag 0 = empty; 1 = sparse (varint n, then varint deltas of the sorted
    /// fingerprints); 2 = dense ([`DENSE_BYTES`] bytes, registers packed 5 bits, little-endian bit
    /// order).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Hll::Empty => out.push(0),
            Hll::Sparse(v) => {
                out.push(1);
                crate::varint::put(out, v.len() as u64);
                let mut prev = 0u32;
                for &fp in v {
                    crate::varint::put(out, u64::from(fp - prev));
                    prev = fp;
                }
            }
            Hll::Dense(regs) => {
                out.push(2);
                let mut acc: u32 = 0;
                let mut bits = 0;
                for &r in regs.iter() {
                    acc |= u32::from(r & 0x1f) << bits;
                    bits += 5;
                    while bits >= 8 {
                        out.push((acc & 0xff) as u8);
                        acc >>= 8;
                        bits -= 8;
                    }
                }
            }
        }
    }

    /// Decodes what [`Hll::encode`] wrote, advancing `input`. `None` on malformed input.
    pub fn decode(input: &mut &[u8]) -> Option<Hll> {
        let (&tag, rest) = input.split_first()?;
        *input = rest;
        match tag {
            0 => Some(Hll::Empty),
            1 => {
                let n = usize::try_from(crate::varint::get(input)?).ok()?;
                if n == 0 || n > SPARSE_MAX {
                    return None;
                }
                let mut v = Vec::with_capacity(n);
                let mut prev: u64 = 0;
                for i in 0..n {
                    let d = crate::varint::get(input)?;
                    if i > 0 && d == 0 {
                        return None;
                    }
                    prev = prev.checked_add(d)?;
                    v.push(u32::try_from(prev).ok()?);
                }
                Some(Hll::Sparse(v))
            }
            2 => {
                if input.len() < DENSE_BYTES {
                    return None;
                }
                let (bytes, rest) = input.split_at(DENSE_BYTES);
                *input = rest;
                let mut regs = vec![0u8; REGISTERS].into_boxed_slice();
                let mut acc: u32 = 0;
                let mut bits = 0;
                let mut it = bytes.iter();
                for r in regs.iter_mut() {
                    while bits < 5 {
                        acc |= u32::from(*it.next()?) << bits;
                        bits += 8;
                    }
                    *r = (acc & 0x1f) as u8;
                    acc >>= 5;
                    bits -= 5;
                    if *r > 32 - PRECISION as u8 + 1 {
                        return None;
                    }
                }
                Some(Hll::Dense(regs))
            }
            _ => None,
        }
    }
}

fn add_to(regs: &mut [u8], fp: u32) {
    let (i, rank) = register_of(fp);
    if let Some(r) = regs.get_mut(i) {
        *r = (*r).max(rank);
    }
}

fn union_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn dense_estimate(regs: &[u8]) -> u64 {
    let m = REGISTERS as f64;
    let alpha = 0.7213 / (1.0 + 1.079 / m);
    let mut sum = 0.0;
    let mut zeros = 0usize;
    for &r in regs {
        sum += 2f64.powi(-i32::from(r));
        if r == 0 {
            zeros += 1;
        }
    }
    let raw = alpha * m * m / sum;
    let est = if raw <= 2.5 * m && zeros > 0 { m * (m / zeros as f64).ln() } else { raw };
    // A dense sketch always stands for more than SPARSE_MAX fingerprints.
    (est.round() as u64).max(SPARSE_MAX as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sketch_of(n: u64, salt: &str) -> Hll {
        Hll::from_fingerprints((0..n).map(|i| fingerprint(format!("{salt}-user-{i}").as_bytes())).collect())
    }

    #[test]
    fn small_sets_are_exact() {
        assert_eq!(sketch_of(0, "a").estimate(), 0);
        assert_eq!(sketch_of(1, "a").estimate(), 1);
        assert_eq!(sketch_of(1000, "a").estimate(), 1000);
        assert!(matches!(sketch_of(2048, "a"), Hll::Sparse(_)));
        assert!(matches!(sketch_of(2049, "a"), Hll::Dense(_)));
    }

    #[test]
    fn large_sets_within_two_percent() {
        for n in [3_000u64, 10_000, 50_000, 200_000, 1_000_000] {
            let est = sketch_of(n, "b").estimate() as f64;
            let err = (est - n as f64).abs() / n as f64;
            assert!(err < 0.02, "n={n} est={est} err={err}");
        }
    }

    #[test]
    fn encode_roundtrip_dense_and_sparse() {
        for h in [Hll::Empty, sketch_of(10, "c"), sketch_of(5000, "c")] {
            let mut buf = Vec::new();
            h.encode(&mut buf);
            let mut input = buf.as_slice();
            assert_eq!(Hll::decode(&mut input), Some(h));
            assert!(input.is_empty());
        }
        let mut buf = Vec::new();
        sketch_of(5000, "c").encode(&mut buf);
        assert_eq!(buf.len(), 1 + DENSE_BYTES);
    }

    #[test]
    fn decode_rejects_garbage() {
        for bad in [&[9u8][..], &[1, 0], &[1, 2, 5, 0], &[2, 1, 2]] {
            let mut input = bad;
            assert_eq!(Hll::decode(&mut input), None, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn merge_is_union(a in proptest::collection::vec(any::<u32>(), 0..3000),
                          b in proptest::collection::vec(any::<u32>(), 0..3000)) {
            let mut m = Hll::from_fingerprints(a.clone());
            m.merge(&Hll::from_fingerprints(b.clone()));
            let mut all = a;
            all.extend(b);
            prop_assert_eq!(m, Hll::from_fingerprints(all));
        }
    }
}
