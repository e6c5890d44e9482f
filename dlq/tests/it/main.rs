#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! One contract suite over every dead-letter adapter.

mod contract;
