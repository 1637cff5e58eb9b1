//! A resumable read of a pod's log, as `kubectl logs -f` would like to be.
//!
//! [`LogRead`] keeps the number of the next line it wants. When its
//! stream breaks (the connection dropped, the server restarted, or its
//! replica died) it waits with capped, jittered backoff and asks again
//! from that line (`from_line`), at the next of its [`Servers`] (see
//! [`resume`](super::resume)): so no line is given twice and none is
//! missed. Lines that retention dropped meanwhile show as a gap in the
//! numbers.
//!
//! A server from before line numbers (`first_line` unset) cannot be
//! resumed from: its read ends with the error that broke it.

use std::time::Duration;

use tonic::{Code, Status, Streaming};

use super::connect::status_error;
use super::resume::Resumer;
use super::servers::Servers;
use crate::contract::{GetLogsRequest, LogChunk};

/// What [`LogRead::next`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogUpdate {
    /// Lines, numbered from `first_line` (0: the server does not number them).
    Lines {
        /// The number of the first line.
        first_line: u64,
        /// The lines, oldest first.
        lines: Vec<String>,
    },
    /// The stream broke; the read resumes by itself after `retry_in`.
    Interrupted {
        /// The status that broke it, as `CODE: message`.
        reason: String,
        /// The line it resumes at.
        resume_at: u64,
        /// How long until it resumes.
        retry_in: Duration,
        /// All of it as one line to print: `logs interrupted (REASON);
        /// resuming from line N at SERVER in 0.1s`.
        note: String,
    },
}

/// See the module docs.
pub struct LogRead {
    resumer: Resumer,
    request: GetLogsRequest,
    /// The number of the next line wanted; `None` before the first line,
    /// and for good once a server did not number its lines.
    next_line: Option<u64>,
    numbered: bool,
    /// Whether a server has answered the read once.
    opened: bool,
    stream: Option<Streaming<LogChunk>>,
}

impl LogRead {
    /// A read of the pod's log as `request` asks, on a client or on
    /// several servers.
    pub fn new(servers: impl Into<Servers>, request: GetLogsRequest) -> Self {
        LogRead {
            resumer: Resumer::new(servers.into()),
            next_line: (request.from_line > 0).then_some(request.from_line),
            request,
            numbered: true,
            opened: false,
            stream: None,
        }
    }

    /// The server the read uses (after an interruption: the one it will
    /// resume at), when it has several to choose from.
    pub fn server(&self) -> Option<&str> {
        self.resumer.server()
    }

    /// The next update; `None` once the log is read (without follow) or
    /// the pod was deleted (with follow). Errors when the server refuses
    /// the read (the pod does not exist, say), or when a stream of
    /// unnumbered lines breaks.
    pub async fn next(&mut self) -> anyhow::Result<Option<LogUpdate>> {
        self.resumer.wait().await;
        let status = match self.step().await {
            Ok(update) => return Ok(update),
            Err(status) => status,
        };
        self.stream = None;
        // A pod not found on resuming was deleted meanwhile: its log
        // is gone, as a follow would have ended.
        if status.code() == Code::NotFound && self.opened {
            return Ok(None);
        }
        if !self.numbered || status.code() == Code::NotFound {
            return Err(status_error(status));
        }
        let interruption = self.resumer.interrupted(status)?;
        let resume_at = self.next_line.unwrap_or(0);
        let place = match resume_at {
            0 => "the start".to_owned(),
            line => format!("line {line}"),
        };
        Ok(Some(LogUpdate::Interrupted {
            note: interruption.line("logs", Some(&place)),
            reason: interruption.reason,
            resume_at,
            retry_in: interruption.retry_in,
        }))
    }

    /// Opens the stream if needed, and reads one message from it.
    async fn step(&mut self) -> Result<Option<LogUpdate>, Status> {
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let mut request = self.request.clone();
                if let Some(line) = self.next_line {
                    request.from_line = line;
                    request.tail_lines = 0;
                }
                let stream = self.resumer.client().get_logs(request).await?.into_inner();
                self.opened = true;
                self.stream.insert(stream)
            }
        };
        loop {
            let Some(chunk) = stream.message().await? else {
                return Ok(None);
            };
            self.resumer.progressed();
            if chunk.first_line == 0 {
                self.numbered = false;
                return Ok(Some(LogUpdate::Lines {
                    first_line: 0,
                    lines: chunk.lines,
                }));
            }
            // A server never sends lines before the one asked for; should
            // one, they are not given twice.
            let wanted = self.next_line.unwrap_or(0);
            let skip =
                usize::try_from(wanted.saturating_sub(chunk.first_line)).unwrap_or(usize::MAX);
            let mut lines = chunk.lines;
            if skip >= lines.len() {
                continue;
            }
            let first_line = chunk.first_line + skip as u64;
            let lines = lines.split_off(skip);
            self.next_line = Some(first_line + lines.len() as u64);
            return Ok(Some(LogUpdate::Lines { first_line, lines }));
        }
    }
}
