//! Concurrent log uploads: lines/s and MB/s.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use pod_service::client::{Client, status_error};
use pod_service::contract::LogChunk;

/// What an UploadLogs run measured.
#[derive(Debug, Clone)]
pub struct UploadFigures {
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
        lines: (per_stream * streams) as u64,
        bytes,
        elapsed: start.elapsed(),
    })
}
