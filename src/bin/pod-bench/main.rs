//! `pod-bench`: measures a server under load, one call pattern at a time.
//! Each load (in `load/`) returns what it measured, and the reporter
//! (`report.rs`) prints it as a table row or a JSON object.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pod_service::cli::{self, ServerArgs};

#[cfg(test)]
mod json_keys;
mod load;
mod report;
mod server;
mod target;

use load::{ceiling, fanout, follow, followers, pages, snapshot, sync, unary, upload, watchers};
use report::Report;
use server::StoreKind;
use target::Target;

/// Measure a PodService under load and print the figures (a table, or JSON
/// with --json): unary ListPods, WatchPods snapshots, fan-out of changes to
/// many watchers, idle watchers' memory, paged lists, SyncPods sessions,
/// log uploads, and followed logs (latency, idle followers' memory).
///
/// Without --addr it starts a server in this process on a free loopback
/// port, with the store chosen by --store (a durable one lives in a fresh
/// temporary directory, removed afterwards).
#[derive(Parser)]
#[command(version)]
// The shared --addr, with no default: without it, the in-process server.
#[command(mut_arg("addrs", |addr| addr.default_value(None::<&str>).help(ADDR_HELP)))]
struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// The store of the in-process server.
    #[arg(long, value_enum, default_value_t = StoreKind::Durable)]
    store: StoreKind,
    /// Client connections to spread the streams over.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Pods the in-process server starts with (like the Go peer's -pods N).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Print one JSON object per run instead of a table.
    #[arg(long)]
    json: bool,
    /// Names the namespaces a run writes to (default: this process's id, so
    /// that concurrent runs do not meet). Runs with the same tag reuse the
    /// same pods, so repeated runs do not grow the store.
    #[arg(long)]
    namespace_tag: Option<String>,
    #[command(subcommand)]
    load: Load,
}

const ADDR_HELP: &str = "Load an existing server instead (http://HOST:PORT or https://...); \
    several, comma-separated, are replicas of one registry: the connections are spread over \
    them in turn";

#[derive(Subcommand)]
enum Load {
    /// Unary ListPods callers back to back: calls/s and latency.
    Unary(unary::UnaryArgs),
    /// Idle WatchPods streams held open: the server's resident memory per
    /// watcher (needs --addr and --server-pid: the server's own process).
    Watchers(watchers::WatchersArgs),
    /// One WatchPods snapshot of every pod: pods/s and time to the first pod.
    Watch(snapshot::WatchArgs),
    /// SyncPods sessions applying pods back to back: ops/s and ack latency.
    Sync(sync::SyncArgs),
    /// Watchers of one namespace and a writer changing a pod in it: the
    /// delivery latency of each change to each watcher.
    Fanout(fanout::FanoutArgs),
    /// Paged ListPods through every pod while a writer changes, creates and
    /// deletes pods: time per page, checked to be exactly the list at its
    /// first page's version; then the server's memory with lists held open.
    Pages(pages::PagesArgs),
    /// Followers of one pod's log (GetLogs with follow) on the last address
    /// of --addr, and uploads of one line each through the first: the
    /// latency of each line to each follower, from the upload's response.
    FollowLatency(follow::FollowLatencyArgs),
    /// Idle GetLogs follow streams of one pod held open: the server's
    /// resident memory per follower (needs --addr and --server-pid: the
    /// server's own process).
    Followers(followers::FollowersArgs),
    /// Concurrent log uploads: lines/s and MB/s.
    Upload(upload::UploadArgs),
    /// etcd's own write ceiling, with no server: callers sending a pod
    /// apply's transaction straight to etcd (ignores the server flags).
    EtcdCeiling(ceiling::CeilingArgs),
}

// The same allocator as pod-server, so that the in-process server is the one
// users run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit(run(Args::parse()).await)
}

/// Runs the load, each of its runs in turn, and reports each as it ends.
async fn run(args: Args) -> anyhow::Result<()> {
    let mut report = Report::new(args.json);
    let load = match args.load {
        // etcd alone: no server to open.
        Load::EtcdCeiling(load) => {
            for (run, &callers) in load.callers.iter().enumerate() {
                report.print(&ceiling::ceiling(&load, run, callers).await?)?;
            }
            return Ok(());
        }
        load => load,
    };
    let target = Target::open(
        &args.server,
        args.store,
        args.pods,
        args.connections,
        args.namespace_tag,
    )
    .await?;
    let target = &target;
    match load {
        Load::Unary(load) => {
            for &callers in &load.concurrency {
                report.print(&unary::unary(target, &load, callers).await?)?;
            }
        }
        Load::Watchers(load) => report.print(&watchers::watchers(target, &load).await?)?,
        Load::Watch(load) => {
            for _ in 0..load.runs.max(1) {
                report.print(&snapshot::watch_snapshot(target).await?)?;
            }
        }
        Load::Sync(load) => {
            for (run, &sessions) in load.sessions.iter().enumerate() {
                report.print(&sync::sync(target, &load, run, sessions).await?)?;
            }
        }
        Load::Fanout(load) => {
            for (run, &watchers) in load.watchers.iter().enumerate() {
                report.print(&fanout::fanout(target, &load, run, watchers).await?)?;
            }
        }
        Load::Pages(load) => {
            for run in 0..load.runs {
                report.print(&pages::page_through(target, &load, run).await?)?;
            }
            if load.hold > 0 {
                report.print(&pages::hold(target, &load).await?)?;
            }
        }
        Load::FollowLatency(load) => {
            let figures = follow::follow_latency(target, &load).await?;
            report.print(&figures)?;
            figures.complete()?;
        }
        Load::Followers(load) => report.print(&followers::followers(target, &load).await?)?,
        Load::Upload(load) => {
            for (run, &streams) in load.streams.iter().enumerate() {
                report.print(&upload::upload(target, &load, run, streams).await?)?;
            }
        }
        Load::EtcdCeiling(_) => {} // measured above, without a server
    }
    Ok(())
}
