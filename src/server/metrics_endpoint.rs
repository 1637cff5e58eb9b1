//! `GET /metrics` over plain HTTP/1.1, on a listener of its own
//! (`pod-server --metrics-addr`), for Prometheus to scrape.
//!
//! It answers in the Prometheus text format 0.0.4, or in OpenMetrics when
//! the scrape's `Accept` asks for it, and 404 to anything else. It runs
//! apart from the gRPC port, on its own task, so that a scrape is answered
//! while the gRPC port is saturated, and it does not stop when shutdown
//! begins: it serves until the process exits, so the last scrapes show
//! the calls draining.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tonic::codegen::http::{self, Request, Response, StatusCode};

use crate::metrics::{Format, Metrics};
use crate::store::Registry;

/// Serves `metrics` (with `registry`'s figures read at each scrape) on
/// `listener`, until the process exits.
pub async fn serve_metrics(listener: TcpListener, metrics: Arc<Metrics>, registry: Arc<Registry>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors, say: the next accept may work.
                tracing::warn!(%err, "metrics listener: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, registry) = (Arc::clone(&metrics), Arc::clone(&registry));
        tokio::spawn(async move {
            let answer = service_fn(move |request| {
                let answer = scrape(&request, &metrics, &registry);
                async move { Ok::<_, Infallible>(answer) }
            });
            // A scraper that goes away mid-answer is no error of ours.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), answer)
                .await;
        });
    }
}

/// The answer to one request.
fn scrape(
    request: &Request<Incoming>,
    metrics: &Metrics,
    registry: &Registry,
) -> Response<Full<Bytes>> {
    if request.uri().path() != "/metrics"
        || !matches!(*request.method(), http::Method::GET | http::Method::HEAD)
    {
        return answer(
            StatusCode::NOT_FOUND,
            "text/plain",
            "404 page not found\n".into(),
        );
    }
    let figures = &metrics.service.figures;
    figures.version.set(gauge(registry.version()));
    figures.watchers.set(gauge(registry.watcher_count()));
    figures.pods.set(gauge(registry.pod_count()));
    let accept = request.headers().get(http::header::ACCEPT);
    let format = Format::accepted(accept.and_then(|accept| accept.to_str().ok()));
    answer(
        StatusCode::OK,
        format.content_type(),
        metrics.encode(format),
    )
}

fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

fn answer(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}
