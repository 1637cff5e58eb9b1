//! `list-pods`: the unary pattern, like `kubectl get pods`.

use std::process::ExitCode;

use clap::Parser;
use pod_service::client::output::{self, Format, Style};
use pod_service::client::{self, NamespaceArgs, ServerArgs, status_error};
use pod_service::pb::ListPodsRequest;

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
}

#[tokio::main]
async fn main() -> ExitCode {
    client::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut client = client::connect(&args.server).await?;
    let list = client
        .list_pods(ListPodsRequest {
            namespace: args.filter.namespace,
            resource_version: 0,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if list.pods.is_empty() {
        eprintln!("no pods (store version {})", list.resource_version);
    } else {
        client::print(&output::pods(&list.pods, Style::for_stdout(args.output)))?;
    }
    Ok(())
}
