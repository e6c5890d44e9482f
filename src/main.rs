//! `sluice`: the command-line entry point. `main` only parses arguments and wires.

use std::process::ExitCode;

use clap::Parser;
use sluice::cli::{Cli, Command};
use sluice::output::{FailureReport, report_failure};
use sluice::up;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = Cli::parse();
    sluice_telemetry::init_logging(cli.log_format.into());
    let report = match &cli.command {
        Command::Up(_) => FailureReport::Log,
        _ => FailureReport::Stderr,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            report_failure(&anyhow::Error::new(e).context("cannot start the async runtime"), report);
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => {
                let shutdown = CancellationToken::new();
                sluice::signals::cancel_on_signal(shutdown.clone())
                    .map_err(|e| anyhow::anyhow!("cannot install signal handlers: {e}"))?;
                up::run(args.into_config(), shutdown).await
            }
            Command::Token(args) => sluice::token::print(&args),
            Command::Query(args) => sluice::lake::query(&args).await,
            Command::AthenaDdl(args) => sluice::lake::athena_ddl(&args),
            Command::Aggregates(args) => sluice::aggregates::print(&args).await,
            Command::Compact(args) => sluice::compact::run(&args).await,
            Command::Backfill(args) => sluice::backfill::run(&args).await,
            Command::Dlq(sluice::cli::DlqCommand::List(args)) => sluice::dlq::list(&args).await,
            Command::Redrive(args) => sluice::dlq::redrive(&args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report_failure(&e, report);
            ExitCode::FAILURE
        }
    }
}
