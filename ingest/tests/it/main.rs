#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Router tests (`tower::ServiceExt::oneshot`, no server), auth, the EventLog contract suite
//! (memory, local stream, Kinesis on moto), the OpenAPI agreement and the Lambda fixture.

mod aggregates;
mod auth;
mod eventlog_contract;
mod events;
mod health;
mod lambda;
mod openapi;
mod support;
