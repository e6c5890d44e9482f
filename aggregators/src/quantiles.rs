//! A DDSketch-style relative-error quantile sketch, mergeable exactly.
//!
//! Values `x > 0` go to bucket `ceil(log_γ x)` with `γ = (1 + α) / (1 - α)`, `α = 1%`; negative
//! values to a mirrored store by `|x|`; zero to a zero count. Every finite magnitude has a bucket
//! (subnormals to `f64::MAX`: indices within ±37,300). A bucket's representative
//! `2γ^i / (γ + 1)` is within `α` of every value in it, so a quantile is within 1% (relative) of
//! the exact value at the same rank; callers clamp it into the exact `[min, max]` they track
//! (`AggState::quantile`), which also bounds the representative of the top bucket near
//! `f64::MAX` (it may round to infinity) and of a collapsed bucket.
//!
//! Bounded size: a store keeps at most [`MAX_BUCKETS`] consecutive indices (a dynamic range of
//! γ^2048 ≈ 6·10^17); when it would span more, every bucket below `max - MAX_BUCKETS + 1` is
//! folded into that one (the lowest magnitudes lose accuracy, never the high quantiles). The cut
//! depends only on the maximum index of the union, so merge stays exactly associative and
//! commutative.

/// Relative accuracy of every quantile (before any collapse).
pub const ALPHA: f64 = 0.01;
/// Maximum span of bucket indices per store.
pub const MAX_BUCKETS: i32 = 2048;

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

/// The bucket index of a finite magnitude `m > 0`.
pub fn bucket_index(m: f64) -> i32 {
    let i = (m.ln() / gamma().ln()).ceil();
    // ln of a positive finite f64 is within [-744.5, 709.8], / ln γ: within ±37,300.
    i as i32
}

/// The representative value of bucket `i`.
pub fn bucket_value(i: i32) -> f64 {
    let g = gamma();
    2.0 * g.powi(i) / (g + 1.0)
}

/// Where one observation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Neg(i32),
    Zero,
    Pos(i32),
}

impl Slot {
    /// The slot of a finite value (non-finite values count as zero; validation excludes them).
    pub fn of(x: f64) -> Slot {
        if x == 0.0 || !x.is_finite() {
            Slot::Zero
        } else if x > 0.0 {
            Slot::Pos(bucket_index(x))
        } else {
            Slot::Neg(bucket_index(-x))
        }
    }
}

/// Buckets sorted by index, counts > 0, span <= MAX_BUCKETS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Store(Vec<(i32, u64)>);

impl Store {
    fn from_indices(mut idx: Vec<i32>) -> Store {
        idx.sort_unstable();
        let mut out: Vec<(i32, u64)> = Vec::new();
        for i in idx {
            match out.last_mut() {
                Some((j, c)) if *j == i => *c += 1,
                _ => out.push((i, 1)),
            }
        }
        let mut s = Store(out);
        s.collapse();
        s
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, c)| *c).fold(0u64, u64::wrapping_add)
    }

    fn collapse(&mut self) {
        let (Some(&(lo, _)), Some(&(hi, _))) = (self.0.first(), self.0.last()) else {
            return;
        };
        if i64::from(hi) - i64::from(lo) < i64::from(MAX_BUCKETS) {
            return;
        }
        let cut = hi - MAX_BUCKETS + 1;
        let folded: u64 = self.0.iter().filter(|(i, _)| *i < cut).map(|(_, c)| *c).fold(0, u64::wrapping_add);
        self.0.retain(|(i, _)| *i >= cut);
        match self.0.first_mut() {
            Some((i, c)) if *i == cut => *c = c.wrapping_add(folded),
            _ => self.0.insert(0, (cut, folded)),
        }
    }

    fn merge(&mut self, other: &Store) {
        if other.0.is_empty() {
            return;
        }
        let a = std::mem::take(&mut self.0);
        let mut out = Vec::with_capacity(a.len() + other.0.len());
        let (mut x, mut y) = (a.iter().peekable(), other.0.iter().peekable());
        loop {
            match (x.peek(), y.peek()) {
                (Some(&&(i, c)), Some(&&(j, d))) => {
                    if i < j {
                        out.push((i, c));
                        x.next();
                    } else if j < i {
                        out.push((j, d));
                        y.next();
                    } else {
                        out.push((i, c.wrapping_add(d)));
                        x.next();
                        y.next();
                    }
                }
                (Some(&&b), None) => {
                    out.push(b);
                    x.next();
                }
                (None, Some(&&b)) => {
                    out.push(b);
                    y.next();
                }
                (None, None) => break,
            }
        }
        self.0 = out;
        self.collapse();
    }

    fn encode(&self, out: &mut Vec<u8>) {
        crate::varint::put(out, self.0.len() as u64);
        let mut prev: Option<i32> = None;
        for &(i, c) in &self.0 {
            match prev {
                None => crate::varint::put(out, crate::varint::zigzag(i64::from(i))),
                Some(p) => crate::varint::put(out, (i64::from(i) - i64::from(p)) as u64),
            }
            crate::varint::put(out, c);
            prev = Some(i);
        }
    }

    fn decode(input: &mut &[u8]) -> Option<Store> {
        let n = usize::try_from(crate::varint::get(input)?).ok()?;
        if n > MAX_BUCKETS as usize {
            return None;
        }
        let mut v = Vec::with_capacity(n);
        let mut prev: Option<i64> = None;
        for _ in 0..n {
            let raw = crate::varint::get(input)?;
            let i = match prev {
                None => crate::varint::unzigzag(raw),
                Some(p) if raw > 0 && raw <= MAX_BUCKETS as u64 => p + raw as i64,
                Some(_) => return None,
            };
            let c = crate::varint::get(input)?;
            if c == 0 {
                return None;
            }
            v.push((i32::try_from(i).ok()?, c));
            prev = Some(i);
        }
        if let (Some(lo), Some(hi)) = (v.first(), v.last())
            && i64::from(hi.0) - i64::from(lo.0) >= i64::from(MAX_BUCKETS)
        {
            return None;
        }
        Some(Store(v))
    }
}

/// A quantile sketch (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QuantileSketch {
    neg: Store,
    zero: u64,
    pos: Store,
}

impl QuantileSketch {
    /// A sketch of the given slots (see [`Slot::of`]).
    pub fn from_slots(slots: impl IntoIterator<Item = Slot>) -> QuantileSketch {
        let (mut neg, mut pos, mut zero) = (Vec::new(), Vec::new(), 0u64);
        for s in slots {
            match s {
                Slot::Neg(i) => neg.push(i),
                Slot::Zero => zero += 1,
                Slot::Pos(i) => pos.push(i),
            }
        }
        QuantileSketch { neg: Store::from_indices(neg), zero, pos: Store::from_indices(pos) }
    }

    /// A sketch of the given values.
    pub fn from_values(values: &[f64]) -> QuantileSketch {
        Self::from_slots(values.iter().map(|&x| Slot::of(x)))
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.neg.total().wrapping_add(self.zero).wrapping_add(self.pos.total())
    }

    /// Number of non-empty buckets.
    pub fn buckets(&self) -> usize {
        self.neg.0.len() + self.pos.0.len() + usize::from(self.zero > 0)
    }

    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: &QuantileSketch) {
        self.neg.merge(&other.neg);
        self.zero = self.zero.wrapping_add(other.zero);
        self.pos.merge(&other.pos);
    }

    /// The `q`-quantile (`0 <= q <= 1`): within [`ALPHA`] (relative) of the value at 0-based rank
    /// `floor(q * (n - 1))` of the sorted values. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = (q * (n - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        for &(i, c) in self.neg.0.iter().rev() {
            seen += c;
            if seen > rank {
                return Some(-bucket_value(i));
            }
        }
        seen += self.zero;
        if seen > rank {
            return Some(0.0);
        }
        for &(i, c) in &self.pos.0 {
            seen += c;
            if seen > rank {
                return Some(bucket_value(i));
            }
        }
        self.pos.0.last().map(|&(i, _)| bucket_value(i))
    }

    /// Appends the encoding: varint zero count, then the negative and positive stores, each as
    /// varint bucket count, then per bucket the index (first: zigzag varint; then varint gap to
    /// the previous index) and the varint count.
    pub fn encode(&self, out: &mut Vec<u8>) {
        crate::varint::put(out, self.zero);
        self.neg.encode(out);
        self.pos.encode(out);
    }

    /// Decodes what [`QuantileSketch::encode`] wrote. `None` on malformed input.
    pub fn decode(input: &mut &[u8]) -> Option<QuantileSketch> {
        let zero = crate::varint::get(input)?;
        let neg = Store::decode(input)?;
        let pos = Store::decode(input)?;
        Some(QuantileSketch { neg, zero, pos })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn exact(values: &[f64], q: f64) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v[(q * (v.len() - 1) as f64).floor() as usize]
    }

    #[test]
    fn quantiles_within_one_percent() {
        let values: Vec<f64> = (1..=100_000).map(|i| (i as f64 * 0.37).powf(1.3)).collect();
        let s = QuantileSketch::from_values(&values);
        for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
            let (est, truth) = (s.quantile(q).unwrap(), exact(&values, q));
            assert!((est - truth).abs() <= ALPHA * truth, "q={q} {est} vs {truth}");
        }
        assert!(s.buckets() < 1000);
    }

    #[test]
    fn negatives_and_zero() {
        let values = [-5.0, -1.0, 0.0, 0.0, 3.0];
        let s = QuantileSketch::from_values(&values);
        assert_eq!(s.count(), 5);
        assert!((s.quantile(0.0).unwrap() + 5.0).abs() < 0.05);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!((s.quantile(1.0).unwrap() - 3.0).abs() < 0.03);
        assert_eq!(QuantileSketch::default().quantile(0.5), None);
    }

    #[test]
    fn every_finite_magnitude_has_a_bucket() {
        for x in [f64::MIN_POSITIVE / 1e10, 5e-324, f64::MIN_POSITIVE, 1e-12, 1.0, 1e300, f64::MAX] {
            for v in [x, -x] {
                let s = QuantileSketch::from_values(&[v]);
                assert_eq!(s.zero, 0, "{v}");
                let q = s.quantile(0.5).unwrap();
                // Within 1% wherever the representative is a finite normal number.
                if q.is_finite() && q != 0.0 && v.abs() >= f64::MIN_POSITIVE {
                    assert!((q - v).abs() <= ALPHA * v.abs() * 1.000_001, "{v} -> {q}");
                }
            }
        }
    }

    #[test]
    fn span_is_bounded_by_collapsing() {
        let values = [1e-8, 1e-3, 1.0, 1e10, 1e30];
        let s = QuantileSketch::from_values(&values);
        assert!(s.pos.0.last().unwrap().0 - s.pos.0.first().unwrap().0 < MAX_BUCKETS);
        assert_eq!(s.count(), 5);
        // The top quantile is still accurate.
        assert!((s.quantile(1.0).unwrap() - 1e30).abs() <= ALPHA * 1e30);
    }

    fn values() -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(
            prop_oneof![
                -1e6..1e6f64,
                0.0..10.0f64,
                Just(0.0),
                1e-12..1e-6f64,
                1e20..1e40f64,
                Just(5e-324),
                Just(f64::MAX)
            ],
            0..200,
        )
    }

    proptest! {
        #[test]
        fn merge_equals_sketch_of_concatenation(a in values(), b in values()) {
            let mut m = QuantileSketch::from_values(&a);
            m.merge(&QuantileSketch::from_values(&b));
            let all: Vec<f64> = a.iter().chain(&b).copied().collect();
            prop_assert_eq!(&m, &QuantileSketch::from_values(&all));
            let mut buf = Vec::new();
            m.encode(&mut buf);
            let mut input = buf.as_slice();
            prop_assert_eq!(QuantileSketch::decode(&mut input), Some(m));
            prop_assert!(input.is_empty());
        }
    }
}
