//! Followers of one pod's log (`GetLogs` with follow) and an uploader
//! adding lines to it: the latency of each line to each follower.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::{Client, status_error};
use pod_service::contract::{GetLogsRequest, LogChunk, PodRef, sync_request};
use tokio::sync::{mpsc, watch};

use super::{Latency, apply_running, sync_ops};
use crate::report::{Figure, Row};
use crate::target::Target;

/// How long the followers may take, after the last upload's ack, to get
/// every line before the run counts what they got.
const GRACE: Duration = Duration::from_secs(10);

/// The flags of the `follow-latency` load.
#[derive(clap::Args)]
pub struct FollowLatencyArgs {
    /// Following streams to open (over --connections connections).
    #[arg(long, default_value_t = 10)]
    followers: usize,
    /// Uploads to make, one line each, one in flight.
    #[arg(long, default_value_t = 500)]
    uploads: usize,
    /// Uploads per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
}

/// What a follow-latency run measured.
#[derive(Debug, Clone)]
pub struct FollowFigures {
    pub store: &'static str,
    pub followers: usize,
    /// The followers' connections, to the last address.
    pub connections: usize,
    pub rate: f64,
    pub uploads: usize,
    /// Lines the followers received, each checked to be the next one.
    pub received: u64,
    /// `followers * uploads`.
    pub expected: u64,
    /// From each upload's response (its ack) to each follower's receipt of
    /// its line; a follower that beat the ack counts 0.
    pub from_ack: Latency,
    /// From each upload's send to each follower's receipt of its line.
    pub from_send: Latency,
    /// Per upload, the receipt by its last follower, from the ack.
    pub last_follower: Latency,
    /// Each upload's call, from its send to its response.
    pub ack: Latency,
}

impl FollowFigures {
    /// Fails if the followers missed lines (after their figures are
    /// reported: a run that lost lines is counted, too).
    pub fn complete(&self) -> anyhow::Result<()> {
        if self.received != self.expected {
            bail!(
                "the followers received {} lines of {}",
                self.received,
                self.expected
            );
        }
        Ok(())
    }
}

impl Row for FollowFigures {
    const LOAD: &'static str = "follow-latency";

    fn figures(&self) -> Vec<Figure> {
        let (ack, send, last) = (self.from_ack, self.from_send, self.last_follower);
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.followers).named("followers"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
            Figure::count(self.uploads).json("uploads"),
            Figure::real(self.rate, 0).json("rate"),
            Figure::count(self.received).named("received"),
            Figure::count(self.expected).named("expected"),
            Figure::millis(ack.p50).json("p50_ms").table("ack p50"),
            Figure::millis(ack.p99).json("p99_ms").table("ack p99"),
            Figure::millis(ack.max).json("max_ms").table("ack max"),
            Figure::millis(send.p50)
                .json("send_p50_ms")
                .table("send p50"),
            Figure::millis(send.p99).json("send_p99_ms"),
            Figure::millis(send.max).json("send_max_ms"),
            Figure::millis(last.p50)
                .json("last_follower_p50_ms")
                .table("last p50"),
            Figure::millis(last.max).json("last_follower_max_ms"),
            Figure::millis(self.ack.p50)
                .json("upload_p50_ms")
                .table("upload p50"),
            Figure::millis(self.ack.p99).json("upload_p99_ms"),
        ]
    }
}

/// The line of upload `seq` (from 0): it carries the sequence number.
fn line_of(seq: usize) -> String {
    format!("follow-latency line {seq}")
}

/// Empties pod `pod` of `namespace` (deleted if it exists, then created
/// again), so that its log starts at line 1.
async fn fresh_pod(client: &Client, namespace: &str, pod: &str) -> anyhow::Result<()> {
    let delete = sync_request::Op::Delete(PodRef {
        namespace: namespace.to_owned(),
        name: pod.to_owned(),
    });
    let acks = sync_ops(client, [delete, apply_running(namespace, pod)]).await?;
    for ack in acks {
        // Deleting a pod that is not there is fine (NOT_FOUND).
        let fine = ack.code == 0 || (ack.id == 1 && ack.code == 5);
        if !fine {
            bail!("cannot make pod {namespace}/{pod} afresh: {ack:?}");
        }
    }
    Ok(())
}

/// Uploads `lines` to a pod in one UploadLogs call of one chunk.
pub(super) async fn upload_one(
    client: &Client,
    namespace: &str,
    pod: &str,
    lines: Vec<String>,
) -> anyhow::Result<()> {
    let count = lines.len() as u64;
    let chunk = LogChunk {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        lines,
        first_line: 0,
    };
    let summary = client
        .clone()
        .upload_logs(tokio_stream::iter([chunk]))
        .await
        .map_err(status_error)?
        .into_inner();
    if summary.lines != count {
        bail!("{} lines stored of {count} sent", summary.lines);
    }
    Ok(())
}

/// Opens a following GetLogs stream of the pod from `from_line` and reads
/// its first chunk, so that the follower is surely registered (some
/// servers send a stream's headers only with its first message).
pub(super) async fn registered_follow(
    client: &Client,
    namespace: &str,
    pod: &str,
    start: GetLogsRequest,
) -> anyhow::Result<(tonic::Streaming<LogChunk>, LogChunk)> {
    let request = GetLogsRequest {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        follow: true,
        ..start
    };
    let mut stream = client
        .clone()
        .get_logs(request)
        .await
        .map_err(status_error)?
        .into_inner();
    match stream.message().await.map_err(status_error)? {
        Some(chunk) => Ok((stream, chunk)),
        None => bail!("a follow of {namespace}/{pod} ended before its first line"),
    }
}

/// Makes pod `follow` of a namespace of the run's afresh through the first
/// connection, uploads a first line, opens `--followers` following GetLogs
/// streams of it spread over as many connections again to the last address
/// (each reads that first line, so that it is registered), then makes
/// `--uploads` uploads of one line each through the first connection at
/// `--rate` per second, one in flight, and times each line's arrival at
/// each follower. Every follower must get every line once, in order, with
/// its number; see [`FollowFigures::complete`].
pub async fn follow_latency(
    target: &Target,
    args: &FollowLatencyArgs,
) -> anyhow::Result<FollowFigures> {
    const POD: &str = "follow";
    let follower_clients = &target.last_replica().await?;
    let (uploader, namespace) = (&target.clients[0], &target.namespace("follow", None));
    let (followers, uploads, rate) = (args.followers, args.uploads, args.rate);
    fresh_pod(uploader, namespace, POD).await?;
    upload_one(uploader, namespace, POD, vec!["ready".into()]).await?;

    // Each follower reads line 1, then reports it is ready and records when
    // each upload's line arrives (line seq + 2), until it has them all or
    // `stop` says the time is up.
    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, mut ready) = mpsc::channel::<()>(followers.max(1));
    let mut tasks = Vec::with_capacity(followers);
    for i in 0..followers {
        let client = follower_clients[i % follower_clients.len()].clone();
        let namespace = namespace.to_owned();
        let ready = ready_tx.clone();
        let mut stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let from_first = GetLogsRequest {
                from_line: 1,
                ..GetLogsRequest::default()
            };
            let (mut stream, first) =
                registered_follow(&client, &namespace, POD, from_first).await?;
            if first.first_line != 1 || first.lines.first().map(String::as_str) != Some("ready") {
                bail!(
                    "follower {i} started at line {} ({:?}), not at line 1 \"ready\"",
                    first.first_line,
                    first.lines.first()
                );
            }
            let _ = ready.send(()).await;
            drop(ready);
            let mut arrivals = Vec::with_capacity(uploads);
            // Lines after "ready" in its first chunk are uploads' already.
            let mut pending = Some(LogChunk {
                first_line: 2,
                lines: first.lines[1..].to_vec(),
                ..first
            });
            while arrivals.len() < uploads {
                let chunk = match pending.take() {
                    Some(chunk) => chunk,
                    None => tokio::select! {
                        message = stream.message() => match message.map_err(status_error)? {
                            Some(chunk) => chunk,
                            None => bail!("follower {i} ended after {} lines", arrivals.len()),
                        },
                        _ = stop.wait_for(|stop| *stop) => break,
                    },
                };
                let at = Instant::now();
                for (k, line) in chunk.lines.iter().enumerate() {
                    let seq = arrivals.len();
                    let number = chunk.first_line + k as u64;
                    if seq >= uploads {
                        bail!("follower {i} got line {number}, after the last upload");
                    }
                    if number != seq as u64 + 2 || *line != line_of(seq) {
                        bail!(
                            "follower {i} got line {number} {line:?} when it expected line {} {:?}",
                            seq + 2,
                            line_of(seq)
                        );
                    }
                    arrivals.push(at);
                }
            }
            Ok::<_, anyhow::Error>(arrivals)
        }));
    }
    drop(ready_tx);
    for _ in 0..followers {
        if ready.recv().await.is_none() {
            break; // a follower failed: its task reports why below
        }
    }

    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut ticks = tokio::time::interval(interval);
    let mut sent = Vec::with_capacity(uploads);
    let mut acked = Vec::with_capacity(uploads);
    for seq in 0..uploads {
        ticks.tick().await;
        sent.push(Instant::now());
        upload_one(uploader, namespace, POD, vec![line_of(seq)])
            .await
            .with_context(|| format!("upload {seq}"))?;
        acked.push(Instant::now());
    }
    let stopping = tokio::spawn(async move {
        tokio::time::sleep(GRACE).await;
        let _ = stop_tx.send(true);
    });

    let (mut from_ack, mut from_send) = (Vec::new(), Vec::new());
    let mut last = vec![Duration::ZERO; uploads];
    for task in tasks {
        let arrivals = task.await.context("a follower panicked")??;
        for (seq, at) in arrivals.into_iter().enumerate() {
            let since_ack = at.saturating_duration_since(acked[seq]);
            from_ack.push(since_ack);
            from_send.push(at.saturating_duration_since(sent[seq]));
            last[seq] = last[seq].max(since_ack);
        }
    }
    stopping.abort();
    let ack = sent
        .iter()
        .zip(&acked)
        .map(|(sent, acked)| acked.duration_since(*sent))
        .collect();
    Ok(FollowFigures {
        store: target.store,
        followers,
        connections: follower_clients.len(),
        rate,
        uploads,
        received: from_ack.len() as u64,
        expected: (followers * uploads) as u64,
        from_ack: Latency::of(from_ack),
        from_send: Latency::of(from_send),
        last_follower: Latency::of(last),
        ack: Latency::of(ack),
    })
}
