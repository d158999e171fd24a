use std::net::SocketAddr;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// The tutorial's demo app: answers every HTTP request with its own name.
#[derive(Parser)]
struct Args {
    /// Address to listen on (a pod IP in 127.0.0.0/8 and port 3000 in the quickstart).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// The "pod name" to report (the Go app reports its hostname).
    #[arg(long)]
    name: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    hellok8s::run(args.listen, args.name, CancellationToken::new()).await
}
