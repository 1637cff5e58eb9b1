//! Counts every call for the `grpc_server_*` metrics, as a layer: it sits
//! just inside the gRPC-Web translation, so it sees every call of every
//! service (health and reflection too) as plain gRPC, including those the
//! token check refuses and those a panic ends.
//!
//! A layer sees a response's headers, not its end. The PodService's
//! handlers know the end, and count their messages already for their log
//! line ([`call_log`](super::call_log)): the layer leaves them the call,
//! in the request's extensions ([`CallSlot`]), and a handler that takes it
//! counts it from then on, at no cost per message beyond an add. A call
//! nobody took (health, reflection, or a PodService call refused before
//! its handler, by the token check or the panic guard) is counted here, by
//! wrapping the bodies: the call ends when the response body yields its
//! trailers (their `grpc-status` is the code; an error without a body has
//! it in the headers), or, if the body is dropped first, because the
//! client went away (`Canceled`). Messages are counted from the bodies'
//! gRPC framing (each message is a 5-byte prefix and its length).

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body::{Frame, SizeHint};
use tonic::Code;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::contract::POD_SERVICE;
use crate::metrics::{CallMetrics, GrpcMetrics, MethodMetrics};

/// Counts the calls of the services inside it into `metrics`.
#[derive(Clone, Debug)]
pub(super) struct CountCalls {
    metrics: Arc<crate::metrics::Metrics>,
}

impl CountCalls {
    pub fn new(metrics: Arc<crate::metrics::Metrics>) -> Self {
        CountCalls { metrics }
    }
}

impl<S> Layer<S> for CountCalls {
    type Service = CountCallsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CountCallsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone, Debug)]
pub(super) struct CountCallsService<S> {
    inner: S,
    metrics: Arc<crate::metrics::Metrics>,
}

impl<S> CountCallsService<S> {
    fn grpc(&self) -> &GrpcMetrics {
        &self.metrics.grpc
    }
}

impl<S> Service<http::Request<Body>> for CountCallsService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let Some(method) = self.grpc().method(request.uri().path()).cloned() else {
            return Box::pin(self.inner.call(request));
        };
        let call = CallMetrics::start(Arc::clone(&method));
        if counts_its_own(request.uri().path()) {
            let slot = CallSlot(Arc::new(Mutex::new(Some(call))));
            request.extensions_mut().insert(slot.clone());
            let answer = self.inner.call(request);
            return Box::pin(async move {
                let response = answer.await?;
                // Taken: the handler counts the call. Else it was answered
                // before its handler ran: counted here.
                Ok(match slot.take() {
                    None => response,
                    Some(call) => counted(response, call),
                })
            });
        }
        let request = request.map(|body| {
            Body::new(Counted {
                inner: body,
                frames: Frames::default(),
                count: Count::Received(Arc::clone(&method)),
            })
        });
        let answer = self.inner.call(request);
        Box::pin(async move { Ok(counted(answer.await?, call)) })
    }
}

/// Whether the handlers of the method at `path` count their own calls.
fn counts_its_own(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|path| path.strip_prefix(POD_SERVICE))
        .is_some_and(|method| method.starts_with('/'))
}

/// `response`, whose body counts its messages and `call`'s end.
fn counted(response: http::Response<Body>, mut call: CallMetrics) -> http::Response<Body> {
    // An answer without a body (an error) has its status here.
    if let Some(code) = grpc_status(response.headers()) {
        call.ended(code);
    }
    response.map(|body| {
        Body::new(Counted {
            inner: body,
            frames: Frames::default(),
            count: Count::Sent(Some(call)),
        })
    })
}

/// A call's metrics, offered to its handler in the request's extensions.
#[derive(Clone, Debug)]
pub(super) struct CallSlot(Arc<Mutex<Option<CallMetrics>>>);

impl CallSlot {
    /// The call's metrics, for the one that takes them first.
    pub fn take(&self) -> Option<CallMetrics> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// What a wrapped body counts.
enum Count {
    /// A request's messages.
    Received(Arc<MethodMetrics>),
    /// A response's messages, and the call's end: `None` once recorded.
    Sent(Option<CallMetrics>),
}

/// A body whose gRPC messages are counted as they pass.
struct Counted {
    inner: Body,
    frames: Frames,
    count: Count,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx));
        match (&frame, &mut this.count) {
            (Some(Ok(frame)), count) => {
                if let Some(data) = frame.data_ref() {
                    let messages = this.frames.count(data);
                    match count {
                        Count::Received(method) => method.received(messages),
                        Count::Sent(Some(call)) => call.sent(messages),
                        Count::Sent(None) => {}
                    }
                } else if let (Some(trailers), Count::Sent(call)) = (frame.trailers_ref(), count) {
                    // The call's end: recorded now, with its duration.
                    if let Some(mut call) = call.take() {
                        call.ended(grpc_status(trailers).unwrap_or(Code::Unknown));
                    }
                }
            }
            (Some(Err(status)), Count::Sent(call)) => {
                if let Some(mut call) = call.take() {
                    call.ended(status.code());
                }
            }
            _ => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The code in a `grpc-status` header or trailer.
fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    Some(Code::from(value.parse::<i32>().ok()?))
}

/// Where a body is in its gRPC framing: each message is a flag byte, a
/// 4-byte big-endian length, then that many bytes, and data frames may
/// split or join messages anywhere.
#[derive(Debug, Default)]
struct Frames {
    /// The current message's prefix, and how much of it has come.
    prefix: [u8; 5],
    in_prefix: usize,
    /// Bytes of the current message still to come.
    left: u64,
}

impl Frames {
    /// How many messages begin in `data`.
    fn count(&mut self, mut data: &[u8]) -> u64 {
        let mut messages = 0;
        // The rest of a message an earlier frame began...
        if self.left > 0 {
            let skip = data
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            self.left -= skip as u64;
            data = &data[skip..];
        }
        // ...or of its prefix.
        if self.in_prefix > 0 && !data.is_empty() {
            let take = data.len().min(5 - self.in_prefix);
            self.prefix[self.in_prefix..self.in_prefix + take].copy_from_slice(&data[..take]);
            self.in_prefix += take;
            data = &data[take..];
            if self.in_prefix < 5 {
                return 0;
            }
            self.in_prefix = 0;
            messages += 1;
            let [_, a, b, c, d] = self.prefix;
            let length = u32::from_be_bytes([a, b, c, d]) as usize;
            match data.get(length..) {
                Some(rest) => data = rest,
                None => {
                    self.left = (length - data.len()) as u64;
                    return messages;
                }
            }
        }
        // Whole prefixes, read in place: the usual case, a frame of whole
        // messages.
        while let Some(&[_, a, b, c, d]) = data.get(..5) {
            messages += 1;
            let end = 5 + u32::from_be_bytes([a, b, c, d]) as usize;
            match data.get(end..) {
                Some(rest) => data = rest,
                None => {
                    self.left = (end - data.len()) as u64;
                    return messages;
                }
            }
        }
        // A prefix the frame's end cut.
        self.prefix[..data.len()].copy_from_slice(data);
        self.in_prefix = data.len();
        messages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend(len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, len as usize));
        bytes
    }

    #[test]
    fn messages_are_counted_however_frames_cut_them() {
        let mut stream = Vec::new();
        for len in [0, 3, 70_000, 1, 0, 12] {
            stream.extend(message(len));
        }
        for cut in [1, 2, 4, 5, 6, 7, 100, 65_536, stream.len()] {
            let mut frames = Frames::default();
            let counted: u64 = stream.chunks(cut).map(|chunk| frames.count(chunk)).sum();
            assert_eq!(counted, 6, "in frames of {cut} bytes");
        }
    }
}
