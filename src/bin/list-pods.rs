//! `list-pods`: the unary pattern, like `kubectl get pods`.

use std::process::ExitCode;

use clap::Parser;
use pod_service::client::{self, NamespaceArgs, ServerArgs, status_error, table};
use pod_service::pb::ListPodsRequest;

/// List pods (unary ListPods), sorted by namespace then name.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: NamespaceArgs,
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
        client::print(&table::pods(&list.pods))?;
    }
    Ok(())
}
