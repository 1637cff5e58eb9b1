//! `pod-logs`: server streaming of stored log lines, like `kubectl logs -f`.

use std::process::ExitCode;

use clap::Parser;
use pod_service::cli::{self, PodArgs, ServerArgs};
use pod_service::client::{LogRead, LogUpdate, Servers};
use pod_service::contract::GetLogsRequest;

/// Print a pod's uploaded log lines (GetLogs); with --follow, keep printing
/// new lines as they are uploaded, until Ctrl-C or the pod is deleted.
/// A broken stream is resumed (at the next --addr, if several) from the
/// line after the last one printed: nothing is printed twice or missed.
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
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "from_line"
    )]
    tail: u32,
    /// Start at line number N (lines count from 1 per pod; see --numbers).
    #[arg(long, value_name = "N", default_value_t = 0)]
    from_line: u64,
    /// Print each line's number before it, tab-separated.
    #[arg(long)]
    numbers: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let servers = Servers::connect(&args.server.client_config()?).await?;
    let mut read = LogRead::new(
        servers,
        GetLogsRequest {
            namespace: args.target.namespace,
            pod: args.target.pod,
            follow: args.follow,
            tail_lines: args.tail,
            from_line: args.from_line,
        },
    );
    let mut expected = None;
    while let Some(update) = read.next().await? {
        match update {
            LogUpdate::Lines { first_line, lines } => {
                if let Some(expected) = expected
                    && first_line > expected
                {
                    eprintln!(
                        "lines {expected}-{} were dropped by the server's retention",
                        first_line - 1
                    );
                }
                expected = Some(first_line + lines.len() as u64);
                let mut text = String::new();
                for (i, line) in lines.iter().enumerate() {
                    if args.numbers && first_line > 0 {
                        text.push_str(&format!("{}\t", first_line + i as u64));
                    }
                    text.push_str(line);
                    text.push('\n');
                }
                cli::print(&text)?;
            }
            LogUpdate::Interrupted { note, .. } => eprintln!("{note}"),
        }
    }
    Ok(())
}
