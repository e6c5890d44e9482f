//! DynamoDB adapter of the [`AggregateStore`] port.
//!
//! Table (on-demand): partition key `pk` (S) = `<event_type>|<window>|<window_start>` (window as
//! its label, start as Unix seconds), sort key `sk` (S), three kinds of item per partition:
//! - link `L#<shard>#<prev>` (`prev` the 76-digit zero-padded sequence number): `last` (S), `n`
//!   (N), `entries` (B, a [`super::link`] body). Appended with `attribute_not_exists(pk)`, so
//!   two writers racing for the same chain head cannot both succeed. A body over
//!   [`LINK_PART_BYTES`] is split: the link item holds part 0 and `parts` (N), parts
//!   `L#<shard>#<prev>#<i:04>` hold the rest, all written in one `TransactWriteItems`;
//! - fold mark `M#<shard>`: `upto` (S), `n` (N), raised only (`attribute_not_exists(pk) OR n < :n`);
//! - partial `P#<shard>#<dims JSON>`: `guard` (S), `state` (B, at most
//!   [`crate::state::MAX_ENCODED_BYTES`]), written with `attribute_not_exists(pk)` or
//!   `guard = :expected`.
//!
//! Reads are consistent. The chain heads of a batch's windows are one `Query` per window (newest
//! link, `Limit 1`) plus one `BatchGetItem` for their marks (unprocessed keys retried with
//! backoff). A window read is one `Query` for marks and partials plus one range `Query`
//! per shard for the links at or after its mark (and one per gap between marked shards, for
//! chains not folded yet), so folded links are never read. Throttling and transient errors are
//! retried by the SDK's standard retry mode and, above it, by the apply protocol's backoff.
//! Every write's request units (`ceil(item bytes / 1 KB)`, twice that inside a transaction) are
//! counted in [`DynamoAggregateStore::write_units`] and `sluice_aggregates_write_units_total`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, KeysAndAttributes, Put,
    ScalarAttributeType, TransactWriteItem,
};
use futures::StreamExt;

use super::link::{decode_entries, encode_entries};
use super::{AggregateStore, ChainHead, Link, Partial, PutOutcome, ShardWindow, StoreError, WindowKey};
use crate::key::{AggKey, DimValue, parse_dims_text};
use crate::state::AggState;
use crate::window::WindowSize;
use sluice_stream::SequenceNumber;

/// Max window starts one read may query.
pub const MAX_SCAN_WINDOWS: i64 = 10_000;
/// Largest `entries` chunk per item: well below DynamoDB's 400 KB item limit.
pub const LINK_PART_BYTES: usize = 350_000;
/// Most keys per `BatchGetItem`.
const BATCH_GET_MAX: usize = 100;
/// Most items in one `TransactWriteItems`.
const MAX_PARTS: usize = 100;

/// DynamoDB-backed chains and partials.
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

fn corrupt(m: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(m.to_string())
}

/// The partition key of a window.
pub fn partition_key(w: &WindowKey) -> String {
    format!("{}|{}|{}", w.event_type, w.window, w.window_start)
}

fn link_prefix(shard: &str) -> String {
    format!("L#{shard}#")
}

fn mark_key(shard: &str) -> String {
    format!("M#{shard}")
}

fn partial_key(shard: &str, key: &AggKey) -> String {
    format!("P#{shard}#{}", key.dims_text())
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

/// A DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// The items of `link` (one, or a link and its parts; see the module docs).
pub fn link_items(shard: &str, window: &WindowKey, link: &Link) -> Result<Vec<Item>, StoreError> {
    let body = encode_entries(&link.entries).map_err(unavailable)?;
    let chunks: Vec<&[u8]> = body.chunks(LINK_PART_BYTES).collect();
    if chunks.len() > MAX_PARTS {
        return Err(StoreError::TooLarge(format!("a link of {} bytes exceeds {MAX_PARTS} parts", body.len())));
    }
    let sk = format!("{}{}", link_prefix(shard), link.prev.padded());
    Ok(chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut item = HashMap::from([
                ("pk".to_owned(), AttributeValue::S(partition_key(window))),
                ("sk".to_owned(), AttributeValue::S(if i == 0 { sk.clone() } else { format!("{sk}#{i:04}") })),
                ("last".to_owned(), AttributeValue::S(link.last.padded())),
                ("n".to_owned(), AttributeValue::N(link.n.to_string())),
                ("entries".to_owned(), AttributeValue::B(chunk.to_vec().into())),
            ]);
            if i == 0 && chunks.len() > 1 {
                item.insert("parts".to_owned(), AttributeValue::N(chunks.len().to_string()));
            }
            item
        })
        .collect())
}

/// Write request units of appending `items` as [`DynamoAggregateStore`] does (a transaction
/// costs twice).
pub fn append_units(items: &[Item]) -> u64 {
    let units: u64 = items.iter().map(write_units).sum();
    if items.len() > 1 { 2 * units } else { units }
}

/// The item of the partial of (`key`, `shard`).
pub fn partial_item(shard: &str, key: &AggKey, partial: &Partial) -> Item {
    HashMap::from([
        ("pk".to_owned(), AttributeValue::S(partition_key(&key.window_key()))),
        ("sk".to_owned(), AttributeValue::S(partial_key(shard, key))),
        ("guard".to_owned(), AttributeValue::S(partial.guard.padded())),
        ("state".to_owned(), AttributeValue::B(partial.state.encode().into())),
    ])
}

fn s_attr<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Ok(s),
        _ => Err(corrupt(format!("item lacks string attribute `{name}`"))),
    }
}

fn n_attr(item: &Item, name: &str) -> Result<u64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().map_err(corrupt),
        _ => Err(corrupt(format!("item lacks number attribute `{name}`"))),
    }
}

fn b_attr<'a>(item: &'a Item, name: &str) -> Result<&'a [u8], StoreError> {
    match item.get(name) {
        Some(AttributeValue::B(b)) => Ok(b.as_ref()),
        _ => Err(corrupt(format!("item lacks binary attribute `{name}`"))),
    }
}

fn seq_attr(item: &Item, name: &str) -> Result<SequenceNumber, StoreError> {
    s_attr(item, name)?.parse().map_err(corrupt)
}

/// Reassembles links from link and part items in sort-key order.
fn links_of(items: Vec<Item>) -> Result<Vec<Link>, StoreError> {
    let mut out = Vec::new();
    let mut open: Option<(SequenceNumber, SequenceNumber, u64, u64, Vec<u8>)> = None; // prev, last, n, parts left, bytes
    let finish = |o: Option<(SequenceNumber, SequenceNumber, u64, u64, Vec<u8>)>,
                  out: &mut Vec<Link>|
     -> Result<(), StoreError> {
        if let Some((prev, last, n, left, bytes)) = o {
            if left != 0 {
                return Err(corrupt("link is missing parts"));
            }
            out.push(Link { prev, last, n, entries: decode_entries(&bytes).map_err(corrupt)? });
        }
        Ok(())
    };
    for item in items {
        let sk = s_attr(&item, "sk")?;
        let mut fields = sk.splitn(4, '#').skip(2);
        let prev: SequenceNumber = fields.next().ok_or_else(|| corrupt("bad link key"))?.parse().map_err(corrupt)?;
        let chunk = b_attr(&item, "entries")?;
        if fields.next().is_some() {
            match open.as_mut() {
                Some((p, _, _, left, bytes)) if *p == prev && *left > 0 => {
                    *left -= 1;
                    bytes.extend_from_slice(chunk);
                }
                _ => return Err(corrupt("link part without its link")),
            }
        } else {
            finish(open.take(), &mut out)?;
            let parts = if item.contains_key("parts") { n_attr(&item, "parts")? } else { 1 };
            open = Some((prev, seq_attr(&item, "last")?, n_attr(&item, "n")?, parts.saturating_sub(1), chunk.to_vec()));
        }
    }
    finish(open, &mut out)?;
    Ok(out)
}

fn partial_of(item: &Item) -> Result<(String, Vec<DimValue>, Partial), StoreError> {
    let sk = s_attr(item, "sk")?;
    let rest = sk.strip_prefix("P#").ok_or_else(|| corrupt("bad partial key"))?;
    let (shard, dims) = rest.split_once('#').ok_or_else(|| corrupt("bad partial key"))?;
    let dims = parse_dims_text(dims).ok_or_else(|| corrupt(format!("bad dims `{dims}`")))?;
    let state = AggState::decode(b_attr(item, "state")?).map_err(corrupt)?;
    Ok((shard.to_owned(), dims, Partial { guard: seq_attr(item, "guard")?, state }))
}

impl DynamoAggregateStore {
    /// A store over the existing `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAggregateStore { client, table: table.into(), write_units: Arc::new(AtomicU64::new(0)), metric: None }
    }

    /// Also counts write units in `metrics` as `sluice_aggregates_write_units_total`.
    pub fn with_metrics(mut self, metrics: &sluice_telemetry::Metrics) -> Self {
        self.metric = Some(metrics.counter(&sluice_telemetry::catalog::AGGREGATES_WRITE_UNITS, [self.table.as_str()]));
        self
    }

    /// Write request units consumed so far by this store (and its clones).
    pub fn write_units(&self) -> u64 {
        self.write_units.load(Ordering::Relaxed)
    }

    fn charge(&self, units: u64) {
        self.write_units.fetch_add(units, Ordering::Relaxed);
        if let Some(m) = &self.metric {
            m.add(units);
        }
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

    /// Every item of partition `pk` with `lo <= sk <= hi`, in sort-key order, all pages.
    async fn query_range(&self, pk: &str, lo: &str, hi: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut next: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
                .expression_attribute_values(":lo", AttributeValue::S(lo.to_owned()))
                .expression_attribute_values(":hi", AttributeValue::S(hi.to_owned()))
                .consistent_read(true)
                .set_exclusive_start_key(next.take())
                .send()
                .await
                .map_err(unavailable)?;
            out.extend(page.items().iter().cloned());
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => next = Some(k.clone()),
                _ => return Ok(out),
            }
        }
    }

    /// `last` and `n` of the newest link of (`window`, `shard`).
    async fn newest_link(&self, shard: &str, window: &WindowKey) -> Result<Option<(SequenceNumber, u64)>, StoreError> {
        let prefix = link_prefix(shard);
        let page = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", AttributeValue::S(partition_key(window)))
            .expression_attribute_values(":lo", AttributeValue::S(prefix.clone()))
            .expression_attribute_values(":hi", AttributeValue::S(format!("{prefix}\u{7f}")))
            .scan_index_forward(false)
            .limit(1)
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        page.items().first().map(|item| Ok((seq_attr(item, "last")?, n_attr(item, "n")?))).transpose()
    }

    /// Consistent `BatchGetItem` of up to 100 (pk, sk) keys; unprocessed keys are retried with
    /// backoff.
    async fn batch_get(&self, keys: Vec<(String, String)>) -> Result<Vec<Item>, StoreError> {
        let mut pending: Vec<Item> = keys
            .into_iter()
            .map(|(pk, sk)| {
                HashMap::from([("pk".to_owned(), AttributeValue::S(pk)), ("sk".to_owned(), AttributeValue::S(sk))])
            })
            .collect();
        let mut found = Vec::new();
        let mut attempt = 0u32;
        while !pending.is_empty() {
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(unavailable)?;
            let out =
                self.client.batch_get_item().request_items(&self.table, request).send().await.map_err(unavailable)?;
            found.extend(out.responses().and_then(|r| r.get(&self.table)).into_iter().flatten().cloned());
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

    /// The links of `shard` in partition `pk` with `prev >= from`.
    async fn chain_links(&self, pk: &str, shard: &str, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
        let prefix = link_prefix(shard);
        links_of(self.query_range(pk, &format!("{prefix}{}", from.padded()), &format!("{prefix}\u{7f}")).await?)
    }

    async fn read_window(&self, window: WindowKey) -> Result<Vec<ShardWindow>, StoreError> {
        let pk = partition_key(&window);
        let mut shards: BTreeMap<String, ShardWindow> = BTreeMap::new();
        fn entry<'a>(shards: &'a mut BTreeMap<String, ShardWindow>, w: &WindowKey, shard: &str) -> &'a mut ShardWindow {
            shards.entry(shard.to_owned()).or_insert_with(|| ShardWindow {
                window: w.clone(),
                shard: shard.to_owned(),
                partials: Vec::new(),
                links: Vec::new(),
            })
        }
        let mut marks: BTreeMap<String, SequenceNumber> = BTreeMap::new();
        for item in self.query_range(&pk, "M#", "P#\u{7f}").await? {
            let sk = s_attr(&item, "sk")?;
            if let Some(shard) = sk.strip_prefix("M#") {
                marks.insert(shard.to_owned(), seq_attr(&item, "upto")?);
                entry(&mut shards, &window, shard);
            } else {
                let (shard, dims, p) = partial_of(&item)?;
                entry(&mut shards, &window, &shard).partials.push((dims, p));
            }
        }
        // Marked shards from their mark; everything between them (shards never folded) whole.
        let mut ranges: Vec<(String, String)> = Vec::new();
        let mut gap_start = "L#".to_owned();
        for (shard, mark) in &marks {
            ranges.push((gap_start, format!("L#{shard}\"")));
            ranges.push((format!("L#{shard}#{}", mark.padded()), format!("L#{shard}#\u{7f}")));
            gap_start = format!("L#{shard}$");
        }
        ranges.push((gap_start, "L$".to_owned()));
        for (lo, hi) in ranges.into_iter().filter(|(lo, hi)| lo <= hi) {
            let items = self.query_range(&pk, &lo, &hi).await?;
            let mut by_shard: BTreeMap<String, Vec<Item>> = BTreeMap::new();
            for item in items {
                let sk = s_attr(&item, "sk")?;
                let shard = sk.split('#').nth(1).ok_or_else(|| corrupt("bad link key"))?.to_owned();
                by_shard.entry(shard).or_default().push(item);
            }
            for (shard, items) in by_shard {
                entry(&mut shards, &window, &shard).links.extend(links_of(items)?);
            }
        }
        Ok(shards.into_values().collect())
    }

    async fn transact_append(&self, items: Vec<Item>) -> Result<PutOutcome, StoreError> {
        let units = append_units(&items);
        let mut request = self.client.transact_write_items();
        for item in items {
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(unavailable)?;
            request = request.transact_items(TransactWriteItem::builder().put(put).build());
        }
        let result = request.send().await;
        self.charge(units);
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(TransactWriteItemsError::TransactionCanceledException(t))
                        if t.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed"))
                ) =>
            {
                Ok(PutOutcome::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl AggregateStore for DynamoAggregateStore {
    async fn heads(&self, shard: &str, windows: &[WindowKey]) -> Result<Vec<ChainHead>, StoreError> {
        // A batch touches a handful of windows: query them all at once.
        let newest: Vec<Result<Option<(SequenceNumber, u64)>, StoreError>> =
            futures::future::join_all(windows.iter().map(|w| self.newest_link(shard, w))).await;
        let mut marks: HashMap<String, (SequenceNumber, u64)> = HashMap::new();
        // BatchGetItem refuses duplicate keys.
        let unique: Vec<String> = windows.iter().map(partition_key).collect::<BTreeSet<_>>().into_iter().collect();
        for chunk in unique.chunks(BATCH_GET_MAX) {
            let keys = chunk.iter().map(|pk| (pk.clone(), mark_key(shard))).collect();
            for item in self.batch_get(keys).await? {
                marks.insert(s_attr(&item, "pk")?.to_owned(), (seq_attr(&item, "upto")?, n_attr(&item, "n")?));
            }
        }
        windows
            .iter()
            .zip(newest)
            .map(|(w, newest)| {
                let mut head = ChainHead::default();
                if let Some((last, n)) = newest? {
                    (head.last, head.n) = (last, n);
                }
                if let Some(&(upto, n)) = marks.get(&partition_key(w)) {
                    (head.folded, head.folded_n) = (upto, n);
                }
                Ok(head)
            })
            .collect()
    }

    async fn append(&self, shard: &str, window: &WindowKey, link: &Link) -> Result<PutOutcome, StoreError> {
        let items = link_items(shard, window, link)?;
        if items.len() > 1 {
            return self.transact_append(items).await;
        }
        let Some(item) = items.into_iter().next() else {
            return Err(corrupt("empty link body"));
        };
        let units = write_units(&item);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        self.charge(units); // a failed conditional write consumes write units too
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(PutOutcome::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn links(&self, shard: &str, window: &WindowKey, from: SequenceNumber) -> Result<Vec<Link>, StoreError> {
        self.chain_links(&partition_key(window), shard, from).await
    }

    async fn partials(&self, shard: &str, window: &WindowKey) -> Result<Vec<(Vec<DimValue>, Partial)>, StoreError> {
        let prefix = format!("P#{shard}#");
        let items = self.query_range(&partition_key(window), &prefix, &format!("{prefix}\u{7f}")).await?;
        items.iter().map(|i| partial_of(i).map(|(_, d, p)| (d, p))).collect()
    }

    async fn put_partial(
        &self,
        shard: &str,
        key: &AggKey,
        expected: Option<&Partial>,
        new: &Partial,
    ) -> Result<PutOutcome, StoreError> {
        let item = partial_item(shard, key, new);
        let units = write_units(&item);
        let request = self.client.put_item().table_name(&self.table).set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(p) => request
                .condition_expression("guard = :guard AND #state = :state")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":guard", AttributeValue::S(p.guard.padded()))
                .expression_attribute_values(":state", AttributeValue::B(p.state.encode().into())),
        };
        let result = request.send().await;
        self.charge(units);
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Ok(PutOutcome::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn mark_folded(
        &self,
        shard: &str,
        window: &WindowKey,
        upto: SequenceNumber,
        n: u64,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(partition_key(window)))
            .key("sk", AttributeValue::S(mark_key(shard)))
            .update_expression("SET upto = :upto, n = :n")
            .condition_expression("attribute_not_exists(pk) OR n < :n")
            .expression_attribute_values(":upto", AttributeValue::S(upto.padded()))
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .send()
            .await;
        self.charge(1);
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn read(
        &self,
        event_type: &str,
        size: WindowSize,
        from: i64,
        to: i64,
    ) -> Result<Vec<ShardWindow>, StoreError> {
        let step = i128::from(size.secs());
        let (from, to) = (i128::from(from), i128::from(to));
        let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
        let count = if to > first { (to - first + step - 1) / step } else { 0 };
        if count > i128::from(MAX_SCAN_WINDOWS) {
            return Err(StoreError::TooLarge(format!("range covers {count} windows, more than {MAX_SCAN_WINDOWS}")));
        }
        let first = i64::try_from(first).unwrap_or(i64::MAX);
        let (count, step) = (count as i64, step as i64);
        let parts: Vec<Result<Vec<ShardWindow>, StoreError>> = futures::stream::iter(0..count)
            .map(|i| {
                self.read_window(WindowKey {
                    event_type: event_type.to_owned(),
                    window: size,
                    window_start: first + i * step,
                })
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
