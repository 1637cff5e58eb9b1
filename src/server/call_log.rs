//! Per-call log lines: one line when a call finishes, with its method,
//! status code, duration, peer, user and message counts; and the same call's
//! metrics, which the call layer leaves to it
//! ([`CallSlot`](super::call_metrics::CallSlot)), since it knows the end.
//!
//! Each handler holds a [`CallLog`] for the life of its call (for a stream,
//! inside the stream), and the line is written when it is dropped, so a
//! call that ends any way at all (an error, the client going away, shutdown)
//! is logged exactly once. Lines are at DEBUG level under the target
//! `pod_service::calls` (WARN for server-side faults), so the server is quiet
//! by default: `RUST_LOG=pod_service::calls=debug` shows them. Nothing is
//! ever logged per message.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use futures::Stream;
use tonic::{Code, Request, Status};

use super::access::{Caller, User};
use super::call_metrics::CallSlot;
use crate::contract::code_name;
use crate::metrics::{CallMetrics, MethodMetrics};

/// See the module docs.
pub(super) struct CallLog {
    method: &'static str,
    peer: Option<SocketAddr>,
    /// Who made the call, as authentication found.
    user: Option<Arc<User>>,
    started: Instant,
    /// Messages received, counted here (unary calls) or, for a request
    /// stream read elsewhere, in a shared counter made on demand.
    received: u64,
    received_by_stream: Option<Counter>,
    sent: u64,
    /// `None` until the call ends; a guard dropped without one means the
    /// client went away first.
    code: Option<Code>,
    /// The call's metrics, if the call layer counts this server's calls.
    metrics: Option<CallMetrics>,
}

impl CallLog {
    /// Starts the log of a call of `method`.
    pub fn start<T>(method: &'static str, request: &Request<T>) -> Self {
        let metrics = request
            .extensions()
            .get::<CallSlot>()
            .and_then(CallSlot::take);
        CallLog {
            metrics,
            method,
            peer: request.remote_addr(),
            user: request
                .extensions()
                .get::<Caller>()
                .map(|caller| Arc::clone(&caller.0)),
            started: Instant::now(),
            received: 0,
            received_by_stream: None,
            sent: 0,
            code: None,
        }
    }

    /// Counts the one message of a request that is not a stream.
    pub fn received_one(&mut self) {
        self.received += 1;
        if let Some(metrics) = &self.metrics {
            metrics.received(1);
        }
    }

    /// A counter for the messages of a request stream, for the code that
    /// reads them.
    pub fn received(&mut self) -> Counter {
        let method = self.metrics.as_ref().map(|m| Arc::clone(m.method()));
        self.received_by_stream
            .get_or_insert_with(|| Counter {
                count: Arc::default(),
                method,
            })
            .clone()
    }

    /// Wraps a response stream: counts what it sends and records how it
    /// ends (or, if it is dropped first, that the client went away). A plain
    /// adapter rather than a generator: it sits on every message of every
    /// watcher (see the fan-out profile in BENCHMARKS.md).
    pub fn stream<T: Send + 'static>(
        self,
        stream: impl Stream<Item = Result<T, Status>> + Send + 'static,
    ) -> Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>> {
        Box::pin(Logged {
            inner: Box::pin(stream),
            log: self,
        })
    }

    /// Records that the call failed before it got going; returns the status.
    pub fn fail(&mut self, status: Status) -> Status {
        self.code = Some(status.code());
        status
    }

    /// Records how a call with a single response ends.
    pub fn finish<T>(&mut self, result: &Result<T, Status>) {
        self.code = Some(match result {
            Ok(_) => {
                self.sent += 1;
                if let Some(metrics) = &self.metrics {
                    metrics.sent(1);
                }
                Code::Ok
            }
            Err(status) => status.code(),
        });
    }
}

impl Drop for CallLog {
    fn drop(&mut self) {
        // Dropped without a code: the client went away, unless the
        // handler panicked (the panic guard answers it INTERNAL).
        let code = self.code.unwrap_or(if std::thread::panicking() {
            Code::Internal
        } else {
            Code::Cancelled
        });
        if let Some(mut metrics) = self.metrics.take() {
            metrics.ended(code);
        }
        let fault = matches!(code, Code::Internal | Code::Unknown | Code::DataLoss);
        // Calls are many and the line is usually filtered out: do no work
        // (no formatting, no allocation) unless it will be written.
        if !fault && !tracing::enabled!(target: "pod_service::calls", tracing::Level::DEBUG) {
            return;
        }
        let received = self.received + self.received_by_stream.as_ref().map_or(0, Counter::get);
        let peer = self
            .peer
            .map_or_else(|| "-".to_owned(), |peer| peer.to_string());
        let duration_ms = self.started.elapsed().as_secs_f64() * 1e3;
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "pod_service::calls",
                    method = self.method,
                    code = code_name(code),
                    duration_ms = format_args!("{duration_ms:.3}"),
                    %peer,
                    user = self.user.as_deref().map_or("-", |user| user.name.as_str()),
                    received,
                    sent = self.sent,
                    "call finished"
                )
            };
        }
        if fault {
            line!(warn);
        } else {
            line!(debug);
        }
    }
}

/// A response stream and the log line of its call.
struct Logged<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>,
    log: CallLog,
}

impl<T> Stream for Logged<T> {
    type Item = Result<T, Status>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let item = std::task::ready!(self.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(_)) => {
                self.log.sent += 1;
                if let Some(metrics) = &self.log.metrics {
                    metrics.sent(1);
                }
            }
            Some(Err(status)) => self.log.code = Some(status.code()),
            None => {
                self.log.code.get_or_insert(Code::Ok);
            }
        }
        std::task::Poll::Ready(item)
    }
}

/// A shared message counter, counted into the method's metrics too.
#[derive(Clone, Debug, Default)]
pub(super) struct Counter {
    count: Arc<AtomicU64>,
    method: Option<Arc<MethodMetrics>>,
}

impl Counter {
    /// Counts one message.
    pub fn add(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if let Some(method) = &self.method {
            method.received(1);
        }
    }

    /// The messages counted.
    pub fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}
