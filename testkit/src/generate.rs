//! Deterministic (seeded) generator of valid sluice events, Kinesis-shaped batches of them, and
//! the exact ground truth of their aggregates (computed independently of sluice-aggregators).
//!
//! Default mix: 60% `page_view` (90% v2, 10% v1), 25% `api_call`, 15% `purchase`, and no
//! `order_placed` (the nested type: give it a weight in [`GenConfig::mix`]; a zero weight draws
//! nothing, so the seeded streams of the flat types do not change); 20,000 users with a skewed
//! (Zipf-like) activity; 12 countries (skewed), 4 devices, 8 routes, a realistic status mix;
//! log-normal durations, latencies, amounts and line-item counts; skewed SKUs; event time
//! advancing at `events_per_second` from `start`; 1% of events received 10 minutes late. Same
//! seed, same events (for a given `rand` version).

use std::collections::{BTreeMap, HashSet};

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use sluice_schemas::{Event, Registry};

/// Generator settings.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    /// Event time of the first event.
    pub start: DateTime<Utc>,
    /// Event-time rate: event `i` occurs near `start + i / events_per_second`.
    pub events_per_second: f64,
    /// Relative weights of page_view, api_call, purchase, order_placed.
    pub mix: [u32; 4],
    /// Number of distinct users / API clients.
    pub users: u32,
    /// Fraction of events received `late_delay` after they occurred (else 20-500 ms).
    pub late_fraction: f64,
    pub late_delay: TimeDelta,
    /// The producer id stamped on every event.
    pub producer: String,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            start: DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default(), // 2026-01-01
            events_per_second: 2_000.0,
            mix: [60, 25, 15, 0],
            users: 20_000,
            late_fraction: 0.01,
            late_delay: TimeDelta::minutes(10),
            producer: "loadgen".to_owned(),
        }
    }
}

const COUNTRIES: &[(&str, u32, &str)] = &[
    ("US", 30, "USD"),
    ("DE", 12, "EUR"),
    ("GB", 10, "GBP"),
    ("FR", 9, "EUR"),
    ("IN", 8, "INR"),
    ("BR", 7, "BRL"),
    ("JP", 6, "JPY"),
    ("CA", 5, "CAD"),
    ("ES", 4, "EUR"),
    ("NL", 4, "EUR"),
    ("SE", 3, "EUR"),
    ("AU", 2, "AUD"),
];
const DEVICES: &[(&str, u32)] = &[("web", 45), ("ios", 25), ("android", 25), ("tv", 5)];
const ROUTES: &[(&str, u32)] = &[
    ("GET /v1/items", 30),
    ("GET /v1/items/{id}", 25),
    ("POST /v1/items", 8),
    ("GET /v1/users/{id}", 12),
    ("PUT /v1/users/{id}", 5),
    ("GET /v1/search", 12),
    ("POST /v1/orders", 5),
    ("DELETE /v1/items/{id}", 3),
];
const STATUSES: &[(i64, u32)] = &[(200, 85), (201, 4), (204, 2), (400, 3), (401, 1), (404, 3), (429, 1), (500, 1)];
const PAGES: &[&str] = &["/", "/search", "/items", "/item", "/cart", "/checkout", "/account"];
const CHANNELS: &[(&str, u32)] = &[("web", 50), ("ios", 20), ("android", 20), ("pos", 10)];
const QUANTITIES: &[(i64, u32)] = &[(1, 60), (2, 25), (3, 10), (5, 4), (12, 1)];
const COUPONS: &[(&str, u32)] = &[("SAVE10", 5), ("WELCOME", 3), ("SPRING24", 2)];
/// Distinct SKUs of `order_placed` items (skewed: low numbers sell most).
const SKUS: u32 = 5_000;

fn pick<T: Copy>(rng: &mut StdRng, items: &[(T, u32)]) -> T {
    let total: u32 = items.iter().map(|(_, w)| *w).sum();
    let mut x = rng.random_range(0..total.max(1));
    for (v, w) in items {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    items[0].0
}

fn lognormal(rng: &mut StdRng, mu: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    (mu + sigma * z).exp()
}

fn round_to(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// The event generator (see the module docs).
#[derive(Debug)]
pub struct Generator {
    cfg: GenConfig,
    rng: StdRng,
    n: u64,
}

impl Generator {
    pub fn new(cfg: GenConfig) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Generator { cfg, rng, n: 0 }
    }

    /// Number of events generated so far.
    pub fn generated(&self) -> u64 {
        self.n
    }

    fn user(&mut self) -> String {
        // Skewed activity: u^2 favours low ids.
        let u: f64 = self.rng.random();
        let id = ((u * u) * f64::from(self.cfg.users.max(1))) as u32;
        format!("u{id:06}")
    }

    /// The next valid event.
    pub fn next_event(&mut self) -> Event {
        let i = self.n;
        self.n += 1;
        let jitter: f64 = self.rng.random_range(-0.5..0.5);
        let offset_us = ((i as f64 + jitter) / self.cfg.events_per_second * 1e6).max(0.0) as i64;
        let occurred_at = (self.cfg.start + TimeDelta::microseconds(offset_us)).trunc_subsecs(6);
        let delay = if self.rng.random_bool(self.cfg.late_fraction.clamp(0.0, 1.0)) {
            self.cfg.late_delay
        } else {
            TimeDelta::milliseconds(self.rng.random_range(20..500))
        };
        let received_at = (occurred_at + delay).trunc_subsecs(6);
        let weights = self.cfg.mix;
        let kind = pick(&mut self.rng, &[(0u8, weights[0]), (1, weights[1]), (2, weights[2]), (3, weights[3])]);
        let country_item = {
            let items: Vec<((&str, &str), u32)> = COUNTRIES.iter().map(|(c, w, cur)| ((*c, *cur), *w)).collect();
            pick(&mut self.rng, &items)
        };
        let (event_type, schema_version, data) = match kind {
            0 => {
                let v2 = self.rng.random_bool(0.9);
                let user = self.user();
                let mut data = json!({
                    "user_id": user,
                    "session_id": format!("s{:08x}", self.rng.random::<u32>()),
                    "page": PAGES[self.rng.random_range(0..PAGES.len())],
                    "device": pick(&mut self.rng, DEVICES),
                    "country": country_item.0,
                    "duration_ms": round_to(lognormal(&mut self.rng, 8.0, 1.0), 1),
                });
                if self.rng.random_bool(0.3) {
                    data["referrer"] = json!("https://search.example.com/?q=sluice");
                }
                if v2 {
                    data["app_version"] = json!(format!("3.{}.0", self.rng.random_range(0..5)));
                }
                ("page_view", if v2 { 2 } else { 1 }, data)
            }
            1 => {
                let client = format!("c{:04}", self.rng.random_range(0..(self.cfg.users / 20).max(1)));
                let data = json!({
                    "client_id": client,
                    "route": pick(&mut self.rng, ROUTES),
                    "status": pick(&mut self.rng, STATUSES),
                    "latency_ms": round_to(lognormal(&mut self.rng, 3.5, 0.8), 3),
                });
                ("api_call", 1, data)
            }
            2 => {
                let user = self.user();
                let data = json!({
                    "user_id": user,
                    "order_id": format!("o{:010}", self.rng.random::<u32>()),
                    "amount": round_to(lognormal(&mut self.rng, 3.8, 0.9), 2),
                    "currency": country_item.1,
                    "country": country_item.0,
                });
                ("purchase", 1, data)
            }
            _ => ("order_placed", 1, self.order(occurred_at, country_item.0)),
        };
        let id_bytes: [u8; 16] = self.rng.random();
        let event_id = uuid::Builder::from_random_bytes(id_bytes).into_uuid().to_string();
        let data = match data {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Event {
            event_id,
            event_type: event_type.to_owned(),
            schema_version,
            occurred_at,
            received_at,
            producer: self.cfg.producer.clone(),
            data,
        }
    }

    /// The data of an `order_placed` placed in `country` shortly before `occurred_at`.
    fn order(&mut self, occurred_at: DateTime<Utc>, country: &str) -> Value {
        let user = self.user();
        let channel = pick(&mut self.rng, CHANNELS);
        let mut context = json!({"country": country, "channel": channel});
        if matches!(channel, "ios" | "android") {
            context["app_version"] =
                json!(format!("5.{}.{}", self.rng.random_range(0..4), self.rng.random_range(0..10)));
        }
        let lines = 1 + (lognormal(&mut self.rng, 0.3, 0.9) as usize).min(99);
        let mut total = 0.0;
        let items: Vec<Value> = (0..lines)
            .map(|_| {
                let u: f64 = self.rng.random();
                let sku = ((u * u * u) * f64::from(SKUS)) as u32;
                let qty = pick(&mut self.rng, QUANTITIES);
                let unit_price = round_to(lognormal(&mut self.rng, 2.5, 1.0).min(100_000.0), 2);
                total += qty as f64 * unit_price;
                json!({"sku": format!("SKU-{sku:05}"), "qty": qty, "unit_price": unit_price})
            })
            .collect();
        let coupon = if self.rng.random_bool(0.2) { json!(pick(&mut self.rng, COUPONS)) } else { Value::Null };
        let placed_at = occurred_at - TimeDelta::milliseconds(self.rng.random_range(0..2_000));
        json!({
            "order_id": format!("o{:010}", self.rng.random::<u32>()),
            "user_id": user,
            "context": context,
            "items": items,
            "coupon": coupon,
            "placed_at": placed_at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            "total": round_to(total, 2),
        })
    }

    /// The next `n` events.
    pub fn take(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }
}

/// Producer retries of `events`: every `every`-th event (none when `every` is 0) again, with
/// the same `event_id`, received `delay` later.
pub fn producer_retries(events: &[Event], every: usize, delay: chrono::TimeDelta) -> Vec<Event> {
    if every == 0 {
        return Vec::new();
    }
    events.iter().step_by(every).map(|e| Event { received_at: e.received_at + delay, ..e.clone() }).collect()
}

/// The stream record payload of `event` (what ingest puts on the stream).
pub fn record_bytes(event: &Event) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

/// A Kinesis-like 56-digit sequence number for counter `n` (increasing with `n`).
pub fn sequence_number(n: u64) -> String {
    format!("4959033827149025660855969253{n:028}")
}

/// One Kinesis event record holding `data`.
pub fn kinesis_record(
    shard_id: &str,
    seq: &str,
    partition_key: &str,
    data: Vec<u8>,
    arrival: DateTime<Utc>,
) -> KinesisEventRecord {
    let mut r = KinesisEventRecord::default();
    r.aws_region = Some("us-east-1".to_owned());
    r.event_id = Some(format!("{shard_id}:{seq}"));
    r.event_name = Some("aws:kinesis:record".to_owned());
    r.event_source = Some("aws:kinesis".to_owned());
    r.event_source_arn = Some("arn:aws:kinesis:us-east-1:123456789012:stream/sluice-events".to_owned());
    r.event_version = Some("1.0".to_owned());
    r.invoke_identity_arn = Some("arn:aws:iam::123456789012:role/sluice-aggregator".to_owned());
    r.kinesis.kinesis_schema_version = Some("1.0".to_owned());
    r.kinesis.partition_key = partition_key.to_owned();
    r.kinesis.sequence_number = seq.to_owned();
    *r.kinesis.approximate_arrival_timestamp = arrival.trunc_subsecs(0);
    *r.kinesis.data = data;
    r
}

/// A Kinesis event of `payloads` (record bytes), sequence numbers from counter `first_seq`.
pub fn kinesis_event(shard_id: &str, first_seq: u64, payloads: Vec<Vec<u8>>, arrival: DateTime<Utc>) -> KinesisEvent {
    let mut e = KinesisEvent::default();
    e.records = payloads
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let seq = sequence_number(first_seq + i as u64);
            kinesis_record(shard_id, &seq, &format!("pk-{}", (first_seq + i as u64) % 97), data, arrival)
        })
        .collect();
    e
}

/// The next batch from `generator`: records while the KinesisEvent JSON stays within
/// `target_bytes` and up to 10,000 records (Lambda's Kinesis batch maximum). Returns the event and the
/// events it holds.
pub fn kinesis_batch(
    generator: &mut Generator,
    shard_id: &str,
    first_seq: u64,
    target_bytes: usize,
) -> (KinesisEvent, Vec<Event>) {
    let mut events = Vec::new();
    let mut records = Vec::new();
    let mut size = 20;
    while records.len() < 10_000 {
        let e = generator.next_event();
        let seq = sequence_number(first_seq + records.len() as u64);
        let pk = format!("pk-{}", (first_seq + records.len() as u64) % 97);
        let r = kinesis_record(shard_id, &seq, &pk, record_bytes(&e), e.received_at);
        let len = serde_json::to_vec(&r).map_or(0, |v| v.len()) + 1;
        if size + len > target_bytes {
            break;
        }
        size += len;
        records.push(r);
        events.push(e);
    }
    let mut batch = KinesisEvent::default();
    batch.records = records;
    (batch, events)
}

/// A ground-truth aggregate key: event type, window length (s), window start (Unix s), and the
/// dimension values in schema order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TruthKey {
    pub event_type: String,
    pub window_secs: u32,
    pub window_start: i64,
    pub dims: Vec<String>,
}

/// Exact aggregates of one key.
#[derive(Debug, Clone, Default)]
pub struct TruthAgg {
    pub count: u64,
    /// Sum of the measure, as exact decimal millionths.
    pub sum_micros: i128,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub identities: HashSet<String>,
    pub values: Vec<f64>,
    pub late: u64,
}

impl TruthAgg {
    /// Adds another key's truth.
    pub fn merge(&mut self, o: &TruthAgg) {
        self.count += o.count;
        self.sum_micros += o.sum_micros;
        self.min = match (self.min, o.min) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.max = match (self.max, o.max) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.identities.extend(o.identities.iter().cloned());
        self.values.extend_from_slice(&o.values);
        self.late += o.late;
    }

    /// The sum of the measure.
    pub fn sum(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    /// Exact distinct identities.
    pub fn distinct(&self) -> u64 {
        self.identities.len() as u64
    }

    /// The value at 0-based rank `floor(q * (n - 1))` of the sorted measure values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.values.is_empty() {
            return None;
        }
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v.get((q * (v.len() - 1) as f64).floor() as usize).copied()
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The exact aggregates of `events` for tumbling windows of `windows_secs`, where an event is
/// late for a window when `received_at > window end + allowed_lateness`. Dimensions, measure and
/// identity come from each event's schema version in `registry`; events of unknown types are
/// skipped.
pub fn ground_truth(
    registry: &Registry,
    events: &[Event],
    windows_secs: &[u32],
    allowed_lateness: TimeDelta,
) -> BTreeMap<TruthKey, TruthAgg> {
    let mut out: BTreeMap<TruthKey, TruthAgg> = BTreeMap::new();
    for e in events {
        let Some(schema) = registry.get(&e.event_type).and_then(|t| t.version(e.schema_version)) else {
            continue;
        };
        let dims: Vec<String> =
            schema.dimensions.iter().map(|d| d.get(&e.data).map(value_text).unwrap_or_default()).collect();
        let measure = schema.measure.as_ref().and_then(|m| m.get(&e.data)).and_then(Value::as_f64);
        let identity = schema.identity.as_ref().and_then(|i| i.get(&e.data)).map(value_text);
        for &w in windows_secs {
            let w64 = i64::from(w.max(1));
            let start = e.occurred_at.timestamp().div_euclid(w64) * w64;
            let deadline = DateTime::from_timestamp(start + w64, 0).unwrap_or_default() + allowed_lateness;
            let agg = out
                .entry(TruthKey {
                    event_type: e.event_type.clone(),
                    window_secs: w,
                    window_start: start,
                    dims: dims.clone(),
                })
                .or_default();
            agg.count += 1;
            agg.late += u64::from(e.received_at > deadline);
            if let Some(x) = measure {
                agg.sum_micros += (x * 1e6).round() as i128;
                agg.min = Some(agg.min.map_or(x, |m| m.min(x)));
                agg.max = Some(agg.max.map_or(x, |m| m.max(x)));
                agg.values.push(x);
            }
            if let Some(id) = &identity {
                agg.identities.insert(id.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_valid() {
        let registry = Registry::builtin().unwrap();
        let a = Generator::new(GenConfig::default()).take(2000);
        let b = Generator::new(GenConfig::default()).take(2000);
        assert_eq!(a, b);
        for e in &a {
            let bytes = record_bytes(e);
            let back = registry.decode_stored(&bytes).unwrap_or_else(|r| panic!("{r}: {e:?}"));
            assert_eq!(&back, e);
        }
        let pv = a.iter().filter(|e| e.event_type == "page_view").count();
        assert!((1000..1400).contains(&pv), "{pv}");
        assert!(a.iter().all(|e| e.event_type != "order_placed"), "order_placed has weight 0 by default");
    }

    #[test]
    fn orders_are_valid_nested_events() {
        let registry = Registry::builtin().unwrap();
        let config = GenConfig { mix: [0, 0, 0, 1], ..GenConfig::default() };
        let orders = Generator::new(config).take(2000);
        let mut lines = 0;
        let mut coupons = 0;
        for e in &orders {
            assert_eq!(e.event_type, "order_placed");
            let bytes = record_bytes(e);
            let back = registry.decode_stored(&bytes).unwrap_or_else(|r| panic!("{r}: {e:?}"));
            assert_eq!(&back, e, "generated in the stored form");
            lines += e.data["items"].as_array().map_or(0, Vec::len);
            coupons += usize::from(!e.data["coupon"].is_null());
        }
        assert!((2500..8000).contains(&lines), "{lines} line items");
        assert!((250..550).contains(&coupons), "{coupons} coupons");
    }

    #[test]
    fn batches_are_about_six_megabytes() {
        let mut g = Generator::new(GenConfig::default());
        let (batch, events) = kinesis_batch(&mut g, "shardId-000000000000", 0, 6_000_000);
        let json = serde_json::to_vec(&batch).unwrap();
        assert_eq!(batch.records.len(), events.len());
        assert!(json.len() > 5_000_000 && json.len() <= 6_000_000, "{}", json.len());
        let back: KinesisEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(back.records[0].kinesis.data.0, record_bytes(&events[0]));
    }

    #[test]
    fn truth_counts_every_event_once_per_window() {
        let registry = Registry::builtin().unwrap();
        let events = Generator::new(GenConfig::default()).take(5000);
        let truth = ground_truth(&registry, &events, &[60, 3600], TimeDelta::minutes(5));
        for w in [60, 3600] {
            let n: u64 = truth.iter().filter(|(k, _)| k.window_secs == w).map(|(_, a)| a.count).sum();
            assert_eq!(n, 5000);
        }
        let late: u64 = truth.iter().filter(|(k, _)| k.window_secs == 60).map(|(_, a)| a.late).sum();
        assert!(late > 10 && late < 120, "{late}");
    }
}
