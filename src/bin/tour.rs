//! `tour`: a guided tour of the four gRPC call patterns, against a server
//! it starts itself (in memory, on a free loopback port). Each step runs the
//! same library code as the pattern's own binary and shows its real output.

use std::io::Cursor;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use pod_service::cli::output::{self, Format, Style, WatchPrinter};
use pod_service::cli::{self, print};
use pod_service::client::sync::{self, Mode};
use pod_service::client::{self, ClientConfig, PodWatch, WatchUpdate, status_error, upload};
use pod_service::contract::{
    GetLogsRequest, ListPodsRequest, Pod, PodRef, SyncRequest, sync_request,
};
use pod_service::sample;
use pod_service::server::{InProcessServer, ServerConfig};
use pod_service::store::{Registry, StoreConfig};
use tokio::io::BufReader;

/// A guided tour of the four gRPC call patterns, with a server of its own.
///
/// It starts a PodService in this process (in memory, on a free loopback
/// port, with the sample pods) and runs each pattern's client against it,
/// explaining each step. Nothing is left behind.
#[derive(Parser)]
#[command(version)]
struct Args {}

#[tokio::main]
async fn main() -> ExitCode {
    Args::parse();
    cli::exit(run().await)
}

async fn run() -> anyhow::Result<()> {
    let registry = Registry::in_memory(StoreConfig::default());
    registry.load(sample::sample()).await?;
    let mut server = InProcessServer::start(Arc::new(registry), ServerConfig::default())
        .context("cannot start the tour's server")?;
    let addr = server.url();
    let mut client = client::connect(&ClientConfig::new(addr.clone())).await?;
    let style = Style::for_stdout(Format::Table);

    say(&format!(
        "A PodService is running in this process at {addr}, holding a few sample pods.\n\
         gRPC has four call patterns; here is each one, doing something real."
    ))?;

    step(
        "1. Unary: ListPods (the list-pods binary)",
        "One request, one response, like a function call: list the pods.",
    )?;
    let list = client
        .list_pods(ListPodsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner();
    print(&output::pods(&list.pods, style))?;
    say(&format!(
        "The list reflects store version {}; every change takes the next version.",
        list.resource_version
    ))?;
    say(
        "A big list comes in pages (list-pods asks for 500 pods a page). Here 3 a page, and\n\
         staging/web changes after the first: every page is still the list at its version\n\
         (staging/web shows the version it had before the change).",
    )?;
    let mut pages = client::Pages::new("", 3);
    let mut first = true;
    while let Some(request) = pages.next_request() {
        let page = client
            .list_pods(request)
            .await
            .map_err(status_error)?
            .into_inner();
        pages.received(&page);
        let pods: Vec<String> = page
            .pods
            .iter()
            .map(|pod| format!("{}/{} v{}", pod.namespace, pod.name, pod.resource_version))
            .collect();
        let next = if page.continue_token.is_empty() {
            "the last page"
        } else {
            "and a continue_token"
        };
        print(&format!(
            "  page at version {}: {}; {next}\n",
            page.resource_version,
            pods.join(", ")
        ))?;
        if std::mem::take(&mut first) {
            scale(&mut client, "staging", "web", 3).await?;
        }
    }

    step(
        "2. Server streaming: WatchPods (the watch-pods binary)",
        "One request, then a stream of responses: the pods of 'production', then each\n\
         change as it happens. Another client now changes three pods while we watch.",
    )?;
    let mut watch = PodWatch::new(client.clone(), "production");
    let mut printer = WatchPrinter::new(style);
    let WatchUpdate::Listed(listed) = watch.next().await? else {
        anyhow::bail!("the watch did not start with a list");
    };
    print(&printer.rows(&listed))?;
    make_changes(&mut client).await?;
    let mut changes = 0;
    while changes < 3 {
        if let WatchUpdate::Changed(event) = watch.next().await? {
            print(&printer.rows(std::slice::from_ref(&event)))?;
            changes += 1;
        }
    }
    say("A watcher that drops out resumes from its last version: nothing missed, nothing twice.")?;
    say(
        "A watch may ask for bookmarks too. Here 'dev', from version 0: its pods, then a\n\
         bookmark, \"you have every change up to N\", so the snapshot is known complete:",
    )?;
    let mut dev = client
        .watch_pods(ListPodsRequest {
            namespace: "dev".into(),
            allow_bookmarks: true,
            ..ListPodsRequest::default()
        })
        .await
        .map_err(status_error)?
        .into_inner();
    while let Some(pod) = dev.message().await.map_err(status_error)? {
        if pod.bookmark {
            print(&format!("  bookmark at version {}\n", pod.resource_version))?;
            break;
        }
        print(&format!(
            "  {}/{} v{}\n",
            pod.namespace, pod.name, pod.resource_version
        ))?;
    }
    drop(dev);
    say(
        "A quiet watch gets one every --bookmark-interval as well: it keeps its place in the\n\
         history however busy other namespaces are, and resumes without listing again.",
    )?;

    step(
        "3. Client streaming: UploadLogs (the upload-logs binary)",
        "A stream of requests, then one response: 2,000 log lines in chunks to\n\
         production/web, and the server's count of what it stored.",
    )?;
    let lines: String = (1..=2_000)
        .map(|i| format!("GET /api/pods 200 {}ms request={i}\n", i % 37))
        .collect();
    let input: upload::Input = (
        "generated".into(),
        Box::new(Cursor::new(lines.into_bytes())),
    );
    let report = upload::upload(&mut client, "production", "web", vec![input], None).await?;
    print(&format!(
        "{}\n",
        upload::describe(&report, "production", "web")
    ))?;
    say("And streamed back (GetLogs, the pod-logs binary), the last three lines:")?;
    let mut logs = client
        .get_logs(GetLogsRequest {
            namespace: "production".into(),
            pod: "web".into(),
            follow: false,
            tail_lines: 3,
            from_line: 0,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    while let Some(chunk) = logs.message().await.map_err(status_error)? {
        print(&format!("{}\n", chunk.lines.join("\n")))?;
    }

    step(
        "4. Bidirectional streaming: SyncPods (the sync-pods binary)",
        "Both sides stream at once: the session sends ops and receives their acks and\n\
         every client's changes, interleaved. This script watches 'staging', applies,\n\
         tries an update with a stale version (refused: ABORTED), and deletes:",
    )?;
    let script = "watch staging\n\
                  apply staging/api status=Running replicas=2\n\
                  apply staging/api replicas=3 version=1\n\
                  delete staging/web\n";
    for line in script.lines() {
        print(&format!("  > {line}\n"))?;
    }
    let session = sync::run_session(
        &mut client,
        BufReader::new(script.as_bytes()),
        tokio::io::stdout(),
        Mode::Script,
        |notice| {
            if let sync::Notice::Note(note) = notice {
                eprintln!("{note}");
            }
        },
    )
    .await?;
    say(&format!(
        "{} ops, {} refused, each acknowledged in order.",
        session.ops, session.failed
    ))?;

    say("\nThat was all four. To run them yourself:\n  \
         cargo run --bin pod-server            # in one terminal\n  \
         cargo run --bin watch-pods            # in another\n  \
         cargo run --bin sync-pods             # and type 'help'")?;
    server.stop().await.context("the tour's server failed")?;
    Ok(())
}

/// What the other client does during the watch step.
/// Sets the replicas of one pod, over SyncPods.
async fn scale(
    client: &mut client::Client,
    namespace: &str,
    name: &str,
    replicas: i32,
) -> anyhow::Result<()> {
    let apply = SyncRequest {
        id: 1,
        op: Some(sync_request::Op::Apply(Pod {
            namespace: namespace.into(),
            name: name.into(),
            status: "Running".into(),
            replicas,
            ..Pod::default()
        })),
    };
    let mut events = client
        .sync_pods(tokio_stream::iter([apply]))
        .await
        .map_err(status_error)?
        .into_inner();
    while events.message().await.map_err(status_error)?.is_some() {}
    Ok(())
}

async fn make_changes(client: &mut client::Client) -> anyhow::Result<()> {
    let apply = |name: &str, status: &str, replicas: i32| {
        sync_request::Op::Apply(Pod {
            namespace: "production".into(),
            name: name.into(),
            status: status.into(),
            replicas,
            ..Pod::default()
        })
    };
    let ops = [
        apply("web", "Running", 6),
        apply("cache", "Pending", 1),
        sync_request::Op::Delete(PodRef {
            namespace: "production".into(),
            name: "postgres".into(),
        }),
    ];
    let requests: Vec<SyncRequest> = ops
        .into_iter()
        .zip(1..)
        .map(|(op, id)| SyncRequest { id, op: Some(op) })
        .collect();
    let mut events = client
        .sync_pods(tokio_stream::iter(requests))
        .await
        .map_err(status_error)?
        .into_inner();
    while events.message().await.map_err(status_error)?.is_some() {}
    Ok(())
}

fn step(title: &str, text: &str) -> anyhow::Result<()> {
    say(&format!("\n== {title}\n{text}\n"))
}

fn say(text: &str) -> anyhow::Result<()> {
    print(&format!("{text}\n"))?;
    Ok(())
}
