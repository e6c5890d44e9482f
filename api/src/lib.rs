//! sluice-api: the ingest API composed with the aggregate read side.
//!
//! `sluice-ingest` serves `GET /v1/aggregates` through its [`AggregatesReader`] port and does not
//! depend on the aggregate store; `sluice-aggregators` owns the store and the read logic
//! (validation, merging partials and links across shards) and knows no HTTP. This crate sees
//! both: [`AggregateStoreReader`] adapts any [`AggregateStore`] to the port (SQLite in
//! `sluice up`, DynamoDB in the Lambda), and [`lambda`] builds the ingest Lambda's Router, which
//! the `ingest-lambda` binary serves.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod lambda;

use sluice_aggregators::{AggregateQuery, AggregateQueryError, AggregateStore, StoreError, read_aggregates};
use sluice_ingest::aggregates_route::ReadFuture;
use sluice_ingest::{AggregatesError, AggregatesReader, AggregatesRequest};
use sluice_schemas::Registry;

/// The [`AggregatesReader`] over an aggregate store: `AggregateQuery::from_params` validates the
/// request, `read_aggregates` answers it (consistent reads, every shard's partials and links
/// merged), and the answer is the `AggregateResponse` document.
#[derive(Debug, Clone)]
pub struct AggregateStoreReader<S>(pub S);

impl<S: AggregateStore> AggregatesReader for AggregateStoreReader<S> {
    fn read<'a>(&'a self, registry: &'a Registry, request: &'a AggregatesRequest) -> ReadFuture<'a> {
        Box::pin(async move {
            let params = request.params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            let query = AggregateQuery::from_params(registry, params).map_err(port_error)?;
            let response = read_aggregates(&self.0, registry, &query).await.map_err(port_error)?;
            serde_json::to_value(response)
                .map_err(|e| AggregatesError::Unavailable(format!("cannot encode the answer: {e}")))
        })
    }
}

/// The port's error for an aggregate query error: a range the store refuses to scan is the
/// caller's to narrow (`from`), any other store failure is unavailability.
fn port_error(e: AggregateQueryError) -> AggregatesError {
    match e {
        AggregateQueryError::BadParam { param, message } => AggregatesError::BadParam { param, message },
        AggregateQueryError::Store(StoreError::TooLarge(m)) => {
            AggregatesError::BadParam { param: "from".to_owned(), message: format!("the range is too large: {m}") }
        }
        AggregateQueryError::Store(e) => AggregatesError::Unavailable(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_the_callers_disposition() {
        let bad = AggregateQueryError::BadParam { param: "window".into(), message: "not a window".into() };
        assert_eq!(
            port_error(bad),
            AggregatesError::BadParam { param: "window".into(), message: "not a window".into() }
        );
        let too_large = port_error(AggregateQueryError::Store(StoreError::TooLarge("20000 windows".into())));
        assert!(matches!(&too_large, AggregatesError::BadParam { param, .. } if param == "from"), "{too_large:?}");
        let down = port_error(AggregateQueryError::Store(StoreError::Unavailable("connection refused".into())));
        assert!(matches!(&down, AggregatesError::Unavailable(m) if m.contains("connection refused")), "{down:?}");
    }
}
