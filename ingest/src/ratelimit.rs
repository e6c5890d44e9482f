//! Per-producer token buckets (events per second), time passed in.
//!
//! Each producer has a bucket of `burst` tokens refilled at `rate` tokens/s. A request costs one
//! token per event (a batch larger than `burst` costs `burst`, so it can pass when the bucket is
//! full). A request that does not fit takes nothing and is told when it would fit
//! ([`Decision::RetryAfter`], rounded up to whole seconds, at least 1). Idle full buckets are
//! dropped when more than [`MAX_TRACKED`] producers are tracked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Producers tracked before idle (full) buckets are evicted.
pub const MAX_TRACKED: usize = 10_000;

/// Rate limit configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained events per second per producer.
    pub rate: f64,
    /// Bucket size: the largest burst of events.
    pub burst: f64,
}

impl Default for RateLimit {
    /// 10,000 events/s sustained, bursts of 20,000, per producer.
    fn default() -> Self {
        Self { rate: 10_000.0, burst: 20_000.0 }
    }
}

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead (tokens taken).
    Allow,
    /// Too many; retry after this many seconds.
    RetryAfter(u64),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The pure bucket step: refill since `at`, then try to take `cost`.
fn step(bucket: Bucket, limit: RateLimit, cost: f64, now: Instant) -> (Bucket, Decision) {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    let tokens = (bucket.tokens + elapsed * limit.rate).min(limit.burst);
    let cost = cost.min(limit.burst);
    if tokens >= cost {
        (Bucket { tokens: tokens - cost, at: now }, Decision::Allow)
    } else {
        let wait = if limit.rate > 0.0 { (cost - tokens) / limit.rate } else { 3600.0 };
        let secs = Duration::from_secs_f64(wait.clamp(0.0, 3600.0)).as_secs_f64().ceil().max(1.0);
        (Bucket { tokens, at: now }, Decision::RetryAfter(secs as u64))
    }
}

/// Per-producer token buckets.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter with `limit` for every producer.
    pub fn new(limit: RateLimit) -> Self {
        Self { limit, buckets: Mutex::new(HashMap::new()) }
    }

    /// Charges `events` to `producer` at `now`.
    pub fn check(&self, producer: &str, events: usize, now: Instant) -> Decision {
        let Ok(mut buckets) = self.buckets.lock() else {
            return Decision::Allow;
        };
        let cost = events as f64;
        if let Some(bucket) = buckets.get_mut(producer) {
            let (next, decision) = step(*bucket, self.limit, cost, now);
            *bucket = next;
            return decision;
        }
        if buckets.len() >= MAX_TRACKED {
            let limit = self.limit;
            buckets.retain(|_, b| step(*b, limit, 0.0, now).0.tokens < limit.burst);
        }
        let (next, decision) = step(Bucket { tokens: self.limit.burst, at: now }, self.limit, cost, now);
        buckets.insert(producer.to_owned(), next);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(RateLimit { rate: 100.0, burst: 200.0 });
        let t0 = Instant::now();
        assert_eq!(l.check("a", 150, t0), Decision::Allow);
        assert_eq!(l.check("a", 100, t0), Decision::RetryAfter(1));
        assert_eq!(l.check("b", 150, t0), Decision::Allow, "buckets are per producer");
        assert_eq!(l.check("a", 100, t0 + Duration::from_millis(500)), Decision::Allow);
        assert_eq!(l.check("a", 1000, t0 + Duration::from_millis(500)), Decision::RetryAfter(2));
    }

    proptest! {
        /// Over any schedule, what is allowed never exceeds burst + rate * elapsed.
        #[test]
        fn never_more_than_burst_plus_rate(
            reqs in proptest::collection::vec((0u64..2_000, 1usize..300), 1..100),
            rate in 1.0f64..1000.0,
            burst in 1.0f64..1000.0,
        ) {
            let l = RateLimiter::new(RateLimit { rate, burst });
            let t0 = Instant::now();
            let mut t = t0;
            let mut allowed = 0.0;
            for (gap_ms, n) in reqs {
                t += Duration::from_millis(gap_ms);
                if l.check("p", n, t) == Decision::Allow {
                    allowed += (n as f64).min(burst);
                }
            }
            let bound = burst + rate * (t - t0).as_secs_f64() + 1e-6;
            prop_assert!(allowed <= bound, "{allowed} > {bound}");
        }

        #[test]
        fn retry_after_is_enough(rate in 1.0f64..1000.0, burst in 1.0f64..1000.0, n in 1usize..2000) {
            let l = RateLimiter::new(RateLimit { rate, burst });
            let t0 = Instant::now();
            let _ = l.check("p", usize::MAX, t0);
            if let Decision::RetryAfter(s) = l.check("p", n, t0) {
                prop_assert_eq!(l.check("p", n, t0 + Duration::from_secs(s)), Decision::Allow);
            }
        }
    }
}
