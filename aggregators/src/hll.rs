//! HyperLogLog distinct counter (2^14 registers) with a high-precision sparse mode, mergeable
//! exactly.
//!
//! Every element is reduced to a stable 32-bit fingerprint ([`fingerprint`]). Dense: the top 14
//! bits pick a register, the rank of the remaining 18 bits is its value, and a register keeps the
//! highest rank it saw (standard error 1.04/sqrt(16384) = 0.81%). Sparse (up to [`SPARSE_MAX`]
//! entries): like HyperLogLog++, the top [`SPARSE_PRECISION`] = 18 bits of each fingerprint with
//! the rank of its low 14 bits, one entry per 18-bit prefix with the highest rank; the dense
//! registers follow from these exactly, and linear counting over 2^18 prefixes estimates small
//! sets almost exactly (a 1 in 250 chance of one collision among 50 elements; under 0.2% error
//! at 4,000). Sparse entries are stored Rice-coded: ~2.2 bytes an element instead of 4 for a
//! fingerprint. All state is a function of the fingerprint set alone, so the state after any
//! sequence of inserts and merges is that of the union: merge is exactly associative,
//! commutative and idempotent.

/// Register index bits (dense).
pub const PRECISION: u32 = 14;
/// Number of registers.
pub const REGISTERS: usize = 1 << PRECISION;
/// Prefix bits of a sparse entry.
pub const SPARSE_PRECISION: u32 = 18;
/// Most sparse entries; one more turns the sketch dense. The worst-case sparse encoding
/// (~6.2 KB) stays below the dense one.
pub const SPARSE_MAX: usize = 4096;
/// Encoded size of the dense registers (5 bits each; ranks are <= 19).
pub const DENSE_BYTES: usize = REGISTERS * 5 / 8;
/// Highest dense rank: 18 zero bits after the register index, plus one.
const MAX_RANK: u8 = 32 - PRECISION as u8 + 1;
/// Low bits ranked by a sparse entry, and its highest rank.
const SPARSE_LOW_BITS: u32 = 32 - SPARSE_PRECISION;
const MAX_SPARSE_RANK: u32 = SPARSE_LOW_BITS + 1;
/// Sparse prefixes.
const PREFIXES: u32 = 1 << SPARSE_PRECISION;

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
    /// Entries `prefix << 4 | rank`, sorted, one per 18-bit prefix (1..=SPARSE_MAX of them).
    Sparse(Vec<u32>),
    /// Registers (rank 0 = untouched), always more than SPARSE_MAX prefixes seen.
    Dense(Box<[u8]>),
}

/// The sparse entry of a fingerprint.
fn entry_of(fp: u32) -> u32 {
    let prefix = fp >> SPARSE_LOW_BITS;
    let rank = (fp << SPARSE_PRECISION).leading_zeros().min(SPARSE_LOW_BITS) + 1;
    (prefix << 4) | rank
}

/// The dense register and rank a sparse entry stands for.
fn register_of(entry: u32) -> (usize, u8) {
    let prefix = entry >> 4;
    let index = (prefix >> (SPARSE_PRECISION - PRECISION)) as usize;
    let between = prefix & ((1 << (SPARSE_PRECISION - PRECISION)) - 1); // the 4 bits after the index
    let rank = if between != 0 {
        between.leading_zeros() - (32 - (SPARSE_PRECISION - PRECISION)) + 1
    } else {
        (SPARSE_PRECISION - PRECISION) + (entry & 0xf)
    };
    (index, rank as u8)
}

/// Sorted entries -> one per prefix, the highest rank (the last of each run).
fn keep_highest_rank(entries: &mut Vec<u32>) {
    entries.dedup_by(|later, earlier| {
        if *later >> 4 == *earlier >> 4 {
            *earlier = (*earlier).max(*later);
            true
        } else {
            false
        }
    });
}

impl Hll {
    /// A sketch of the given fingerprints (any order, duplicates allowed).
    pub fn from_fingerprints(fps: Vec<u32>) -> Hll {
        let mut entries: Vec<u32> = fps.into_iter().map(entry_of).collect();
        entries.sort_unstable();
        keep_highest_rank(&mut entries);
        Self::from_entries(entries)
    }

    /// From sorted entries with one per prefix.
    fn from_entries(entries: Vec<u32>) -> Hll {
        if entries.is_empty() {
            Hll::Empty
        } else if entries.len() <= SPARSE_MAX {
            Hll::Sparse(entries)
        } else {
            let mut regs = vec![0u8; REGISTERS].into_boxed_slice();
            add_entries(&mut regs, &entries);
            Hll::Dense(regs)
        }
    }

    /// Merges `other` into `self` (set union).
    pub fn merge(&mut self, other: &Hll) {
        let merged = match (std::mem::take(self), other) {
            (a, Hll::Empty) => a,
            (Hll::Empty, b) => b.clone(),
            (Hll::Sparse(a), Hll::Sparse(b)) => Self::from_entries(union_sorted(&a, b)),
            (Hll::Sparse(a), Hll::Dense(b)) => {
                let mut regs = b.clone();
                add_entries(&mut regs, &a);
                Hll::Dense(regs)
            }
            (Hll::Dense(mut a), Hll::Sparse(b)) => {
                add_entries(&mut a, b);
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
            Hll::Sparse(v) => {
                // Linear counting over the 2^18 prefixes.
                let m = f64::from(PREFIXES);
                (m * (m / (m - v.len() as f64)).ln()).round() as u64
            }
            Hll::Dense(regs) => dense_estimate(regs),
        }
    }

    /// Appends the encoding: tag 0 = empty; 3 = sparse (varint n, a byte `k`, then a bit
    /// stream, least significant bit first: per entry the gap to the previous prefix (the first:
    /// the prefix) Rice-coded with parameter `k` (quotient in unary, ones ended by a zero, then
    /// `k` bits), and the rank in 4 bits); 2 = dense ([`DENSE_BYTES`] bytes, registers packed 5
    /// bits, little-endian bit order). Tag 1 (sparse 32-bit fingerprints, written by earlier
    /// builds) is still read.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Hll::Empty => out.push(0),
            Hll::Sparse(v) => {
                out.push(3);
                crate::varint::put(out, v.len() as u64);
                let k = rice_parameter(v.len());
                out.push(k as u8);
                let mut bits = BitWriter::new(out);
                let mut prev = 0u32;
                for &e in v {
                    let prefix = e >> 4;
                    let gap = prefix - prev;
                    prev = prefix;
                    bits.unary(gap >> k);
                    bits.put(gap & ((1 << k) - 1), k);
                    bits.put(e & 0xf, 4);
                }
                bits.finish();
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
                // Sparse fingerprints (earlier builds): at most 2,048, strictly increasing.
                let n = usize::try_from(crate::varint::get(input)?).ok()?;
                if n == 0 || n > 2048 {
                    return None;
                }
                let mut fps = Vec::with_capacity(n);
                let mut prev: u64 = 0;
                for i in 0..n {
                    let d = crate::varint::get(input)?;
                    if i > 0 && d == 0 {
                        return None;
                    }
                    prev = prev.checked_add(d)?;
                    fps.push(u32::try_from(prev).ok()?);
                }
                Some(Hll::from_fingerprints(fps))
            }
            3 => {
                let n = usize::try_from(crate::varint::get(input)?).ok()?;
                if n == 0 || n > SPARSE_MAX {
                    return None;
                }
                let (&k, rest) = input.split_first()?;
                *input = rest;
                let k = u32::from(k);
                if k != rice_parameter(n) {
                    return None; // not the canonical encoding
                }
                let mut bits = BitReader::new(input);
                let mut v = Vec::with_capacity(n);
                let mut prefix = 0u32;
                for i in 0..n {
                    let gap = (bits.unary(PREFIXES >> k)? << k) | bits.get(k)?;
                    let rank = bits.get(4)?;
                    if (i > 0 && gap == 0) || rank == 0 || rank > MAX_SPARSE_RANK {
                        return None;
                    }
                    prefix = prefix.checked_add(gap).filter(|p| *p < PREFIXES)?;
                    v.push((prefix << 4) | rank);
                }
                *input = bits.finish()?;
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
                    if *r > MAX_RANK {
                        return None;
                    }
                }
                Some(Hll::Dense(regs))
            }
            _ => None,
        }
    }
}

/// The Rice parameter for `n` entries over 2^18 prefixes: about log2 of the mean gap.
fn rice_parameter(n: usize) -> u32 {
    let mean = PREFIXES / (n.max(1) as u32).min(PREFIXES);
    (31 - mean.max(1).leading_zeros()).min(SPARSE_PRECISION - 1)
}

/// Appends bits to a byte vector, least significant bit first.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    bits: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, bits: 0 }
    }

    /// The low `n` (<= 32) bits of `value`.
    fn put(&mut self, value: u32, n: u32) {
        self.acc |= u64::from(value) << self.bits;
        self.bits += n;
        while self.bits >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.bits -= 8;
        }
    }

    /// `q` ones, then a zero.
    fn unary(&mut self, mut q: u32) {
        while q >= 16 {
            self.put(0xffff, 16);
            q -= 16;
        }
        self.put((1 << q) - 1, q + 1);
    }

    fn finish(self) {
        if self.bits > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    input: &'a [u8],
    pos: usize, // in bits
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8]) -> Self {
        BitReader { input, pos: 0 }
    }

    fn bit(&mut self) -> Option<u32> {
        let byte = self.input.get(self.pos / 8)?;
        let b = (byte >> (self.pos % 8)) & 1;
        self.pos += 1;
        Some(u32::from(b))
    }

    fn get(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for i in 0..n {
            v |= self.bit()? << i;
        }
        Some(v)
    }

    /// A unary count (ones ended by a zero), at most `max`.
    fn unary(&mut self, max: u32) -> Option<u32> {
        let mut q = 0;
        while self.bit()? == 1 {
            q += 1;
            if q > max {
                return None;
            }
        }
        Some(q)
    }

    /// The input after the last byte read; `None` if the unused bits of that byte are not zero.
    fn finish(self) -> Option<&'a [u8]> {
        let used = self.pos.div_ceil(8);
        if !self.pos.is_multiple_of(8) && self.input.get(used - 1)? >> (self.pos % 8) != 0 {
            return None;
        }
        self.input.get(used..)
    }
}

fn add_entries(regs: &mut [u8], entries: &[u32]) {
    for &e in entries {
        let (i, rank) = register_of(e);
        if let Some(r) = regs.get_mut(i) {
            *r = (*r).max(rank);
        }
    }
}

/// The union of two sorted one-per-prefix entry lists, keeping the higher rank.
fn union_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match (a[i] >> 4).cmp(&(b[j] >> 4)) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i].max(b[j]));
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
    fn small_sets_are_nearly_exact() {
        assert_eq!(sketch_of(0, "a").estimate(), 0);
        assert_eq!(sketch_of(1, "a").estimate(), 1);
        for n in [2u64, 10, 50, 200] {
            assert_eq!(sketch_of(n, "a").estimate(), n);
        }
        // Linear counting over 2^18 prefixes: standard error under 0.15% below 4,096 elements.
        for n in [1000u64, 4000] {
            let est = sketch_of(n, "a").estimate();
            assert!(est.abs_diff(n) as f64 <= 0.005 * n as f64, "n={n} est={est}");
        }
        assert!(matches!(sketch_of(4000, "a"), Hll::Sparse(_)));
        assert!(matches!(sketch_of(4200, "a"), Hll::Dense(_)));
    }

    #[test]
    fn sparse_encoding_is_about_two_bytes_an_element() {
        for n in [1u64, 40, 400, 4000] {
            let mut buf = Vec::new();
            sketch_of(n, "e").encode(&mut buf);
            assert!(buf.len() as f64 <= 2.3 * n as f64 + 6.0, "n={n}: {} bytes", buf.len());
        }
    }

    #[test]
    fn reads_sparse_fingerprints_of_earlier_builds() {
        let fps = [3u32, 1 << 20, 0xdead_beef];
        let mut old = vec![1u8, 3];
        let mut prev = 0;
        for fp in fps {
            crate::varint::put(&mut old, u64::from(fp - prev));
            prev = fp;
        }
        let mut input = old.as_slice();
        assert_eq!(Hll::decode(&mut input), Some(Hll::from_fingerprints(fps.to_vec())));
        assert!(input.is_empty());
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
        for h in [Hll::Empty, sketch_of(1, "c"), sketch_of(10, "c"), sketch_of(4000, "c"), sketch_of(5000, "c")] {
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
        // 3: n=0; n=1 with a wrong k; n=1, k=17, truncated; n=2 with a wrong k.
        for bad in [
            &[9u8][..],
            &[1, 0],
            &[1, 2, 5, 0],
            &[2, 1, 2],
            &[3, 0],
            &[3, 1, 3, 0],
            &[3, 1, 17],
            &[3, 2, 16, 0x01, 0, 0, 0, 0],
        ] {
            let mut input = bad;
            assert_eq!(Hll::decode(&mut input), None, "{bad:?}");
        }
    }

    #[test]
    fn sparse_entries_give_the_dense_registers_exactly() {
        let fps: Vec<u32> =
            (0..20_000u32).map(|i| fingerprint(&i.to_le_bytes())).chain([0, 1, u32::MAX, 1 << 14]).collect();
        let mut direct = vec![0u8; REGISTERS];
        for &fp in &fps {
            let index = (fp >> (32 - PRECISION)) as usize;
            let rank = ((fp << PRECISION).leading_zeros().min(32 - PRECISION) + 1) as u8;
            direct[index] = direct[index].max(rank);
        }
        let mut via_entries = vec![0u8; REGISTERS];
        add_entries(&mut via_entries, &fps.iter().map(|&fp| entry_of(fp)).collect::<Vec<_>>());
        assert_eq!(via_entries, direct);
    }

    proptest! {
        #[test]
        fn sparse_encoding_roundtrips(fps in proptest::collection::vec(any::<u32>(), 1..5000)) {
            let h = Hll::from_fingerprints(fps);
            let mut buf = Vec::new();
            h.encode(&mut buf);
            buf.push(0xaa);
            let mut input = buf.as_slice();
            prop_assert_eq!(Hll::decode(&mut input), Some(h));
            prop_assert_eq!(input, &[0xaa][..]);
        }

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
