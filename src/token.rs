//! `sluice token`: an access token from the local issuer.

use std::time::Duration;

use anyhow::Context as _;
use sluice_ingest::{LocalIssuer, SCOPE_EVENTS_WRITE};

use crate::cli::TokenArgs;

/// Mints a token for `args.producer` and prints it as the last line of stdout. The issuer key is
/// created in the data dir if `sluice up` has not run there yet (it will use the same key).
pub fn print(args: &TokenArgs) -> anyhow::Result<()> {
    let producer = args.producer.trim();
    anyhow::ensure!(!producer.is_empty(), "--producer must not be empty");
    let issuer = LocalIssuer::load_or_create(&args.data_dir)
        .with_context(|| format!("cannot load the local issuer key in {}", args.data_dir.display()))?;
    let scopes: Vec<&str> = if args.scopes.is_empty() {
        vec![SCOPE_EVENTS_WRITE]
    } else {
        args.scopes.iter().map(String::as_str).collect()
    };
    let token = issuer.mint(producer, &scopes, Duration::from_secs(args.ttl_secs)).context("cannot sign the token")?;
    crate::output::print(&format!("{token}\n"))?;
    Ok(())
}
