use clap::Parser;
use gateway::cli::{Cli, Command};
use portico_runtime::telemetry;

fn main() -> anyhow::Result<()> {
    portico_runtime::install_crypto_provider();
    let cli = Cli::parse();
    // One worker thread asked for (TOKIO_WORKER_THREADS=1, e.g. one pinned core): a
    // current-thread runtime does the same work without the work-stealing scheduler's
    // cross-thread wake-ups (measured in loadtest/RESULTS.md, "Optimisations").
    let one_thread = std::env::var("TOKIO_WORKER_THREADS").is_ok_and(|v| v.trim() == "1");
    let mut builder = if one_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = builder.enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Some(Command::Get(args)) => gateway::commands::get::run(args).await,
            Some(Command::AnnounceDebug(args)) => {
                telemetry::init_logging("info", false);
                Ok(portico_announce::debug::run(args, telemetry::shutdown_on_signals()).await?)
            }
            Some(Command::Hellok8s { listen, name }) => {
                hellok8s::run(listen, name, tokio_util::sync::CancellationToken::new()).await
            }
            Some(Command::Quickstart(args)) => {
                telemetry::init_logging("info", false);
                gateway::commands::quickstart::run(args, telemetry::shutdown_on_signals()).await
            }
            None => {
                telemetry::init_logging("info", cli.run.log_json);
                gateway::app::run(cli.run, telemetry::shutdown_on_signals()).await
            }
        }
    })
}
