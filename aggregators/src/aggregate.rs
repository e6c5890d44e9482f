//! Batch aggregation (pure): a batch's valid events -> one delta per key, with enough kept to
//! recompute any key's delta from the records above a sequence number.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sluice_bytescan::short_eq;
use sluice_schemas::Instant;

use crate::key::{AggKey, DimRef, DimValue};
use crate::quantiles::Slot;
use crate::state::{AggState, Observation, StateBuilder};
use crate::window::WindowConfig;
use sluice_stream::SequenceNumber;

/// A fast non-cryptographic hasher (FxHash) for in-memory maps keyed by trusted-size data.
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut buf = [0u8; 8];
            buf[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = BuildHasherDefault<FxHasher>;

/// One valid event as the aggregator needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution<'a> {
    pub event_type: std::borrow::Cow<'a, str>,
    pub occurred_at: Instant,
    pub received_at: Instant,
    /// Dimension values in schema order.
    pub dims: Vec<DimRef<'a>>,
    pub obs: Observation,
}

impl Contribution<'_> {
    /// A placeholder (no type, epoch times, no dimensions) to decode into
    /// ([`crate::decode::Decoder::decode_into`]).
    pub fn empty() -> Self {
        Contribution {
            event_type: std::borrow::Cow::Borrowed(""),
            occurred_at: Instant::default(),
            received_at: Instant::default(),
            dims: Vec::new(),
            obs: Observation { measure: None, identity: None },
        }
    }
}

/// The delta of one key in one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDelta {
    pub key: AggKey,
    /// Lowest and highest sequence number of the records in this delta.
    pub first_seq: SequenceNumber,
    pub last_seq: SequenceNumber,
    pub state: AggState,
}

#[derive(Debug, Clone, PartialEq)]
struct RecordObs {
    seq: SequenceNumber,
    obs: Observation,
    slot: Option<Slot>,
    /// Range into `record_keys`.
    keys: std::ops::Range<u32>,
}

struct KeySlot {
    group: u32,
    window: u8,
    start: i64,
    first_seq: SequenceNumber,
    last_seq: SequenceNumber,
    builder: StateBuilder,
}

/// Accumulates one shard's batch. Records may come in any order; the guard logic only needs
/// each key's min/max sequence number and the per-record contributions.
pub struct BatchAggregator {
    config: WindowConfig,
    groups: Vec<(String, Vec<DimValue>)>,
    group_index: HashMap<u64, Vec<u32>, FxBuild>,
    keys: Vec<KeySlot>,
    key_index: HashMap<(u32, u8, i64), u32, FxBuild>,
    /// Per (group, window): the last (window start, key) used, so consecutive events of a
    /// group in the same window skip the key map.
    last_key: Vec<(i64, u32)>,
    records: Vec<RecordObs>,
    record_keys: Vec<(u32, bool)>,
}

impl std::fmt::Debug for BatchAggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchAggregator").field("keys", &self.keys.len()).field("records", &self.records.len()).finish()
    }
}

impl BatchAggregator {
    pub fn new(config: WindowConfig) -> Self {
        Self::with_capacity(config, 0)
    }

    /// [`BatchAggregator::new`], with room for `events` events (no regrowth up to there).
    pub fn with_capacity(config: WindowConfig, events: usize) -> Self {
        let record_keys = Vec::with_capacity(events.saturating_mul(config.windows.len()));
        BatchAggregator {
            records: Vec::with_capacity(events),
            record_keys,
            config,
            groups: Vec::new(),
            group_index: HashMap::default(),
            keys: Vec::new(),
            key_index: HashMap::default(),
            last_key: Vec::new(),
        }
    }

    fn group_of(&mut self, event_type: &str, dims: &[DimRef<'_>]) -> u32 {
        let mut h = FxHasher::default();
        h.write(event_type.as_bytes());
        for d in dims {
            d.hash_into(&mut h);
        }
        let hash = h.finish();
        let candidates = self.group_index.entry(hash).or_default();
        for &g in candidates.iter() {
            let (t, vals) = &self.groups[g as usize];
            if short_eq(t.as_bytes(), event_type.as_bytes())
                && vals.len() == dims.len()
                && dims.iter().zip(vals).all(|(d, v)| d.matches(v))
            {
                return g;
            }
        }
        let g = self.groups.len() as u32;
        self.groups.push((event_type.to_owned(), dims.iter().map(DimRef::to_owned_value).collect()));
        candidates.push(g);
        self.last_key.extend(std::iter::repeat_n((i64::MIN, u32::MAX), self.config.windows.len()));
        g
    }

    /// Adds one valid event with stream sequence number `seq`.
    pub fn add(&mut self, seq: SequenceNumber, c: &Contribution<'_>) {
        let group = self.group_of(&c.event_type, &c.dims);
        let slot = c.obs.measure.map(Slot::of);
        let begin = self.record_keys.len() as u32;
        for wi in 0..self.config.windows.len() {
            let w = self.config.windows[wi];
            let start = w.start_of(c.occurred_at);
            let late = self.config.is_late(w, c.occurred_at, c.received_at);
            let next = self.keys.len() as u32;
            let cache = group as usize * self.config.windows.len() + wi;
            let k = match self.last_key.get(cache) {
                Some(&(s, k)) if s == start => k,
                _ => {
                    let k = *self.key_index.entry((group, wi as u8, start)).or_insert(next);
                    if let Some(c) = self.last_key.get_mut(cache) {
                        *c = (start, k);
                    }
                    k
                }
            };
            if k == next {
                self.keys.push(KeySlot {
                    group,
                    window: wi as u8,
                    start,
                    first_seq: seq,
                    last_seq: seq,
                    builder: StateBuilder::default(),
                });
            }
            let slotref = &mut self.keys[k as usize];
            slotref.first_seq = slotref.first_seq.min(seq);
            slotref.last_seq = slotref.last_seq.max(seq);
            slotref.builder.add(&c.obs, slot, late);
            self.record_keys.push((k, late));
        }
        self.records.push(RecordObs { seq, obs: c.obs, slot, keys: begin..self.record_keys.len() as u32 });
    }

    /// Number of events added.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no event was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The deltas, one per key, in first-seen order.
    pub fn finish(self) -> BatchDelta {
        let deltas = self
            .keys
            .into_iter()
            .map(|k| {
                let (event_type, dims) = &self.groups[k.group as usize];
                KeyDelta {
                    key: AggKey {
                        event_type: event_type.clone(),
                        window: self.config.windows[k.window as usize],
                        window_start: k.start,
                        dims: dims.clone(),
                    },
                    first_seq: k.first_seq,
                    last_seq: k.last_seq,
                    state: k.builder.finish(),
                }
            })
            .collect();
        BatchDelta { deltas, records: self.records, record_keys: self.record_keys }
    }
}

/// One batch's deltas (see [`BatchAggregator`]).
#[derive(Debug, PartialEq)]
pub struct BatchDelta {
    pub deltas: Vec<KeyDelta>,
    records: Vec<RecordObs>,
    record_keys: Vec<(u32, bool)>,
}

impl BatchDelta {
    /// Number of events aggregated.
    pub fn event_count(&self) -> usize {
        self.records.len()
    }

    /// The delta of key number `key` over only the records with a sequence number above
    /// `guard`: `None` when no such record touches the key (all already applied).
    pub fn delta_above(&self, key: usize, guard: SequenceNumber) -> Option<KeyDelta> {
        self.delta_between(key, guard, SequenceNumber::MAX)
    }

    /// The delta of key number `key` over only the records with a sequence number in
    /// `(above, upto]`: `None` when no such record touches the key.
    pub fn delta_between(&self, key: usize, above: SequenceNumber, upto: SequenceNumber) -> Option<KeyDelta> {
        let d = self.deltas.get(key)?;
        if d.last_seq <= above || d.first_seq > upto {
            return None;
        }
        if d.first_seq > above && d.last_seq <= upto {
            return Some(d.clone());
        }
        let mut b = StateBuilder::default();
        let (mut first, mut last) = (SequenceNumber::MAX, SequenceNumber::ZERO);
        for r in self.records.iter().filter(|r| r.seq > above && r.seq <= upto) {
            let span = r.keys.start as usize..r.keys.end as usize;
            for &(k, late) in &self.record_keys[span] {
                if k as usize == key {
                    b.add(&r.obs, r.slot, late);
                    first = first.min(r.seq);
                    last = last.max(r.seq);
                }
            }
        }
        (first <= last).then(|| KeyDelta { key: d.key.clone(), first_seq: first, last_seq: last, state: b.finish() })
    }
}
