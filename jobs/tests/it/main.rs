#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The one integration-test binary of sluice-jobs.

mod backfill;
mod compaction;
mod orchestration;
mod redrive;
mod redrive_aws;
mod template;
