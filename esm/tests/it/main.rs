#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The one integration-test binary of sluice-esm.

mod esm;
mod esm_property;
mod failure_destination;
mod local_stream;
mod support;
