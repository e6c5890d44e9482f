//! `sluice query` and `sluice athena-ddl`: the lake from the analyst's side.

use std::path::Path;

use anyhow::Context as _;
use sluice_query::OutputFormat;

use crate::cli::{AthenaDdlArgs, QueryArgs};
use crate::up::load_registry;

/// The lake directory of `sluice up` under `data_dir`.
pub fn local_lake_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("lake")
}

/// Runs the query and prints the result on stdout.
pub async fn query(args: &QueryArgs) -> anyhow::Result<()> {
    let registry = load_registry(args.schemas_dir.as_deref())?;
    let format: OutputFormat = args.format.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let lake = match &args.lake {
        Some(url) => url.clone(),
        None => {
            let dir = local_lake_dir(&args.data_dir);
            anyhow::ensure!(
                dir.is_dir(),
                "no lake at {} (run `sluice up` and post events, or pass --lake)",
                dir.display()
            );
            dir.to_string_lossy().into_owned()
        }
    };
    let out = sluice_query::query(&lake, &registry, &args.sql, format).await.context("query failed")?;
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(())
}

/// Prints the Athena DDL.
pub fn athena_ddl(args: &AthenaDdlArgs) -> anyhow::Result<()> {
    let registry = load_registry(args.schemas_dir.as_deref())?.with_event_time(sluice_schemas::EventTimeRange {
        lake_start: args.lake_start,
        ..sluice_schemas::EventTimeRange::default()
    });
    let ddl = sluice_query::athena_ddl(&registry, &args.lake, &args.database)?;
    print!("{ddl}");
    Ok(())
}
