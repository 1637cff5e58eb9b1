//! Idle WatchPods streams held open, to measure what an idle watcher costs
//! a server: its resident memory per watcher, and its CPU time.

use pod_service::client::Client;
use pod_service::contract::Pod;

use super::process::IdleCost;
use super::{create_pods, registered_watch};
use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `watchers` load.
#[derive(clap::Args)]
pub struct WatchersArgs {
    /// How many streams to open.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// The process id of the server at --addr, to read its memory.
    #[arg(long)]
    server_pid: u32,
    /// Ask for bookmarks on every stream.
    #[arg(long)]
    bookmarks: bool,
    /// Then hold them open this long and report the server's CPU time.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    hold: f64,
}

/// What idle watchers cost the server.
#[derive(Debug, Clone)]
pub struct WatchersFigures {
    pub connections: usize,
    pub bookmarks: bool,
    pub cost: IdleCost,
}

impl Row for WatchersFigures {
    const LOAD: &'static str = "watchers";

    fn figures(&self) -> Vec<Figure> {
        let mut figures = vec![
            Figure::count(self.cost.count).named("watchers"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
            Figure::flag(self.bookmarks).named("bookmarks"),
        ];
        figures.extend(self.cost.figures("bytes_per_watcher", "bytes/watcher"));
        figures
    }
}

/// Measures what idle watchers cost a server in another process.
pub async fn watchers(target: &Target, args: &WatchersArgs) -> anyhow::Result<WatchersFigures> {
    if !target.is_external() {
        anyhow::bail!("watchers measures another process: give --addr and --server-pid");
    }
    let open = idle_watchers(&target.clients, args.count, args.bookmarks);
    Ok(WatchersFigures {
        connections: target.clients.len(),
        bookmarks: args.bookmarks,
        cost: IdleCost::measure(args.server_pid, args.count, args.hold, open).await?,
    })
}

/// Opens `count` WatchPods streams spread over `clients`, each of a
/// namespace holding one pod, and reads that pod from each, so that every
/// watcher is registered (some servers send a stream's headers only with its
/// first message) and then idle. They stay open until the returned streams
/// are dropped.
pub async fn idle_watchers(
    clients: &[Client],
    count: usize,
    bookmarks: bool,
) -> anyhow::Result<Vec<tonic::Streaming<Pod>>> {
    const NAMESPACE: &str = "bench-idle-watchers";
    create_pods(&clients[0], NAMESPACE, ["watched".into()]).await?;
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        streams.push(registered_watch(&clients[i % clients.len()], NAMESPACE, bookmarks).await?);
    }
    Ok(streams)
}
