//! sluice-jobs: the scheduled task functions (lake compaction, aggregate backfill, redrive),
//! called by Step Functions in AWS and by the in-process scheduler of `sluice up`.
//!
//! This crate is reserved by the workspace layout of DESIGN.md §2; its task functions arrive with
//! the compaction, backfill and redrive issue. Until then it exports nothing.
