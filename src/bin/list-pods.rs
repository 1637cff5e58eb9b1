//! `list-pods`: the unary pattern, like `kubectl get pods`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use clap::Parser;
use pod_service::cli::output::{Format, ListPrinter, Style};
use pod_service::cli::{self, NamespaceArgs, ServerArgs};
use pod_service::client::{self, Pages, Servers};

/// List pods (unary ListPods), sorted by namespace then name, a page at a
/// time: every page is consistent with the first, whatever is written
/// meanwhile, and rows print as their page arrives.
///
/// With several servers (--addr A,B), a page that one fails to give (it
/// is unreachable, stopping or too slow) is asked of the next, each at
/// most once.
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
    /// Pods per page (the server may send fewer); 0 asks for the whole list
    /// in one message, which fails beyond the 4 MiB a message may have.
    #[arg(long, value_name = "PODS", default_value_t = client::DEFAULT_PAGE_SIZE)]
    page_size: u32,
    /// Seconds to wait for each page.
    #[arg(long, value_name = "SECONDS", default_value_t = client::DEFAULT_TIMEOUT.as_secs_f64())]
    timeout: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let timeout = Duration::try_from_secs_f64(args.timeout).context("invalid --timeout")?;
    let mut servers = Servers::connect(&args.server.client_config()?).await?;
    let mut pages = Pages::new(args.filter.namespace, args.page_size);
    let mut printer = ListPrinter::new(Style::for_stdout(args.output));
    let mut listed = 0;
    while let Some(request) = pages.next_request() {
        // The replicas share the store, so any of them continues the list
        // from the previous page's token.
        let page = servers
            .call(async |client| {
                client::with_deadline(timeout, request.clone(), |request| {
                    client.list_pods(request)
                })
                .await
            })
            .await;
        let page = match (page, listed) {
            (Ok(page), _) => page,
            (Err(err), 0) => return Err(err),
            (Err(err), n) => return Err(err.context(format!("the list broke off after {n} pods"))),
        };
        pages.received(&page);
        listed += page.pods.len();
        if !page.pods.is_empty() {
            cli::print(&printer.rows(&page.pods))?;
        }
    }
    if listed == 0 {
        eprintln!("no pods (store version {})", pages.version());
    }
    Ok(())
}
