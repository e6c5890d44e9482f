//! `sluice aggregates`: the read API's answer from the local aggregate store.

use anyhow::Context as _;
use sluice_aggregators::{AggregateQuery, SqliteAggregateStore, read_aggregates};

use crate::cli::AggregatesArgs;
use crate::up::load_registry;

/// Runs the query against `<data_dir>/aggregates.db` and prints the JSON response.
pub async fn print(args: &AggregatesArgs) -> anyhow::Result<()> {
    let registry = load_registry(args.schemas_dir.as_deref())?;
    let path = args.data_dir.join("aggregates.db");
    anyhow::ensure!(path.is_file(), "no aggregates at {} (run `sluice up` and post events first)", path.display());
    let store = SqliteAggregateStore::open(&path).context("cannot open the aggregate store")?;
    let mut params = vec![
        ("event_type", args.event_type.as_str()),
        ("window", args.window.as_str()),
        ("from", args.from.as_str()),
        ("to", args.to.as_str()),
    ];
    if let Some(g) = &args.group_by {
        params.push(("group_by", g.as_str()));
    }
    let query = AggregateQuery::from_params(&registry, params)?;
    let response = read_aggregates(&store, &registry, &query).await?;
    let mut out = serde_json::to_string_pretty(&response)?;
    out.push('\n');
    crate::output::print(&out)?;
    Ok(())
}
