//! Integration tests of sluice-schemas (one binary: linking is the slow part).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod arrow;
mod differential;
mod evolution;
mod fixtures;
mod props;
mod registry;
mod validation;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use sluice_schemas::{IngestContext, Registry};

/// The compiled-in registry, built once.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry::builtin().unwrap())
}

/// The crate directory, which is also the shipped schema directory.
pub fn schemas_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub fn test_data(rel: &str) -> PathBuf {
    schemas_dir().join("tests/data").join(rel)
}

pub fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The context every table-driven case runs with.
pub fn ctx() -> IngestContext {
    IngestContext::new("client-1", utc("2024-05-01T12:00:00Z"))
}
