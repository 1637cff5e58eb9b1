//! `watch-pods`: the server-streaming pattern, like `kubectl get pods -w`
//! (and, with a NAME, `kubectl get pod NAME -w`).

use std::process::ExitCode;

use clap::Parser;
use pod_service::cli::output::{Format, Style, WatchPrinter};
use pod_service::cli::{self, NamespaceArgs, ServerArgs};
use pod_service::client::{PodWatch, Servers, WatchUpdate};

/// Print the pods, then every change as it happens (WatchPods), until Ctrl-C.
///
/// With a NAME (and --namespace), only that pod: as it is, if it exists,
/// then its changes, its delete and a re-creation included.
///
/// The watch survives dropped connections and server restarts: it resumes
/// from the last version it printed, so no change is printed twice or missed.
/// With several servers (--addr A,B), replicas of one registry, each resume
/// goes to the next of them.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    filter: NamespaceArgs,
    /// Only the pod of this name in --namespace.
    name: Option<String>,
    /// How to print the pods and changes.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let name = args.name.unwrap_or_default();
    if !name.is_empty() && args.filter.namespace.is_empty() {
        anyhow::bail!(
            "NAME needs --namespace: a pod is named within its namespace \
             (watch-pods -n NAMESPACE NAME)"
        );
    }
    // Connect first so that a wrong address fails at once; after that the
    // channels reconnect by themselves whenever the watch resumes.
    let servers = Servers::connect(&args.server.client_config()?).await?;
    let mut watch = PodWatch::new(servers, args.filter.namespace).named(name);
    let mut printer = WatchPrinter::new(Style::for_stdout(args.output));
    loop {
        let rows = match watch.next().await? {
            WatchUpdate::Listed(events) => printer.rows(&events),
            WatchUpdate::Changed(event) => printer.rows(std::slice::from_ref(&event)),
            // A bookmark moves the resume point; there is nothing to print.
            WatchUpdate::Progressed { .. } => continue,
            WatchUpdate::Interrupted { note, .. } => {
                eprintln!("{note}");
                continue;
            }
        };
        cli::print(&rows)?;
    }
}
