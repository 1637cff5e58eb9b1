//! Load generators for `pod-bench`: they drive a server through the same
//! gRPC clients as every other program here, check every answer, and
//! report rates and latencies.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{Client, status_error};
use crate::pb::{LogChunk, Pod, SyncRequest, sync_event, sync_request};

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Latency::default();
        }
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            max: at(1.0),
        }
    }
}

/// What a SyncPods run measured.
#[derive(Debug, Clone)]
pub struct SyncFigures {
    pub sessions: usize,
    pub in_flight: usize,
    pub ops: u64,
    pub elapsed: Duration,
    pub ack_latency: Latency,
}

impl SyncFigures {
    pub fn ops_per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `sessions` SyncPods sessions for `duration`, each keeping
/// `in_flight` applies outstanding over 10 pods of its own. Every ack must
/// be OK, in order, with a version above the previous one.
pub async fn sync(
    clients: &[Client],
    namespace: &str,
    sessions: usize,
    in_flight: usize,
    duration: Duration,
) -> anyhow::Result<SyncFigures> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..sessions)
        .map(|session| {
            let client = clients[session % clients.len()].clone();
            let namespace = namespace.to_owned();
            tokio::spawn(sync_session(
                client, namespace, session, in_flight, deadline,
            ))
        })
        .collect();
    let mut ops = 0;
    let mut latencies = Vec::new();
    for task in tasks {
        let (session_ops, samples) = task.await.context("a session panicked")??;
        ops += session_ops;
        latencies.extend(samples);
    }
    Ok(SyncFigures {
        sessions,
        in_flight,
        ops,
        elapsed: start.elapsed(),
        ack_latency: Latency::of(latencies),
    })
}

async fn sync_session(
    mut client: Client,
    namespace: String,
    session: usize,
    in_flight: usize,
    deadline: Instant,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let (requests, outbound) = mpsc::channel(in_flight + 1);
    let mut sent_at = std::collections::VecDeque::with_capacity(in_flight);
    let mut next_id = 0u64;
    let mut last_version = 0;
    let mut samples = Vec::new();
    let send = |id: u64| SyncRequest {
        id,
        op: Some(sync_request::Op::Apply(Pod {
            name: format!("s{session}-{}", id % 10),
            namespace: namespace.clone(),
            status: "Running".into(),
            replicas: (id % 5) as i32,
            ..Pod::default()
        })),
    };
    // Queued before the call is awaited: some servers (grpc-go) send the
    // response headers only with the first event.
    for _ in 0..in_flight {
        next_id += 1;
        sent_at.push_back(Instant::now());
        requests.send(send(next_id)).await?;
    }
    let mut events = client
        .sync_pods(ReceiverStream::new(outbound))
        .await
        .map_err(status_error)?
        .into_inner();
    let mut requests = Some(requests);
    while let Some(event) = events.message().await.map_err(status_error)? {
        let Some(sync_event::Event::Ack(ack)) = event.event else {
            bail!("an unsubscribed session got a change");
        };
        let Some(sent) = sent_at.pop_front() else {
            bail!("an ack for nothing sent");
        };
        if ack.code != 0 {
            bail!("op {} failed: {}", ack.id, ack.message);
        }
        let version = ack.pod.map(|p| p.resource_version).unwrap_or_default();
        if version <= last_version {
            bail!("versions went backwards: {version} after {last_version}");
        }
        last_version = version;
        samples.push(sent.elapsed());
        if let Some(sender) = &requests {
            if Instant::now() < deadline {
                next_id += 1;
                sent_at.push_back(Instant::now());
                sender.send(send(next_id)).await?;
            } else {
                // Half-close: the server sends the remaining acks, then OK.
                requests = None;
            }
        }
    }
    if !sent_at.is_empty() {
        bail!("the session ended with {} acks missing", sent_at.len());
    }
    Ok((samples.len() as u64, samples))
}

/// What an UploadLogs run measured.
#[derive(Debug, Clone)]
pub struct UploadFigures {
    pub streams: usize,
    pub lines: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl UploadFigures {
    pub fn lines_per_second(&self) -> f64 {
        self.lines as f64 / self.elapsed.as_secs_f64()
    }

    /// Megabytes (10^6 bytes) of line payload per second.
    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// Uploads `lines` lines of `line_bytes` bytes in all, split over `streams`
/// concurrent uploads to pods `upload-0..` (which must exist), in chunks
/// of about 64 KiB. Every summary must count exactly what was sent.
pub async fn upload(
    clients: &[Client],
    namespace: &str,
    streams: usize,
    lines: usize,
    line_bytes: usize,
) -> anyhow::Result<UploadFigures> {
    let per_stream = lines / streams.max(1);
    let lines_per_chunk = ((64 << 10) / line_bytes.max(1)).max(1);
    let line = "x".repeat(line_bytes);
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|stream| {
            let mut client = clients[stream % clients.len()].clone();
            let chunk = LogChunk {
                namespace: namespace.to_owned(),
                pod: format!("upload-{stream}"),
                lines: vec![line.clone(); lines_per_chunk],
            };
            tokio::spawn(async move {
                let full = per_stream / lines_per_chunk;
                let rest = per_stream % lines_per_chunk;
                let mut last = chunk.clone();
                last.lines.truncate(rest);
                let chunks = std::iter::repeat_n(chunk, full).chain((rest > 0).then_some(last));
                let summary = client
                    .upload_logs(tokio_stream::iter(chunks))
                    .await
                    .map_err(status_error)?
                    .into_inner();
                if summary.lines != per_stream as u64 {
                    bail!("{} lines stored of {per_stream} sent", summary.lines);
                }
                Ok::<_, anyhow::Error>(summary.bytes)
            })
        })
        .collect();
    let mut bytes = 0;
    for task in tasks {
        bytes += task.await.context("an upload panicked")??;
    }
    Ok(UploadFigures {
        streams,
        lines: (per_stream * streams) as u64,
        bytes,
        elapsed: start.elapsed(),
    })
}

/// What a unary ListPods run measured.
#[derive(Debug, Clone)]
pub struct UnaryFigures {
    pub concurrency: usize,
    pub calls: u64,
    pub pods_per_call: usize,
    pub elapsed: Duration,
    pub latency: Latency,
}

impl UnaryFigures {
    pub fn calls_per_second(&self) -> f64 {
        self.calls as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `concurrency` callers of ListPods(`namespace`) back to back for
/// `duration`. Every answer must hold as many pods as the first.
pub async fn unary(
    clients: &[Client],
    namespace: &str,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<UnaryFigures> {
    let request = || crate::pb::ListPodsRequest {
        namespace: namespace.to_owned(),
        resource_version: 0,
    };
    let mut probe = clients[0].clone();
    let expected = probe
        .list_pods(request())
        .await
        .map_err(status_error)?
        .into_inner()
        .pods
        .len();
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|caller| {
            let mut client = clients[caller % clients.len()].clone();
            let request = request();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    let list = client
                        .list_pods(request.clone())
                        .await
                        .map_err(status_error)?
                        .into_inner();
                    samples.push(sent.elapsed());
                    if list.pods.len() != expected {
                        bail!(
                            "{} pods in an answer, {expected} in the first",
                            list.pods.len()
                        );
                    }
                }
                Ok::<_, anyhow::Error>(samples)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("a caller panicked")??);
    }
    Ok(UnaryFigures {
        concurrency,
        calls: latencies.len() as u64,
        pods_per_call: expected,
        elapsed: start.elapsed(),
        latency: Latency::of(latencies),
    })
}

/// What a WatchPods snapshot measured.
#[derive(Debug, Clone)]
pub struct SnapshotFigures {
    pub pods: u64,
    pub elapsed: Duration,
    pub first_pod: Duration,
}

impl SnapshotFigures {
    pub fn pods_per_second(&self) -> f64 {
        self.pods as f64 / self.elapsed.as_secs_f64()
    }
}

/// Opens one WatchPods stream of every namespace and reads the snapshot
/// (as many pods as ListPods reports), then cancels the stream.
pub async fn watch_snapshot(client: &Client) -> anyhow::Result<SnapshotFigures> {
    let mut client = client.clone();
    let expected = client
        .list_pods(crate::pb::ListPodsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner()
        .pods
        .len() as u64;
    let start = Instant::now();
    let mut stream = client
        .watch_pods(crate::pb::ListPodsRequest::default())
        .await
        .map_err(status_error)?
        .into_inner();
    let mut first_pod = None;
    let mut pods = 0;
    while pods < expected {
        if stream.message().await.map_err(status_error)?.is_none() {
            bail!("the watch ended after {pods} of {expected} pods");
        }
        first_pod.get_or_insert_with(|| start.elapsed());
        pods += 1;
    }
    Ok(SnapshotFigures {
        pods,
        elapsed: start.elapsed(),
        first_pod: first_pod.unwrap_or_default(),
    })
}

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

/// Opens a WatchPods stream of `namespace` and reads its first pod, so that
/// the watcher is surely registered: some servers send a stream's headers
/// only with its first message.
async fn registered_watch(
    client: &Client,
    namespace: &str,
) -> anyhow::Result<tonic::Streaming<Pod>> {
    let request = crate::pb::ListPodsRequest {
        namespace: namespace.to_owned(),
        resource_version: 0,
    };
    let mut stream = client
        .clone()
        .watch_pods(request)
        .await
        .map_err(status_error)?
        .into_inner();
    if stream.message().await.map_err(status_error)?.is_none() {
        bail!("a watch of {namespace} ended before its first pod");
    }
    Ok(stream)
}

/// Opens `count` WatchPods streams spread over `clients`, each of a
/// namespace holding one pod, and reads that pod from each, so that every
/// watcher is registered (some servers send a stream's headers only with its
/// first message) and then idle. They stay open until the returned streams
/// are dropped.
pub async fn idle_watchers(
    clients: &[Client],
    count: usize,
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
        streams.push(registered_watch(&clients[i % clients.len()], NAMESPACE).await?);
    }
    Ok(streams)
}

/// What a fan-out run measured: how long each change took to reach each
/// watcher, from the writer's send and from its ack.
#[derive(Debug, Clone)]
pub struct FanoutFigures {
    pub watchers: usize,
    pub changes: usize,
    /// Deliveries counted: `watchers * changes`, each checked exactly once.
    pub deliveries: u64,
    pub from_send: Latency,
    pub from_ack: Latency,
    /// Per change, the delivery to its last watcher, from the send.
    pub last_watcher: Latency,
}

/// Opens `watchers` WatchPods streams of one namespace spread over
/// `clients`, then applies `changes` updates of one pod in it at `rate` per
/// second from a SyncPods session, and times each change's arrival at each
/// watcher. Every watcher must see every change exactly once, in order.
pub async fn fanout(
    clients: &[Client],
    namespace: &str,
    watchers: usize,
    changes: usize,
    rate: f64,
) -> anyhow::Result<FanoutFigures> {
    let pod = |replicas: usize| Pod {
        name: "fanout".into(),
        namespace: namespace.to_owned(),
        status: "Running".into(),
        replicas: replicas as i32,
        ..Pod::default()
    };
    // The writer's session; its first op creates the pod every watch starts with.
    let (requests, outbound) = mpsc::channel(4);
    let apply = |id: usize| SyncRequest {
        id: id as u64,
        op: Some(sync_request::Op::Apply(pod(id))),
    };
    // Queued before the call is awaited (see `sync_session`).
    requests.send(apply(0)).await?;
    let mut writer = clients[0].clone();
    let mut acks = writer
        .sync_pods(ReceiverStream::new(outbound))
        .await
        .map_err(status_error)?
        .into_inner();
    acks.message().await.map_err(status_error)?;

    // Each watcher reads its snapshot (so it is registered), then reports it
    // is ready and records when each change arrives, indexed by its replicas.
    let (ready_tx, mut ready) = mpsc::channel::<()>(watchers.max(1));
    let mut tasks = Vec::with_capacity(watchers);
    for i in 0..watchers {
        let client = clients[i % clients.len()].clone();
        let namespace = namespace.to_owned();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = registered_watch(&client, &namespace).await?;
            let _ = ready.send(()).await;
            drop(ready);
            let mut arrivals = Vec::with_capacity(changes);
            while arrivals.len() < changes {
                let Some(change) = stream.message().await.map_err(status_error)? else {
                    bail!("watch {i} ended after {} changes", arrivals.len());
                };
                let at = Instant::now();
                if change.replicas as usize != arrivals.len() + 1 {
                    bail!(
                        "watch {i} got change {} after {}",
                        change.replicas,
                        arrivals.len()
                    );
                }
                arrivals.push(at);
            }
            Ok::<_, anyhow::Error>(arrivals)
        }));
    }
    drop(ready_tx);
    for _ in 0..watchers {
        if ready.recv().await.is_none() {
            break; // a watcher failed: its task reports why below
        }
    }

    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticks = tokio::time::interval(interval);
    let mut sent = Vec::with_capacity(changes);
    let mut acked = Vec::with_capacity(changes);
    for id in 1..=changes {
        ticks.tick().await;
        sent.push(Instant::now());
        requests.send(apply(id)).await?;
        match acks.message().await.map_err(status_error)? {
            Some(event) => match event.event {
                Some(sync_event::Event::Ack(ack)) if ack.code == 0 => acked.push(Instant::now()),
                other => bail!("change {id} was not acknowledged: {other:?}"),
            },
            None => bail!("the writer's session ended"),
        }
    }
    drop(requests);

    let (mut from_send, mut from_ack) = (Vec::new(), Vec::new());
    let mut last = vec![Duration::ZERO; changes];
    for task in tasks {
        let arrivals = task.await.context("a watcher panicked")??;
        for (change, at) in arrivals.into_iter().enumerate() {
            let since_send = at.saturating_duration_since(sent[change]);
            from_send.push(since_send);
            // A watcher may beat the ack; such deliveries count as 0.
            from_ack.push(at.saturating_duration_since(acked[change]));
            last[change] = last[change].max(since_send);
        }
    }
    Ok(FanoutFigures {
        watchers,
        changes,
        deliveries: from_send.len() as u64,
        from_send: Latency::of(from_send),
        from_ack: Latency::of(from_ack),
        last_watcher: Latency::of(last),
    })
}
