//! `sluice query` and `sluice athena-ddl`: the lake from the analyst's side; [`lake_of`], the
//! lake every command reads.

use std::path::Path;

use anyhow::Context as _;
use sluice_lake::Lake;
use sluice_query::OutputFormat;

use crate::cli::{AthenaDdlArgs, QueryArgs};
use crate::output;
use crate::up::load_registry;

/// The lake directory of `sluice up` under `data_dir`.
pub fn local_lake_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("lake")
}

/// Opens the lake at `location` (any lake URL form; see `sluice_lake::parse_url`). Only an
/// `s3://` lake reads (and so may fail on) the `AWS_*` settings.
pub fn open_lake(location: &str) -> anyhow::Result<Lake> {
    let url = sluice_lake::parse_url(location)?;
    let aws =
        if url.scheme() == "s3" { sluice_aws::AwsSettings::from_env()? } else { sluice_aws::AwsSettings::default() };
    Ok(Lake::open(location, &aws)?)
}

/// The lake a command reads: `--lake` when given, else the lake of `sluice up` in `data_dir`
/// (which must exist).
pub fn lake_of(lake: Option<&str>, data_dir: &Path) -> anyhow::Result<Lake> {
    match lake {
        Some(location) => open_lake(location),
        None => {
            let dir = local_lake_dir(data_dir);
            anyhow::ensure!(
                dir.is_dir(),
                "no lake at {} (run `sluice up` and post events, or pass --lake)",
                dir.display()
            );
            let location = dir.to_str().with_context(|| format!("the lake path {} is not UTF-8", dir.display()))?;
            open_lake(location)
        }
    }
}

/// Runs the query and prints the result on stdout.
pub async fn query(args: &QueryArgs) -> anyhow::Result<()> {
    let registry = load_registry(args.schemas_dir.as_deref())?;
    let format: OutputFormat = args.format.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let lake = lake_of(args.lake.as_deref(), &args.data_dir)?;
    let mut out = sluice_query::query(&lake, &registry, &args.sql, format).await?;
    if !out.ends_with('\n') {
        out.push('\n');
    }
    output::print(&out)?;
    Ok(())
}

/// Prints the Athena DDL.
pub fn athena_ddl(args: &AthenaDdlArgs) -> anyhow::Result<()> {
    let registry = load_registry(args.schemas_dir.as_deref())?.with_event_time(sluice_schemas::EventTimeRange {
        lake_start: args.lake_start,
        ..sluice_schemas::EventTimeRange::default()
    });
    let ddl = sluice_query::athena_ddl(&registry, &args.lake, &args.database)?;
    output::print(&ddl)?;
    Ok(())
}
