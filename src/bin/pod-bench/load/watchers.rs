//! Idle WatchPods streams held open, and the resident memory and CPU time
//! of a process, to measure what an idle watcher costs a server.

use anyhow::Context;
use pod_service::client::{Client, status_error};
use pod_service::contract::{Pod, SyncRequest, sync_request};

use super::registered_watch;

/// Resident memory of a process, in bytes (Linux: `VmRSS` in `/proc/PID/status`).
pub fn resident_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read the status of process {pid}"))?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .with_context(|| format!("no VmRSS for process {pid}"))?;
    Ok(kib * 1024)
}

/// CPU time a process has used, user and system (Linux: fields 14 and 15
/// of `/proc/PID/stat`, in clock ticks of 1/100 s, `USER_HZ` on Linux).
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("cannot read the stat of process {pid}"))?;
    // The command name (field 2) may hold spaces: count from after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => Ok((user + system) as f64 / 100.0),
        _ => anyhow::bail!("no CPU times for process {pid}"),
    }
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
    let mut client = clients[0].clone();
    let apply = SyncRequest {
        id: 1,
        op: Some(sync_request::Op::Apply(Pod {
            name: "watched".into(),
            namespace: NAMESPACE.into(),
            status: "Running".into(),
            replicas: 1,
            ..Pod::default()
        })),
    };
    let mut events = client
        .sync_pods(tokio_stream::iter([apply]))
        .await
        .map_err(status_error)?
        .into_inner();
    while events.message().await.map_err(status_error)?.is_some() {}
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        streams.push(registered_watch(&clients[i % clients.len()], NAMESPACE, bookmarks).await?);
    }
    Ok(streams)
}
