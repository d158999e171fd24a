//! `lb-controller`: MetalLB-compatible LoadBalancer IP allocation.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "lb-controller",
    version,
    about = "MetalLB-compatible LoadBalancer IP allocation for Portico"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions this controller reads (or write them into --out).
    Crds {
        /// Write one file per CRD into this directory instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { out: Some(dir) } => lb_controller::crds::write_to(&dir),
        Command::Crds { out: None } => {
            print!("{}", lb_controller::crds::stream()?);
            Ok(())
        }
    }
}
