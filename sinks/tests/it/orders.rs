//! Hand-written `order_placed` v1 events (nested objects, an array of objects, a nullable
//! string, date-times in several spellings), validated by the builtin registry: shared by the
//! integration tests (`mod orders`) and the lake benchmark (`#[path]`).

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeDelta, Utc};
use serde_json::{Value, json};
use sluice_schemas::{Event, IngestContext, Registry};

/// `n` valid `order_placed` v1 events in their stored form: one to four line items, an
/// optional `app_version`, a `null` coupon on every third, `placed_at` spelled in several RFC
/// 3339 forms (offsets, 0 to 9 fraction digits), quantities and prices sometimes as `2.0` or
/// integers; event times spread evenly over the `span` before `received_at`, all received at
/// `received_at`. Deterministic in `seed`.
pub fn order_events(seed: u64, n: usize, received_at: DateTime<Utc>, span: TimeDelta) -> Vec<Event> {
    let registry = Registry::builtin().unwrap();
    let context = IngestContext::new("shop", received_at);
    let mut random = Xorshift(seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407));
    let span_us = span.num_microseconds().unwrap_or(0) as f64;
    (0..n)
        .map(|i| {
            let before = (i as f64 + 0.5) * span_us / n as f64;
            let occurred_at = received_at - TimeDelta::microseconds(before as i64);
            let id = seed.wrapping_mul(1_000_003).wrapping_add(i as u64 + 1) & 0xffff_ffff_ffff;
            let input = json!({
                "event_id": format!("0190a0c4-5b7e-7cc3-8f1a-{id:012x}"),
                "event_type": "order_placed",
                "occurred_at": occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                "data": order_data(&mut random, format!("o-{seed}-{i}"), i, occurred_at),
            });
            registry.validate(&input, &context).unwrap_or_else(|r| panic!("{r}: {input}"))
        })
        .collect()
}

/// The `data` of [`order_events`]' `i`-th event.
fn order_data(random: &mut Xorshift, order_id: String, i: usize, occurred_at: DateTime<Utc>) -> Value {
    let placed = occurred_at - TimeDelta::microseconds(random.below(5_000_000) as i64);
    let offset = |seconds: i32| FixedOffset::east_opt(seconds).unwrap();
    let placed_at = match i % 5 {
        0 => placed.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        1 => placed.with_timezone(&offset(7_200)).to_rfc3339(),
        2 => placed.to_rfc3339_opts(SecondsFormat::Nanos, true),
        3 => placed.to_rfc3339_opts(SecondsFormat::Secs, true),
        _ => placed.with_timezone(&offset(-1_800)).to_rfc3339_opts(SecondsFormat::Millis, false),
    };
    let channel = ["web", "ios", "android", "pos"][random.below(4) as usize];
    let country = ["US", "DE", "FR", "JP", "BR"][random.below(5) as usize];
    let mut context = json!({"country": country, "channel": channel});
    if matches!(channel, "ios" | "android") {
        context["app_version"] = json!(format!("5.{}.{}", random.below(4), random.below(10)));
    }
    let mut total = 0.0;
    let lines = 1 + random.below(4);
    let items: Vec<Value> = (0..lines)
        .map(|j| {
            let qty = 1 + random.below(5);
            let cents = random.below(100_000);
            total += qty as f64 * cents as f64 / 100.0;
            let unit_price = if cents.is_multiple_of(100) { json!(cents / 100) } else { json!(cents as f64 / 100.0) };
            let qty = if j == 1 { json!(qty as f64) } else { json!(qty) };
            json!({"sku": format!("SKU-{:05}", random.below(5_000)), "qty": qty, "unit_price": unit_price})
        })
        .collect();
    let coupon = if i.is_multiple_of(3) { Value::Null } else { json!(format!("SAVE{}", random.below(30))) };
    json!({
        "order_id": order_id,
        "user_id": format!("u{:04}", random.below(500)),
        "context": context,
        "items": items,
        "coupon": coupon,
        "placed_at": placed_at,
        "total": (total * 100.0).round() / 100.0,
    })
}

/// xorshift64*: deterministic test data without a dependency.
struct Xorshift(u64);

impl Xorshift {
    /// A number in `0..bound`.
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}
