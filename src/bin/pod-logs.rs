//! `pod-logs`: server streaming of stored log lines, like `kubectl logs -f`.

use std::process::ExitCode;

use clap::Parser;
use pod_service::cli::{self, PodArgs, ServerArgs};
use pod_service::client::{self, status_error};
use pod_service::contract::GetLogsRequest;

/// Print a pod's uploaded log lines (GetLogs); with --follow, keep printing
/// new lines as they are uploaded, until Ctrl-C or the pod is deleted.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    target: PodArgs,
    /// After the stored lines, stream new ones as they arrive.
    #[arg(short, long)]
    follow: bool,
    /// Only the last N stored lines (0 = all).
    #[arg(long, value_name = "N", default_value_t = 0)]
    tail: u32,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = client::connect(&args.server.client_config()?).await?;
    let mut chunks = client
        .get_logs(GetLogsRequest {
            namespace: args.target.namespace,
            pod: args.target.pod,
            follow: args.follow,
            tail_lines: args.tail,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    while let Some(chunk) = chunks.message().await.map_err(status_error)? {
        let mut text = chunk.lines.join("\n");
        text.push('\n');
        cli::print(&text)?;
    }
    Ok(())
}
