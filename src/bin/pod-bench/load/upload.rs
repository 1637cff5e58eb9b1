//! Concurrent log uploads: lines/s and MB/s.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::status_error;
use pod_service::contract::LogChunk;

use super::create_pods;
use crate::report::{Figure, Row};
use crate::target::Target;

/// The flags of the `upload` load.
#[derive(clap::Args)]
pub struct UploadArgs {
    /// Stream counts to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub streams: Vec<usize>,
    /// Lines per run, split over the streams.
    #[arg(long, default_value_t = 2_000_000)]
    lines: usize,
    /// Bytes per line.
    #[arg(long, default_value_t = 100)]
    line_bytes: usize,
}

/// What an UploadLogs run measured.
#[derive(Debug, Clone)]
pub struct UploadFigures {
    pub store: &'static str,
    pub streams: usize,
    pub connections: usize,
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

impl Row for UploadFigures {
    const LOAD: &'static str = "upload";

    fn figures(&self) -> Vec<Figure> {
        vec![
            Figure::text(self.store).named("store"),
            Figure::count(self.streams).named("streams"),
            Figure::count(self.connections)
                .json("connections")
                .table("conns"),
            Figure::count(self.lines).named("lines"),
            Figure::count(self.bytes).named("bytes"),
            Figure::seconds(self.elapsed.as_secs_f64()).named("seconds"),
            Figure::real(self.lines_per_second(), 0)
                .json("lines_per_second")
                .table("lines/s"),
            Figure::real(self.megabytes_per_second(), 0)
                .json("megabytes_per_second")
                .table("MB/s"),
        ]
    }
}

/// Run `run` of the load: creates pods `upload-0..` in a namespace of its
/// own, then uploads `--lines` lines of `--line-bytes` bytes in all, split
/// over `streams` concurrent uploads to them, in chunks of about 64 KiB.
/// Every summary must count exactly what was sent.
pub async fn upload(
    target: &Target,
    args: &UploadArgs,
    run: usize,
    streams: usize,
) -> anyhow::Result<UploadFigures> {
    let namespace = &target.namespace("upload", Some(run));
    let clients = &target.clients;
    create_pods(
        &clients[0],
        namespace,
        (0..streams).map(|i| format!("upload-{i}")),
    )
    .await?;
    let requested = streams;
    let streams = streams.max(1);
    let per_stream = args.lines / streams;
    let lines_per_chunk = ((64 << 10) / args.line_bytes.max(1)).max(1);
    let line = "x".repeat(args.line_bytes);
    let start = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|stream| {
            let mut client = clients[stream % clients.len()].clone();
            let chunk = LogChunk {
                namespace: namespace.to_owned(),
                pod: format!("upload-{stream}"),
                lines: vec![line.clone(); lines_per_chunk],
                first_line: 0,
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
        store: target.store,
        streams: requested,
        connections: clients.len(),
        lines: (per_stream * streams) as u64,
        bytes,
        elapsed: start.elapsed(),
    })
}
