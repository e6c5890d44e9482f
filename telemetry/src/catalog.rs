//! The metrics catalog: every metric sluice emits, defined once.
//!
//! Each entry fixes the metric's name, kind, unit, help text and label names. Emitters look
//! their series up in a [`Metrics`](crate::Metrics) registry by entry (`metrics.counter(&
//! catalog::INGEST_EVENTS, ["accepted"])`), never by a string, so the Prometheus text of
//! `GET /metrics` and the CloudWatch EMF documents of the Lambdas are rendered from this table
//! alone. Definitions can only be made here: the constructors are private to the crate.
//!
//! Naming: `sluice_<component>_<what>`, counters end in `_total`, units are part of the name
//! (`_ms`). "Dead letter" names a record a handler rejected into the dead-letter port; the event
//! source mapping's store of whole failed batches is the *failure destination*.

/// The CloudWatch namespace the Lambdas report every metric under (EMF).
pub const NAMESPACE: &str = "sluice";

/// What a metric measures over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A monotonically increasing total (Prometheus `counter`; EMF reports its increase).
    Counter,
    /// A current value that goes up and down (Prometheus `gauge`; EMF reports the value).
    Gauge,
}

impl Kind {
    /// The Prometheus `# TYPE` keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// The unit CloudWatch records for a metric (EMF `Unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A plain count.
    Count,
    /// Milliseconds.
    Milliseconds,
}

impl Unit {
    /// The CloudWatch unit name.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One catalog entry, kind-erased (what the renderers and [`ALL`] see).
#[derive(Debug, PartialEq, Eq)]
pub struct Metric {
    /// The metric name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), the same in Prometheus and EMF.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The CloudWatch unit.
    pub unit: Unit,
    /// One line of help text (Prometheus `# HELP`).
    pub help: &'static str,
    /// Label names, in the order emitters pass their values (EMF dimensions).
    pub labels: &'static [&'static str],
}

/// A counter entry with `N` labels: [`Metrics::counter`](crate::Metrics::counter) takes exactly
/// `N` label values and only counter entries.
#[derive(Debug)]
pub struct CounterDef<const N: usize>(Metric);

/// A gauge entry with `N` labels: [`Metrics::gauge`](crate::Metrics::gauge) takes exactly `N`
/// label values and only gauge entries.
#[derive(Debug)]
pub struct GaugeDef<const N: usize>(Metric);

impl<const N: usize> CounterDef<N> {
    pub(crate) const fn new(
        name: &'static str,
        unit: Unit,
        labels: &'static [&'static str; N],
        help: &'static str,
    ) -> Self {
        CounterDef(Metric { name, kind: Kind::Counter, unit, help, labels })
    }

    /// The entry.
    pub const fn metric(&'static self) -> &'static Metric {
        &self.0
    }
}

impl<const N: usize> GaugeDef<N> {
    pub(crate) const fn new(
        name: &'static str,
        unit: Unit,
        labels: &'static [&'static str; N],
        help: &'static str,
    ) -> Self {
        GaugeDef(Metric { name, kind: Kind::Gauge, unit, help, labels })
    }

    /// The entry.
    pub const fn metric(&'static self) -> &'static Metric {
        &self.0
    }
}

/// Defines each entry as a `pub static` of its typed definition and lists them all in [`ALL`],
/// so an entry cannot exist outside the table.
macro_rules! catalog {
    ($(
        $(#[$doc:meta])*
        $ident:ident = $def:ident { name: $name:literal, unit: $unit:ident, labels: [$($label:literal),*], help: $help:literal $(,)? }
    ),* $(,)?) => {
        $(
            $(#[$doc])*
            #[doc = concat!("\n\n`", $name, "`: ", $help)]
            pub static $ident: $def<{ <[&str]>::len(&[$($label),*]) }> =
                $def::new($name, Unit::$unit, &[$($label),*], $help);
        )*

        /// Every catalog entry, in definition order.
        pub static ALL: &[&Metric] = &[$(&$ident.0),*];
    };
}

catalog! {
    // Ingest API (`sluice-ingest`).
    /// Counted once per event in a `POST /v1/events` body; `outcome` is `accepted`, `rejected`
    /// (invalid, answered per item) or `unavailable` (the stream did not take it).
    INGEST_EVENTS = CounterDef {
        name: "sluice_ingest_events_total",
        unit: Count,
        labels: ["outcome"],
        help: "Events posted to the ingest API, by outcome",
    },
    /// Counted once per `POST /v1/events` response; `status` is the HTTP status code.
    INGEST_REQUESTS = CounterDef {
        name: "sluice_ingest_requests_total",
        unit: Count,
        labels: ["status"],
        help: "POST /v1/events requests, by status",
    },

    // Aggregator handler and store (`sluice-aggregators`).
    /// `outcome` is `aggregated`, `invalid` (dead-lettered) or `failed` (reported as a batch
    /// item failure, so redelivered).
    AGGREGATOR_RECORDS = CounterDef {
        name: "sluice_aggregator_records_total",
        unit: Count,
        labels: ["outcome"],
        help: "Stream records seen by the aggregator, by outcome",
    },
    /// `outcome` is `written`, `skipped` (already applied: a redelivery) or `conflict` (a
    /// concurrent writer; retried).
    AGGREGATOR_PARTIALS = CounterDef {
        name: "sluice_aggregator_partials_total",
        unit: Count,
        labels: ["outcome"],
        help: "Aggregate partials by apply outcome",
    },
    /// Records the allocation-free decoder accepted without the schema registry's validator.
    AGGREGATOR_FAST_DECODED = CounterDef {
        name: "sluice_aggregator_fast_decoded_total",
        unit: Count,
        labels: [],
        help: "Records validated by the fast decoder (the rest by the schema registry)",
    },
    /// Write request units the DynamoDB aggregate store consumed, per table.
    AGGREGATES_WRITE_UNITS = CounterDef {
        name: "sluice_aggregates_write_units_total",
        unit: Count,
        labels: ["table"],
        help: "DynamoDB write request units consumed by aggregate writes",
    },

    // Lake writer (`sluice-sinks`).
    /// Every record of every invocation, redeliveries included.
    LAKE_RECORDS = CounterDef {
        name: "sluice_lake_records_total",
        unit: Count,
        labels: [],
        help: "Records delivered to the lake writer",
    },
    /// Rows in the Parquet files written (a rewritten file counts again).
    LAKE_ROWS_WRITTEN = CounterDef {
        name: "sluice_lake_rows_written_total",
        unit: Count,
        labels: [],
        help: "Rows written to lake files",
    },
    /// Parquet files written (a retried write overwrites its file and counts again).
    LAKE_FILES_WRITTEN = CounterDef {
        name: "sluice_lake_files_written_total",
        unit: Count,
        labels: [],
        help: "Parquet files written",
    },
    /// Records the lake writer rejected into the dead-letter port.
    LAKE_DEAD_LETTERED = CounterDef {
        name: "sluice_lake_dead_lettered_total",
        unit: Count,
        labels: [],
        help: "Invalid records the lake writer dead-lettered",
    },
    /// Invocations answered with a batch item failure.
    LAKE_FAILED_BATCHES = CounterDef {
        name: "sluice_lake_failed_batches_total",
        unit: Count,
        labels: [],
        help: "Batches with a reported item failure (redelivered from it)",
    },

    // Local event source mapping runner (`sluice-stream`'s `esm`, published by `sluice up`).
    /// One per handler invocation, retries and bisected halves included.
    ESM_BATCHES = CounterDef {
        name: "sluice_esm_batches_total",
        unit: Count,
        labels: ["mapping"],
        help: "Handler invocations by the event source mapping",
    },
    /// Records in those invocations.
    ESM_RECORDS = CounterDef {
        name: "sluice_esm_records_total",
        unit: Count,
        labels: ["mapping"],
        help: "Records delivered by the event source mapping, redeliveries included",
    },
    /// Function errors and invocations that reported batch item failures.
    ESM_FAILURES = CounterDef {
        name: "sluice_esm_failures_total",
        unit: Count,
        labels: ["mapping"],
        help: "Failed invocations (function errors and partial failures)",
    },
    /// Retries scheduled (bisection is not a retry).
    ESM_RETRIES = CounterDef {
        name: "sluice_esm_retries_total",
        unit: Count,
        labels: ["mapping"],
        help: "Retries scheduled by the event source mapping",
    },
    /// Records of whole failed batches stored in the failure destination after the retries
    /// ran out or the records expired (not the handlers' dead letters).
    ESM_FAILURE_DESTINATION_RECORDS = CounterDef {
        name: "sluice_esm_failure_destination_records_total",
        unit: Count,
        labels: ["mapping"],
        help: "Records of failed batches sent to the failure destination, expired records included",
    },
    /// Lambda's `IteratorAge`: the age of the last record of the most recent batch, the
    /// maximum over shards.
    ESM_ITERATOR_AGE_MS = GaugeDef {
        name: "sluice_esm_iterator_age_ms",
        unit: Milliseconds,
        labels: ["mapping"],
        help: "Age of the last record read, in milliseconds",
    },
}
