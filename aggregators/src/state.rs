//! The mergeable aggregate state of one key, and its versioned binary encoding.

use crate::hll::{self, Hll};
use crate::quantiles::{QuantileSketch, Slot};
use crate::varint;

/// First byte of every encoded state.
pub const ENCODING_VERSION: u8 = 1;

/// Upper bound of [`AggState::encode`]'s output: 40 header bytes, the HLL (at most
/// 1 + max(~6.2 KB sparse, 10240 dense) bytes) and the quantile sketch (at most
/// 10 + 2 * (5 + 2048 * (5 + 10)) bytes): under 84 KiB, far below DynamoDB's 400 KB item limit.
/// Typical states are 0.1-3 KB (sparse HLL, a few hundred buckets); a dense HLL adds 10 KB.
pub const MAX_ENCODED_BYTES: usize = 86_016;

/// Count, sum/min/max of the measure, distinct identities and quantiles of the measure, plus the
/// number of late events. Merge is associative and commutative (exactly: the sum is kept in
/// integer millionths, wrapping in the impossible case of overflow).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AggState {
    /// Events counted.
    pub count: u64,
    /// Events that arrived after their window's lateness deadline.
    pub late: u64,
    /// Sum of the measure in millionths of its unit.
    pub sum_micros: i128,
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

/// The measure in millionths (rounded; saturating at ±1.7e32 units).
pub fn to_micros(x: f64) -> i128 {
    (x * 1e6).round() as i128
}

/// Accumulates observations cheaply; [`StateBuilder::finish`] builds the sketches once.
#[derive(Debug, Default, Clone)]
pub struct StateBuilder {
    count: u64,
    late: u64,
    sum_micros: i128,
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
            self.sum_micros = self.sum_micros.wrapping_add(to_micros(x));
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
        self.sum_micros = self.sum_micros.wrapping_add(other.sum_micros);
        self.min_max = match (self.min_max, other.min_max) {
            (None, x) | (x, None) => x,
            (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
        };
        self.distinct.merge(&other.distinct);
        self.quantiles.merge(&other.quantiles);
    }

    /// Sum of the measure (`None` if no event carried one).
    pub fn sum(&self) -> Option<f64> {
        self.min_max.map(|_| self.sum_micros as f64 / 1e6)
    }

    /// Encodes as: version byte, flags (bit 0: measure present), varint count, varint late,
    /// [sum i128 LE, min f64 LE, max f64 LE if measure], HLL ([`Hll::encode`]), quantile sketch
    /// ([`QuantileSketch::encode`]). At most [`MAX_ENCODED_BYTES`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.push(ENCODING_VERSION);
        out.push(u8::from(self.min_max.is_some()));
        varint::put(&mut out, self.count);
        varint::put(&mut out, self.late);
        if let Some((lo, hi)) = self.min_max {
            out.extend_from_slice(&self.sum_micros.to_le_bytes());
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
        if flags > 1 {
            return None;
        }
        let count = varint::get(input)?;
        let late = varint::get(input)?;
        let (sum_micros, min_max) = if flags == 1 {
            let sum = i128::from_le_bytes(varint::bytes::<16>(input)?);
            let lo = f64::from_le_bytes(varint::bytes::<8>(input)?);
            let hi = f64::from_le_bytes(varint::bytes::<8>(input)?);
            (sum, Some((lo, hi)))
        } else {
            (0, None)
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
