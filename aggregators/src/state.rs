//! The mergeable aggregate state of one key, and its versioned binary encoding.

use crate::hll::{self, Hll};
use crate::quantiles::{QuantileSketch, Slot};
use crate::varint;

/// First byte of every encoded state.
pub const ENCODING_VERSION: u8 = 1;

/// Upper bound of [`AggState::encode`]'s output: 62 header bytes, the HLL (at most
/// 1 + max(~6.2 KB sparse, 10240 dense) bytes) and the quantile sketch (at most
/// 10 + 2 * (5 + 2048 * (5 + 10)) bytes): under 84 KiB, far below DynamoDB's 400 KB item limit.
/// Typical states are 0.1-3 KB (sparse HLL, a few hundred buckets); a dense HLL adds 10 KB.
pub const MAX_ENCODED_BYTES: usize = 86_016;

/// Count, sum/min/max of the measure, distinct identities and quantiles of the measure, plus the
/// number of late events. Merge is exactly associative and commutative: the sum is an exact
/// integer of millionths ([`SumMicros`]), which cannot overflow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AggState {
    /// Events counted.
    pub count: u64,
    /// Events that arrived after their window's lateness deadline.
    pub late: u64,
    /// Sum of the measure in millionths of its unit, exact.
    pub sum_micros: SumMicros,
    /// Minimum and maximum of the measure (`None` if no event carried one).
    pub min_max: Option<(f64, f64)>,
    /// Distinct identities.
    pub distinct: Hll,
    /// Quantiles of the measure.
    pub quantiles: QuantileSketch,
}

/// One event's contribution, as the decoder extracts it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    /// The measure, if the schema declares one (finite).
    pub measure: Option<f64>,
    /// [`hll::fingerprint`] of the identity, if the schema declares one.
    pub identity: Option<u32>,
}

pub use sluice_schemas::registry::MEASURE_LIMIT;

/// The measure in millionths: `round(x * 1e6)` in f64, half away from zero (to the millionth
/// for `|x|` below ~9e9, to f64's 16 significant digits above). Below 2^120 for every
/// measure validation accepts (`|x| <=` [`MEASURE_LIMIT`]); saturating beyond.
pub fn to_micros(x: f64) -> i128 {
    (x * 1e6).round() as i128
}

/// An exact sum of millionths: a 192-bit two's-complement integer (`hi * 2^128 + lo`). Adding
/// is exact for any `2^64` terms of magnitude below `2^127`, so sums are never wrapped,
/// saturated or rounded, and merging is exactly associative and commutative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SumMicros {
    hi: i64,
    lo: u128,
}

impl SumMicros {
    /// The sum of the one term `v`.
    pub fn of(v: i128) -> SumMicros {
        SumMicros { hi: if v < 0 { -1 } else { 0 }, lo: v as u128 }
    }

    /// Adds one term.
    #[inline]
    pub fn add(&mut self, v: i128) {
        self.add_sum(SumMicros::of(v));
    }

    /// Adds another sum.
    #[inline]
    pub fn add_sum(&mut self, other: SumMicros) {
        let (lo, carry) = self.lo.overflowing_add(other.lo);
        self.lo = lo;
        self.hi = self.hi.wrapping_add(other.hi).wrapping_add(i64::from(carry));
    }

    /// The value when it fits an i128 (always, short of 2^64 terms near the limit).
    pub fn to_i128(self) -> Option<i128> {
        let v = self.lo as i128;
        (SumMicros::of(v) == self).then_some(v)
    }

    /// The sum in units (`/ 1e6`), rounded to the nearest f64.
    pub fn to_units(self) -> f64 {
        match self.to_i128() {
            Some(v) => v as f64 / 1e6,
            None => (self.hi as f64 * 2f64.powi(128) + self.lo as f64) / 1e6,
        }
    }
}

/// Accumulates observations cheaply; [`StateBuilder::finish`] builds the sketches once.
#[derive(Debug, Default, Clone)]
pub struct StateBuilder {
    count: u64,
    late: u64,
    sum_micros: SumMicros,
    min_max: Option<(f64, f64)>,
    fingerprints: Vec<u32>,
    slots: Vec<Slot>,
}

impl StateBuilder {
    /// Adds one event; `slot` must be `Slot::of(measure)` (computed once for all windows).
    pub fn add(&mut self, obs: &Observation, slot: Option<Slot>, late: bool) {
        self.count += 1;
        self.late += u64::from(late);
        if let Some(x) = obs.measure {
            let x = if x == 0.0 { 0.0 } else { x }; // -0.0 -> 0.0: min/max stay order-free
            self.sum_micros.add(to_micros(x));
            self.min_max = Some(match self.min_max {
                None => (x, x),
                Some((lo, hi)) => (lo.min(x), hi.max(x)),
            });
            self.slots.push(slot.unwrap_or_else(|| Slot::of(x)));
        }
        if let Some(fp) = obs.identity {
            self.fingerprints.push(fp);
        }
    }

    /// The state of everything added.
    pub fn finish(self) -> AggState {
        AggState {
            count: self.count,
            late: self.late,
            sum_micros: self.sum_micros,
            min_max: self.min_max,
            distinct: Hll::from_fingerprints(self.fingerprints),
            quantiles: QuantileSketch::from_slots(self.slots),
        }
    }
}

/// Why stored bytes are not a state. Not retryable: the item is corrupt or from a newer writer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeStateError {
    #[error("aggregate state has encoding version {0}, this build reads version {ENCODING_VERSION}")]
    UnknownVersion(u8),
    #[error("aggregate state is malformed")]
    Malformed,
}

impl AggState {
    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: &AggState) {
        self.count = self.count.wrapping_add(other.count);
        self.late = self.late.wrapping_add(other.late);
        self.sum_micros.add_sum(other.sum_micros);
        self.min_max = match (self.min_max, other.min_max) {
            (None, x) | (x, None) => x,
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
        };
        self.distinct.merge(&other.distinct);
        self.quantiles.merge(&other.quantiles);
    }

    /// Sum of the measure (`None` if no event carried one), exact to f64 precision.
    pub fn sum(&self) -> Option<f64> {
        self.min_max.map(|_| self.sum_micros.to_units())
    }

    /// The `q`-quantile of the measure (`None` if no event carried one): the sketch's estimate
    /// (within [`crate::quantiles::ALPHA`] of the value at that rank) clamped into the exact
    /// `[min, max]`, so it is always finite, and a one-value bucket reports that value.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let (lo, hi) = self.min_max?;
        Some(self.quantiles.quantile(q).unwrap_or(lo).clamp(lo, hi))
    }

    /// Distinct identities: the sketch's estimate, never more than the events counted.
    pub fn distinct(&self) -> u64 {
        self.distinct.estimate().min(self.count)
    }

    /// Encodes as: version byte, flags (bit 0: measure present; bit 1: the sum needs more than
    /// 128 bits), varint count, varint late, [sum: i128 LE (its low 128 bits), with bit 1 also
    /// the high 64 bits as i64 LE; min f64 LE, max f64 LE; if measure], HLL ([`Hll::encode`]),
    /// quantile sketch ([`QuantileSketch::encode`]). At most [`MAX_ENCODED_BYTES`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(ENCODING_VERSION);
        let wide = self.sum_micros.to_i128().is_none();
        out.push(u8::from(self.min_max.is_some()) | (u8::from(wide && self.min_max.is_some()) << 1));
        varint::put(&mut out, self.count);
        varint::put(&mut out, self.late);
        if let Some((lo, hi)) = self.min_max {
            out.extend_from_slice(&self.sum_micros.lo.to_le_bytes());
            if wide {
                out.extend_from_slice(&self.sum_micros.hi.to_le_bytes());
            }
            out.extend_from_slice(&lo.to_le_bytes());
            out.extend_from_slice(&hi.to_le_bytes());
        }
        self.distinct.encode(&mut out);
        self.quantiles.encode(&mut out);
        out
    }

    /// Decodes [`AggState::encode`] output; never panics.
    pub fn decode(bytes: &[u8]) -> Result<AggState, DecodeStateError> {
        let (&version, mut input) = bytes.split_first().ok_or(DecodeStateError::Malformed)?;
        if version != ENCODING_VERSION {
            return Err(DecodeStateError::UnknownVersion(version));
        }
        Self::decode_v1(&mut input).filter(|_| input.is_empty()).ok_or(DecodeStateError::Malformed)
    }

    fn decode_v1(input: &mut &[u8]) -> Option<AggState> {
        let flags = varint::bytes::<1>(input)?[0];
        if flags > 3 || flags == 2 {
            return None;
        }
        let count = varint::get(input)?;
        let late = varint::get(input)?;
        let (sum_micros, min_max) = if flags & 1 == 1 {
            let low = i128::from_le_bytes(varint::bytes::<16>(input)?);
            let sum = if flags & 2 == 2 {
                let hi = i64::from_le_bytes(varint::bytes::<8>(input)?);
                let sum = SumMicros { hi, lo: low as u128 };
                // The wide form only for a sum that needs it: one encoding per state.
                if sum.to_i128().is_some() {
                    return None;
                }
                sum
            } else {
                SumMicros::of(low)
            };
            let lo = f64::from_le_bytes(varint::bytes::<8>(input)?);
            let hi = f64::from_le_bytes(varint::bytes::<8>(input)?);
            (sum, Some((lo, hi)))
        } else {
            (SumMicros::default(), None)
        };
        let distinct = Hll::decode(input)?;
        let quantiles = QuantileSketch::decode(input)?;
        Some(AggState { count, late, sum_micros, min_max, distinct, quantiles })
    }
}

/// Re-exported for callers computing identities.
pub use hll::fingerprint;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn obs_strategy() -> impl Strategy<Value = (Option<f64>, Option<u32>, bool)> {
        (
            proptest::option::of(prop_oneof![-1e6..1e6f64, 0.0..5.0f64, Just(-0.0), Just(0.0)]),
            proptest::option::of(0u32..5000),
            any::<bool>(),
        )
    }

    fn build(items: &[(Option<f64>, Option<u32>, bool)]) -> AggState {
        let mut b = StateBuilder::default();
        for &(measure, identity, late) in items {
            b.add(&Observation { measure, identity }, None, late);
        }
        b.finish()
    }

    fn roundtrip(s: &AggState) -> AggState {
        let bytes = s.encode();
        assert!(bytes.len() <= MAX_ENCODED_BYTES);
        AggState::decode(&bytes).unwrap()
    }

    fn merged(a: &AggState, b: &AggState) -> AggState {
        let mut m = a.clone();
        m.merge(b);
        m
    }

    proptest! {
        #[test]
        fn merge_laws(a in proptest::collection::vec(obs_strategy(), 0..60),
                      b in proptest::collection::vec(obs_strategy(), 0..60),
                      c in proptest::collection::vec(obs_strategy(), 0..60)) {
            let (sa, sb, sc) = (build(&a), build(&b), build(&c));
            // commutative
            prop_assert_eq!(merged(&sa, &sb), merged(&sb, &sa));
            // associative
            prop_assert_eq!(merged(&merged(&sa, &sb), &sc), merged(&sa, &merged(&sb, &sc)));
            // identity
            prop_assert_eq!(merged(&sa, &AggState::default()), sa.clone());
            // merge of parts = state of the whole
            let all: Vec<_> = a.iter().chain(&b).chain(&c).copied().collect();
            prop_assert_eq!(merged(&merged(&sa, &sb), &sc), build(&all));
            // the laws hold on encoded-decoded states too
            let (ra, rb, rc) = (roundtrip(&sa), roundtrip(&sb), roundtrip(&sc));
            prop_assert_eq!(&ra, &sa);
            prop_assert_eq!(merged(&merged(&ra, &rb), &rc), merged(&rc, &merged(&rb, &ra)));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = AggState::decode(&bytes);
            let mut with_version = vec![ENCODING_VERSION];
            with_version.extend(bytes);
            let _ = AggState::decode(&with_version);
        }
    }

    /// Finite measures validation accepts, extremes included.
    fn measure() -> impl Strategy<Value = f64> {
        prop_oneof![
            -1e6..1e6f64,
            Just(0.0),
            Just(-0.0),
            Just(5e-324),
            Just(-f64::MIN_POSITIVE),
            Just(MEASURE_LIMIT),
            Just(-MEASURE_LIMIT),
            (-MEASURE_LIMIT..MEASURE_LIMIT),
            (1e-12..1e-3f64),
            (1e20..1e30f64).prop_map(|x| -x),
        ]
    }

    /// `sum` as 64-bit limbs `(upper, low)`, `upper * 2^64 + low`, `low < 2^64`.
    fn limbs(sum: SumMicros) -> (i128, u128) {
        ((i128::from(sum.hi) << 64) + (sum.lo >> 64) as i128, sum.lo & u128::from(u64::MAX))
    }

    fn state_of(values: &[f64]) -> AggState {
        build(&values.iter().map(|&x| (Some(x), None, false)).collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn sums_are_exact(values in proptest::collection::vec(measure(), 1..300), split in 0usize..300) {
            // Reference: the same terms summed as 64-bit limbs in i128 (no term or limb sum
            // can overflow there), independent of SumMicros' carry arithmetic.
            let (mut upper, mut low) = (0i128, 0i128);
            for &x in &values {
                let t = to_micros(if x == 0.0 { 0.0 } else { x });
                upper += t.div_euclid(1 << 64);
                low += t.rem_euclid(1 << 64);
            }
            upper += low.div_euclid(1 << 64);
            let low = low.rem_euclid(1 << 64) as u128;
            let whole = state_of(&values);
            prop_assert_eq!(limbs(whole.sum_micros), (upper, low));
            // Merging parts gives the same exact sum, also through the encoding.
            let (a, b) = values.split_at(split.min(values.len()));
            let merged = merged(&roundtrip(&state_of(a)), &roundtrip(&state_of(b)));
            prop_assert_eq!(merged.sum_micros, whole.sum_micros);
            // The reported sum is the rational sum to f64 precision (plus the millionth rounding).
            let exact: f64 = values.iter().sum();
            let scale: f64 = values.iter().map(|x| x.abs()).sum();
            let got = whole.sum().unwrap();
            prop_assert!((got - exact).abs() <= scale * 1e-12 + values.len() as f64 * 1e-6, "{got} vs {exact}");
        }

        #[test]
        fn quantiles_stay_within_min_and_max(values in proptest::collection::vec(measure(), 1..200)) {
            let s = state_of(&values);
            let (lo, hi) = s.min_max.unwrap();
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                let v = s.quantile(q).unwrap();
                prop_assert!(v.is_finite() && lo <= v && v <= hi, "q={q}: {v} not in [{lo}, {hi}]");
            }
            let again = roundtrip(&s);
            prop_assert_eq!(again.quantile(0.5), s.quantile(0.5));
        }

        #[test]
        fn quantiles_are_within_the_sketch_error(
            base in 1e-300..1e290f64,
            factors in proptest::collection::vec(1.0..1e15f64, 1..200),
        ) {
            // Positive values spanning less than the sketch's bucket range: no collapse.
            let values: Vec<f64> = factors.iter().map(|f| base * f).collect();
            let s = state_of(&values);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.5, 0.9, 0.99, 1.0] {
                let exact = sorted[(q * (sorted.len() - 1) as f64).floor() as usize];
                let v = s.quantile(q).unwrap();
                prop_assert!((v - exact).abs() <= crate::quantiles::ALPHA * exact * 1.000_001, "q={q}: {v} vs {exact}");
            }
        }

        #[test]
        fn a_one_value_bucket_reports_that_value(x in measure(), n in 1usize..5) {
            let x = if x == 0.0 { 0.0 } else { x };
            let s = state_of(&vec![x; n]);
            for q in [0.5, 0.9, 0.99] {
                prop_assert_eq!(s.quantile(q), Some(x));
            }
            prop_assert_eq!(s.min_max, Some((x, x)));
        }

        #[test]
        fn distinct_never_exceeds_count_and_sees_every_identity(ids in proptest::collection::vec(".*", 1..300)) {
            let mut b = StateBuilder::default();
            for id in &ids {
                b.add(&Observation { measure: None, identity: Some(fingerprint(id.as_bytes())) }, None, false);
            }
            let s = b.finish();
            let unique = ids.iter().collect::<std::collections::BTreeSet<_>>().len() as u64;
            let d = s.distinct();
            prop_assert!(d >= 1 && d <= s.count, "{d} of {}", s.count);
            // Small sets are counted almost exactly (sparse linear counting).
            prop_assert!(d.abs_diff(unique) <= 1 + unique / 50, "{d} vs {unique}");
        }
    }

    #[test]
    fn huge_sums_carry_beyond_128_bits_and_roundtrip() {
        let mut s = state_of(&[MEASURE_LIMIT; 200]);
        assert!(s.sum_micros.to_i128().is_none(), "200 * 1e36 millionths needs more than 128 bits");
        assert_eq!(roundtrip(&s), s);
        let expected = 200.0 * MEASURE_LIMIT;
        assert!((s.sum().unwrap() - expected).abs() <= expected * 1e-12);
        // Adding the negatives brings it back to exactly zero.
        s.merge(&state_of(&[-MEASURE_LIMIT; 200]));
        assert_eq!(s.sum_micros, SumMicros::default());
        assert_eq!(s.sum(), Some(0.0));
        // A wide flag on a sum that fits is refused: one encoding per state.
        let mut bytes = state_of(&[1.0]).encode();
        bytes[1] |= 2;
        bytes.splice(2 + 2 + 16..2 + 2 + 16, 0i64.to_le_bytes());
        assert_eq!(AggState::decode(&bytes), Err(DecodeStateError::Malformed));
    }

    #[test]
    fn worst_case_size_is_bounded() {
        // Dense HLL + two full-span stores with huge counts.
        let mut s = build(&[(Some(1.0), Some(1), false)]);
        s.distinct = Hll::from_fingerprints((0..10_000u32).map(|i| i.wrapping_mul(2_654_435_761)).collect());
        let mut values: Vec<f64> = Vec::new();
        let g: f64 = (1.01f64) / 0.99;
        for i in 0..2048 {
            values.push(g.powi(i) * 1.0001);
            values.push(-g.powi(i) * 1.0001);
        }
        s.quantiles = QuantileSketch::from_values(&values);
        for _ in 0..40 {
            let q = s.quantiles.clone();
            s.quantiles.merge(&q);
        }
        s.count = u64::MAX;
        s.late = u64::MAX;
        let bytes = s.encode();
        assert!(bytes.len() <= MAX_ENCODED_BYTES, "{}", bytes.len());
        assert_eq!(AggState::decode(&bytes).unwrap(), s);
    }

    #[test]
    fn versions_are_checked() {
        let mut bytes = AggState::default().encode();
        assert_eq!(AggState::decode(&bytes).unwrap(), AggState::default());
        bytes[0] = 9;
        assert_eq!(AggState::decode(&bytes), Err(DecodeStateError::UnknownVersion(9)));
        assert_eq!(AggState::decode(&[]), Err(DecodeStateError::Malformed));
    }
}
