//! Idle GetLogs follow streams of one pod held open, to measure what an
//! idle follower costs a server: its resident memory per follower, and its
//! CPU time.

use anyhow::bail;
use futures::{StreamExt, TryStreamExt};
use pod_service::client::Client;
use pod_service::contract::{GetLogsRequest, LogChunk};

use super::create_pods;
use super::follow::{registered_follow, upload_one};
use super::process::IdleCost;
use crate::report::{Figure, Row};
use crate::target::Target;

/// Followers opened at once (by `idle_followers`).
const OPENING: usize = 32;

/// The flags of the `followers` load.
#[derive(clap::Args)]
pub struct FollowersArgs {
    /// How many streams to open.
    #[arg(long, default_value_t = 10_000)]
    count: usize,
    /// The process id of the server at --addr, to read its memory.
    #[arg(long)]
    server_pid: u32,
    /// Then hold them open this long and report the server's CPU time.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    hold: f64,
}

/// What idle followers cost the server.
#[derive(Debug, Clone)]
pub struct FollowersFigures {
    pub connections: usize,
    pub cost: IdleCost,
}

impl Row for FollowersFigures {
    const LOAD: &'static str = "followers";

    fn figures(&self) -> Vec<Figure> {
        let mut figures = vec![
            Figure::count(self.cost.count).named("followers"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
        ];
        figures.extend(self.cost.figures("bytes_per_follower", "bytes/follower"));
        figures
    }
}

/// Measures what idle followers cost a server in another process.
pub async fn followers(target: &Target, args: &FollowersArgs) -> anyhow::Result<FollowersFigures> {
    if !target.is_external() {
        bail!("followers measures another process: give --addr and --server-pid");
    }
    let open = idle_followers(&target.clients, args.count);
    Ok(FollowersFigures {
        connections: target.clients.len(),
        cost: IdleCost::measure(args.server_pid, args.count, args.hold, open).await?,
    })
}

/// Opens `count` following GetLogs streams of one pod (which has a line)
/// spread over `clients`, each reading its last line, so that every
/// follower is registered and then idle. They stay open until the returned
/// streams are dropped.
async fn idle_followers(
    clients: &[Client],
    count: usize,
) -> anyhow::Result<Vec<tonic::Streaming<LogChunk>>> {
    const NAMESPACE: &str = "bench-idle-followers";
    const POD: &str = "followed";
    create_pods(&clients[0], NAMESPACE, [POD.into()]).await?;
    // One line per run: the log stays tiny however often this runs.
    upload_one(&clients[0], NAMESPACE, POD, vec!["followed".into()]).await?;
    let last_line = GetLogsRequest {
        tail_lines: 1,
        ..GetLogsRequest::default()
    };
    futures::stream::iter(0..count)
        .map(|i| {
            let client = &clients[i % clients.len()];
            let start = last_line.clone();
            async move {
                registered_follow(client, NAMESPACE, POD, start)
                    .await
                    .map(|(stream, _)| stream)
            }
        })
        .buffer_unordered(OPENING)
        .try_collect()
        .await
}
