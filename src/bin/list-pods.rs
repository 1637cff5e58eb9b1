//! `list-pods`: the unary pattern, like `kubectl get pods`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use clap::Parser;
use pod_service::cli::output::{self, Format, Style};
use pod_service::cli::{self, NamespaceArgs, ServerArgs};
use pod_service::client;
use pod_service::contract::ListPodsRequest;

/// List pods (unary ListPods), sorted by namespace then name.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: NamespaceArgs,
    /// How to print the pods.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Seconds to wait for the answer.
    #[arg(long, value_name = "SECONDS", default_value_t = client::DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout).context("invalid --timeout")?;
    let mut client = client::connect(&args.server.client_config()?).await?;
    let request = ListPodsRequest {
        namespace: args.filter.namespace,
        ..ListPodsRequest::default()
    };
    let list = client::with_deadline(timeout, request, |request| client.list_pods(request)).await?;
    if list.pods.is_empty() {
        eprintln!("no pods (store version {})", list.resource_version);
    } else {
        cli::print(&output::pods(&list.pods, Style::for_stdout(args.output)))?;
    }
    Ok(())
}
