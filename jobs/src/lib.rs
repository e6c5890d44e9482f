//! sluice-jobs: the home of the scheduled task functions (lake compaction, aggregate backfill,
//! redrive).
//!
//! None of them is built yet (ARCHITECTURE.md, Not yet built): the crate exports nothing.
