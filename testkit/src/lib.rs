//! sluice-testkit: what the workspace's test suites share (a dev-dependency only).
//!
//! - [`check_cases`]: data-driven cases, `<dir>/<case>/<input>` against `<dir>/<case>/expected.json`,
//!   with `UPDATE_EXPECT=1` rewriting the expectations.
//! - [`measure`]: the benchmarks' thread CPU time and process memory.
//! - [`moto`]: the moto gate (the `SdkConfig` of a moto-backed test, or a skip), unique resource
//!   names, the lake on moto's S3.
//! - [`assert_reads_exactly`]: a Lambda configuration reads exactly the variables its table lists.
//! - [`python`]: the Python with pyarrow and DuckDB that cross-checks run, or a skip.
//! - [`generate`]: the deterministic, seeded event generator (realistic mixes of the shipped
//!   event types, their stream records and Kinesis batches) and its ground truth.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod generate;
pub mod measure;
pub mod moto;

use std::future::Future;
use std::path::Path;

use serde_json::Value;

/// Runs every case under `dir` (one directory per case, in name order): `run` gets the bytes of
/// the case's `input` file and returns the observed result, which must equal the case's
/// `expected.json`. With `UPDATE_EXPECT` set, writes `expected.json` instead (review the diff!).
/// Panics listing every failing case; also when `dir` holds fewer than `at_least` cases.
pub async fn check_cases<F, Fut>(dir: &Path, input: &str, at_least: usize, mut run: F)
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = Value>,
{
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= at_least, "{} holds {} cases, expected at least {at_least}", dir.display(), cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let bytes = std::fs::read(case.join(input)).unwrap_or_else(|e| panic!("{}: {e}", case.display()));
        let actual = run(bytes).await;
        let expected_path = case.join("expected.json");
        if update {
            std::fs::write(&expected_path, serde_json::to_string_pretty(&actual).unwrap() + "\n").unwrap();
            continue;
        }
        let text = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_EXPECT=1 writes it)", expected_path.display()));
        let expected: Value = serde_json::from_str(&text).unwrap();
        if actual != expected {
            failures.push(format!("{}:\n  expected {expected}\n  actual   {actual}", case.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s) (UPDATE_EXPECT=1 rewrites):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// `$SLUICE_PYTHON` (exported by `scripts/test`: the test venv's python, with pyarrow and
/// DuckDB), or `None` after printing `skipped (no SLUICE_PYTHON): <test>` under plain
/// `cargo test`. Under the test command (`SLUICE_REQUIRE_MOTO=1`) a missing Python is a
/// failure, so these cross-checks never skip silently there.
pub fn python(test: &str) -> Option<String> {
    match std::env::var("SLUICE_PYTHON").ok().filter(|p| !p.trim().is_empty()) {
        Some(python) => Some(python),
        None => {
            let required = std::env::var("SLUICE_REQUIRE_MOTO")
                .is_ok_and(|v| v.trim() == "1" || v.trim().eq_ignore_ascii_case("true"));
            assert!(!required, "SLUICE_PYTHON is not set but SLUICE_REQUIRE_MOTO=1: run the tests with scripts/test");
            eprintln!("skipped (no SLUICE_PYTHON): {test}");
            None
        }
    }
}

/// Asserts that `from_lookup` (a configuration's pure constructor over a variable lookup) reads
/// exactly the variables `listed` names (its `ENV_VARS` table), when every variable is set:
/// `value(name)` gives the value of `name` (something the configuration accepts).
pub fn assert_reads_exactly<T>(
    listed: &[(&str, &str)],
    value: impl Fn(&str) -> String,
    from_lookup: impl FnOnce(&dyn Fn(&str) -> Option<String>) -> T,
) {
    let read = std::cell::RefCell::new(Vec::new());
    let _ = from_lookup(&|name: &str| {
        read.borrow_mut().push(name.to_owned());
        Some(value(name))
    });
    let mut read = read.into_inner();
    read.sort();
    read.dedup();
    let mut listed: Vec<&str> = listed.iter().map(|(name, _)| *name).collect();
    listed.sort();
    assert_eq!(read, listed, "the variables read (left) and the ENV_VARS table (right) differ");
}
