//! The client side of `UploadLogs`: stream the lines of files (or stdin) to
//! the server in chunks, never holding more than a few chunks in memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::connect::{Client, status_error};
use crate::contract::{DEFAULT_NAMESPACE, LogChunk, STORED_BEFORE_ERROR, UploadLogsResponse};

/// A chunk is sent when it holds this many bytes of lines...
const CHUNK_BYTES: usize = 256 << 10;
/// ...or this many lines, whichever comes first: far below the 4 MiB message limit.
const CHUNK_LINES: usize = 4_096;

/// Chunks read ahead of the network: bounds the client's memory.
const READ_AHEAD: usize = 4;

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadReport {
    /// The server's count of what it received and stored.
    pub summary: UploadLogsResponse,
    /// Lines that were not valid UTF-8 and were sent with U+FFFD in place of
    /// the bad bytes.
    pub lossy_lines: u64,
}

/// A named source of lines.
pub type Input = (String, Box<dyn AsyncRead + Send + Unpin>);

/// How far an upload has got: reported before each chunk is sent, and once
/// more when the input ends.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes read from the inputs since the previous report.
    pub bytes_read: u64,
    /// Lines read so far.
    pub lines: u64,
    /// Time since the upload began.
    pub elapsed: std::time::Duration,
}

/// Called with each [`Progress`] report (a progress bar, say).
pub type OnProgress = Box<dyn FnMut(Progress) + Send>;

/// Opens the files to upload (stdin when there are none), so that a typo
/// fails before anything is sent. Also returns their total size, when known.
pub async fn open_inputs(files: &[PathBuf]) -> anyhow::Result<(Vec<Input>, Option<u64>)> {
    let mut inputs: Vec<Input> = Vec::new();
    let mut total = 0;
    for path in files {
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        total += file.metadata().await.map(|m| m.len()).unwrap_or(0);
        inputs.push((path.display().to_string(), Box::new(file)));
    }
    if files.is_empty() {
        inputs.push(("stdin".to_owned(), Box::new(tokio::io::stdin())));
        return Ok((inputs, None));
    }
    Ok((inputs, Some(total)))
}

/// Uploads the lines of `inputs`, in order, to one pod's log, reporting
/// its progress to `progress`, if given.
pub async fn upload(
    client: &mut Client,
    namespace: &str,
    pod: &str,
    inputs: Vec<Input>,
    progress: Option<OnProgress>,
) -> anyhow::Result<UploadReport> {
    let (chunks, outbound) = mpsc::channel(READ_AHEAD);
    let template = LogChunk {
        namespace: namespace.to_owned(),
        pod: pod.to_owned(),
        lines: Vec::new(),
        first_line: 0,
    };
    let queued = Arc::new(AtomicU64::new(0));
    let mut reader = tokio::spawn(read_chunks(
        inputs,
        template,
        chunks,
        Arc::clone(&queued),
        progress,
    ));
    let call = client.upload_logs(ReceiverStream::new(outbound));
    tokio::pin!(call);

    // An error on either side ends the upload at once (returning drops the
    // call, which cancels it); success needs both sides. The server answers
    // OK only after the input has ended, but the reader may not have
    // reported yet whether it ended well or with a read error: ask it.
    let upload_failed = |status: Status| {
        // A server that refused a chunk says how many lines it stored; a
        // lost connection says nothing, and the client must not guess.
        let unconfirmed = !status.message().contains(STORED_BEFORE_ERROR);
        let queued = queued.load(Ordering::Relaxed);
        let error = status_error(status).context("upload failed");
        if unconfirmed && queued > 0 {
            error.context(format!(
                "the upload broke off after {queued} lines were sent and before the server \
                 confirmed any of them: none, some or all of those lines may be stored \
                 (check with pod-logs before sending them again)"
            ))
        } else {
            error
        }
    };
    let stats = tokio::select! {
        biased;
        read = &mut reader => read.context("the input reader failed")??,
        response = &mut call => {
            let summary = response.map_err(upload_failed)?.into_inner();
            let stats = reader.await.context("the input reader failed")??;
            return Ok(UploadReport { summary, lossy_lines: stats.lossy_lines });
        }
    };
    let summary = call.await.map_err(upload_failed)?.into_inner();
    Ok(UploadReport {
        summary,
        lossy_lines: stats.lossy_lines,
    })
}

#[derive(Debug, Default)]
struct ReadStats {
    lines: u64,
    lossy_lines: u64,
}

/// Reads every input line by line into chunks and sends them in order.
async fn read_chunks(
    inputs: Vec<Input>,
    template: LogChunk,
    chunks: mpsc::Sender<LogChunk>,
    queued: Arc<AtomicU64>,
    mut progress: Option<OnProgress>,
) -> anyhow::Result<ReadStats> {
    let started = std::time::Instant::now();
    let mut read_bytes = 0;
    let mut show = |read_bytes: &mut u64, lines: u64| {
        if let Some(report) = &mut progress {
            report(Progress {
                bytes_read: std::mem::take(read_bytes),
                lines,
                elapsed: started.elapsed(),
            });
        }
    };
    let mut stats = ReadStats::default();
    let mut chunk = template.clone();
    let mut chunk_bytes = 0;
    let mut raw = Vec::new();
    for (name, input) in inputs {
        let mut input = BufReader::with_capacity(64 << 10, input);
        loop {
            raw.clear();
            let n = input.read_until(b'\n', &mut raw).await.with_context(|| {
                format!(
                    "cannot read {name} after {} lines were sent; the server stored the lines \
                     sent before this error",
                    stats.lines
                )
            })?;
            if n == 0 {
                break;
            }
            read_bytes += n as u64;
            let line = strip_line_ending(&raw);
            let line = match std::str::from_utf8(line) {
                Ok(line) => line.to_owned(),
                Err(_) => {
                    stats.lossy_lines += 1;
                    String::from_utf8_lossy(line).into_owned()
                }
            };
            chunk_bytes += line.len();
            chunk.lines.push(line);
            stats.lines += 1;
            if chunk.lines.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, template.clone());
                chunk_bytes = 0;
                show(&mut read_bytes, stats.lines);
                let lines = full.lines.len() as u64;
                if chunks.send(full).await.is_err() {
                    // The call ended early; its status says why.
                    return Ok(stats);
                }
                queued.fetch_add(lines, Ordering::Relaxed);
            }
        }
    }
    if !chunk.lines.is_empty() {
        let lines = chunk.lines.len() as u64;
        if chunks.send(chunk).await.is_ok() {
            queued.fetch_add(lines, Ordering::Relaxed);
        }
    }
    show(&mut read_bytes, stats.lines);
    Ok(stats)
}

fn strip_line_ending(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A one-line summary of an upload, for people.
pub fn describe(report: &UploadReport, namespace: &str, pod: &str) -> String {
    let s = &report.summary;
    format!(
        "uploaded {} lines ({} bytes) in {} chunks to {}/{}",
        s.lines,
        s.bytes,
        s.chunks,
        if namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            namespace
        },
        pod
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings() {
        assert_eq!(strip_line_ending(b"a\r\n"), b"a");
        assert_eq!(strip_line_ending(b"a\n"), b"a");
        assert_eq!(strip_line_ending(b"a"), b"a");
        assert_eq!(strip_line_ending(b"a\r"), b"a");
    }
}
