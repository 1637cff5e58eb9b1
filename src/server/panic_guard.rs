//! What every call's answer passes through on its way out, as one tower
//! layer in front of all services (one boxed future per call, not one per
//! concern):
//!
//! - a handler that panics fails its own call, not the server: the panic is
//!   caught and answered `INTERNAL` (and logged); the server and every
//!   other call go on;
//! - tonic's status for an oversized message becomes `RESOURCE_EXHAUSTED`
//!   (the rewrite is in [`oversize`](super::oversize)).
//!
//! A panic inside a stream that has already answered ends the task that
//! drives that stream, which resets it: the client sees the stream fail.
//! Shared state stays usable: the store's locks recover from poisoning.
//!
//! The panic catching is written here rather than taken from `tower-http`'s
//! `CatchPanicLayer`, which also re-boxes every response body: one more
//! dynamic call per streamed message, which slowed WatchPods snapshots
//! measurably (side by side in BENCHMARKS.md).

use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::oversize;

/// The layer. See the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct GuardCalls;

impl<S> Layer<S> for GuardCalls {
    type Service = GuardCallsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardCallsService { inner }
    }
}

/// The layer's service, in front of `S`.
#[derive(Clone, Debug)]
pub(super) struct GuardCallsService<S> {
    inner: S,
}

impl<S, B> Service<http::Request<B>> for GuardCallsService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let streamed_request = oversize::streams_its_request(request.uri().path());
        let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(answer) => answer,
            Err(panic) => return Box::pin(async move { Ok(failed(panic)) }),
        };
        Box::pin(async move {
            match AssertUnwindSafe(answer).catch_unwind().await {
                Ok(answer) => Ok(oversize::oversized_is_exhausted(answer?, streamed_request)),
                Err(panic) => Ok(failed(panic)),
            }
        })
    }
}

fn failed(panic: Box<dyn std::any::Any + Send>) -> http::Response<Body> {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = what, "a call's handler panicked");
    tonic::Status::internal("the server failed on this call (a bug: see its log)").into_http()
}
