//! DynamoDB adapter of the [`AggregateStore`] port.
//!
//! Table (on-demand): partition key `pk` (S) = `<event_type>|<window>|<window_start>` (window as
//! its label, start as Unix seconds), sort key `sk` (S) = `<dims JSON>|<shard>`. Attributes:
//! `guard` (S, 76-digit zero-padded sequence number), `state` (B, [`AggState`] encoding, at most
//! [`crate::state::MAX_ENCODED_BYTES`]), `event_type` (S), `window_secs` (N), `window_start` (N),
//! `dims` (S), `shard` (S). Writes are `PutItem` with `attribute_not_exists(pk)` (first write) or
//! `guard = :expected` (compare-and-set); reads are consistent `BatchGetItem` (load) and one
//! consistent `Query` per window start (scan). Throttling and transient errors are retried by
//! the SDK's standard retry mode and, above it, by the apply protocol's backoff; unprocessed
//! BatchGetItem keys are retried with backoff here. Every PutItem's write request units
//! (`ceil(item bytes / 1 KB)`) are counted in [`DynamoAggregateStore::write_units`] and the
//! `sluice_aggregates_write_units_total` metric.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes, ScalarAttributeType,
};
use futures::StreamExt;

use super::{AggregateStore, Partial, PutOutcome, StoreError};
use crate::key::{AggKey, parse_dims_text};
use crate::seq::SeqNo;
use crate::state::AggState;
use crate::window::WindowSize;

/// Max keys per BatchGetItem.
const BATCH_GET_MAX: usize = 100;
/// Max window starts one scan may query.
pub const MAX_SCAN_WINDOWS: i64 = 10_000;

/// DynamoDB-backed partials.
#[derive(Clone)]
pub struct DynamoAggregateStore {
    client: Client,
    table: String,
    write_units: Arc<AtomicU64>,
    metric: Option<Arc<sluice_telemetry::Counter>>,
}

impl std::fmt::Debug for DynamoAggregateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoAggregateStore").field("table", &self.table).finish_non_exhaustive()
    }
}

fn unavailable(e: impl std::fmt::Debug) -> StoreError {
    StoreError::Unavailable(format!("{e:?}"))
}

/// The partition key of `key`.
pub fn partition_key(key: &AggKey) -> String {
    format!("{}|{}|{}", key.event_type, key.window, key.window_start)
}

/// The sort key of (`key`, `shard`).
pub fn sort_key(key: &AggKey, shard: &str) -> String {
    format!("{}|{shard}", key.dims_text())
}

/// DynamoDB's item size: attribute names plus values (strings/binary by length, numbers ~ 1 byte
/// per two digits + 1).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, v)| {
            name.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    _ => 8,
                }
        })
        .sum()
}

/// Write request units of a PutItem of `item`: `ceil(size / 1024)`, at least 1.
pub fn write_units(item: &HashMap<String, AttributeValue>) -> u64 {
    (item_size(item).div_ceil(1024)).max(1) as u64
}

/// The item for (`key`, `shard`) holding `partial`.
pub fn item(key: &AggKey, shard: &str, partial: &Partial) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(partition_key(key))),
        ("sk".to_owned(), AttributeValue::S(sort_key(key, shard))),
        ("guard".to_owned(), AttributeValue::S(partial.guard.padded())),
        ("state".to_owned(), AttributeValue::B(partial.state.encode().into())),
        ("event_type".to_owned(), AttributeValue::S(key.event_type.clone())),
        ("window_secs".to_owned(), AttributeValue::N(key.window.secs().to_string())),
        ("window_start".to_owned(), AttributeValue::N(key.window_start.to_string())),
        ("dims".to_owned(), AttributeValue::S(key.dims_text())),
        ("shard".to_owned(), AttributeValue::S(shard.to_owned())),
    ])
}

fn s_attr<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s),
        _ => Err(StoreError::Corrupt(format!("item lacks string attribute `{name}`"))),
    }
}

fn decode_item(item: &HashMap<String, AttributeValue>) -> Result<(AggKey, String, Partial), StoreError> {
    let corrupt = |m: String| StoreError::Corrupt(m);
    let event_type = s_attr(item, "event_type")?.to_owned();
    let shard = s_attr(item, "shard")?.to_owned();
    let dims_raw = s_attr(item, "dims")?;
    let dims = parse_dims_text(dims_raw).ok_or_else(|| corrupt(format!("bad dims `{dims_raw}`")))?;
    let num = |name: &str| match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse::<i64>().map_err(|e| corrupt(e.to_string())),
        _ => Err(corrupt(format!("item lacks number attribute `{name}`"))),
    };
    let window = u32::try_from(num("window_secs")?)
        .ok()
        .and_then(WindowSize::from_secs)
        .ok_or_else(|| corrupt("bad window_secs".into()))?;
    let window_start = num("window_start")?;
    let guard = s_attr(item, "guard")?.parse::<SeqNo>().map_err(|e| corrupt(e.to_string()))?;
    let state = match item.get("state") {
        Some(AttributeValue::B(b)) => AggState::decode(b.as_ref()).map_err(|e| corrupt(e.to_string()))?,
        _ => return Err(corrupt("item lacks binary attribute `state`".into())),
    };
    Ok((AggKey { event_type, window, window_start, dims }, shard, Partial { guard, state }))
}

impl DynamoAggregateStore {
    /// A store over the existing `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAggregateStore { client, table: table.into(), write_units: Arc::new(AtomicU64::new(0)), metric: None }
    }

    /// Also counts write units in `metrics` as `sluice_aggregates_write_units_total`.
    pub fn with_metrics(mut self, metrics: &sluice_telemetry::Metrics) -> Self {
        self.metric = Some(metrics.counter(
            "sluice_aggregates_write_units_total",
            "DynamoDB write request units consumed by aggregate partial writes",
            &[("table", self.table.as_str())],
        ));
        self
    }

    /// Write request units consumed so far by this store (and its clones).
    pub fn write_units(&self) -> u64 {
        self.write_units.load(Ordering::Relaxed)
    }

    /// Creates the table (on-demand billing) as documented in the module docs, and waits until
    /// it is active. For tests and local setups; production uses template.yaml.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(unavailable)
        };
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(unavailable)
        };
        client
            .create_table()
            .table_name(table)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key("pk", KeyType::Hash)?)
            .key_schema(key("sk", KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(unavailable)?;
        for _ in 0..100 {
            let d = client.describe_table().table_name(table).send().await.map_err(unavailable)?;
            if d.table().and_then(|t| t.table_status()).is_some_and(|s| s.as_str() == "ACTIVE") {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(StoreError::Unavailable(format!("table {table} did not become active")))
    }

    async fn load_chunk(&self, shard: &str, keys: &[AggKey]) -> Result<HashMap<(String, String), Partial>, StoreError> {
        let mut pending: Vec<HashMap<String, AttributeValue>> = keys
            .iter()
            .map(|k| {
                HashMap::from([
                    ("pk".to_owned(), AttributeValue::S(partition_key(k))),
                    ("sk".to_owned(), AttributeValue::S(sort_key(k, shard))),
                ])
            })
            .collect();
        let mut found = HashMap::new();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(unavailable)?;
            let out =
                self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(unavailable)?;
            for item in out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                let (k, s, p) = decode_item(item)?;
                found.insert((partition_key(&k), sort_key(&k, &s)), p);
            }
            if let Some(left) = out.unprocessed_keys().and_then(|u| u.get(&self.table)) {
                pending = left.keys().to_vec();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Unavailable("BatchGetItem kept returning unprocessed keys".into()));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
                }
            }
        }
        Ok(found)
    }
}

impl AggregateStore for DynamoAggregateStore {
    async fn load(&self, shard: &str, keys: &[AggKey]) -> Result<Vec<Option<Partial>>, StoreError> {
        let mut found = HashMap::new();
        let owned: Vec<Vec<AggKey>> = keys.chunks(BATCH_GET_MAX).map(<[AggKey]>::to_vec).collect();
        let chunks: Vec<_> = futures::stream::iter(owned)
            .map(|chunk| async move { self.load_chunk(shard, &chunk).await })
            .buffer_unordered(8)
            .collect()
            .await;
        for chunk in chunks {
            found.extend(chunk?);
        }
        Ok(keys.iter().map(|k| found.remove(&(partition_key(k), sort_key(k, shard)))).collect())
    }

    async fn put(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<SeqNo>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        let item = item(key, shard, new);
        let units = write_units(&item);
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(g) => request
                .condition_expression("guard = :expected")
                .expression_attribute_values(":expected", AttributeValue::S(g.padded())),
        };
        let result = request.send().await;
        // A failed conditional write consumes write units too.
        self.write_units.fetch_add(units, Ordering::Relaxed);
        if let Some(m) = &self.metric {
            m.add(units);
        }
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(PutOutcome::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn scan(
        &self,
        event_type: &str,
        window: WindowSize,
        from: i64,
        to: i64,
    ) -> Result<Vec<(AggKey, String, AggState)>, StoreError> {
        let step = i128::from(window.secs());
        let (from, to) = (i128::from(from), i128::from(to));
        let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
        let count = if to > first { (to - first + step - 1) / step } else { 0 };
        if count > i128::from(MAX_SCAN_WINDOWS) {
            return Err(StoreError::TooLarge(format!("range covers {count} windows, more than {MAX_SCAN_WINDOWS}")));
        }
        let first = i64::try_from(first).unwrap_or(i64::MAX);
        let (count, step) = (count as i64, step as i64);
        let starts: Vec<i64> = (0..count).map(|i| first + i * step).collect();
        let parts: Vec<Result<Vec<_>, StoreError>> = futures::stream::iter(starts)
            .map(|start| {
                let pk = partition_key(&AggKey {
                    event_type: event_type.to_owned(),
                    window,
                    window_start: start,
                    dims: Vec::new(),
                });
                async move {
                    let mut out = Vec::new();
                    let mut next: Option<HashMap<String, AttributeValue>> = None;
                    loop {
                        let page = self
                            .client
                            .query()
                            .table_name(&self.table)
                            .key_condition_expression("pk = :pk")
                            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                            .consistent_read(true)
                            .set_exclusive_start_key(next.take())
                            .send()
                            .await
                            .map_err(unavailable)?;
                        for item in page.items() {
                            let (k, s, p) = decode_item(item)?;
                            out.push((k, s, p.state));
                        }
                        match page.last_evaluated_key() {
                            Some(k) if !k.is_empty() => next = Some(k.clone()),
                            _ => break,
                        }
                    }
                    Ok(out)
                }
            })
            .buffered(8)
            .collect()
            .await;
        let mut out = Vec::new();
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }
}
