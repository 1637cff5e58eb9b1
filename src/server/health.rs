//! The standard gRPC health service (`grpc.health.v1.Health`, from
//! `tonic-health`), as generic tools and load balancers expect it.
//!
//! The server reports `SERVING` for the PodService and for the server as
//! a whole (`""`), and flips both to `NOT_SERVING` when shutdown begins. A
//! health `Watch` is an endless stream like any other, so it must not hold
//! shutdown up either: each one ends right after it has reported
//! `NOT_SERVING` during shutdown.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};

use super::signals::Shutdown;
use crate::contract::POD_SERVICE;

/// Builds the health service, reporting `SERVING` until `shutdown` is
/// cancelled and `NOT_SERVING` from then on.
pub(super) async fn service(shutdown: Shutdown) -> HealthServer<StoppingHealth> {
    let reporter = HealthReporter::new();
    reporter
        .set_service_status(POD_SERVICE, ServingStatus::Serving)
        .await;
    let health = StoppingHealth {
        inner: HealthService::from_health_reporter(reporter.clone()),
        shutdown: shutdown.clone(),
    };
    tokio::spawn(async move {
        shutdown.cancelled().await;
        for service in [POD_SERVICE, ""] {
            reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
    });
    HealthServer::new(health)
}

/// `tonic-health`'s service, with `Watch` streams that end at shutdown.
pub(super) struct StoppingHealth {
    inner: HealthService,
    shutdown: Shutdown,
}

#[tonic::async_trait]
impl Health for StoppingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut statuses = self.inner.watch(request).await?.into_inner();
        let shutdown = self.shutdown.clone();
        let stream = async_stream::stream! {
            let not_serving = ServingStatus::NotServing as i32;
            let mut last = None;
            loop {
                let stopping = shutdown.is_cancelled();
                if stopping && last == Some(not_serving) {
                    break;
                }
                let next = tokio::select! {
                    next = statuses.next() => next,
                    _ = shutdown.cancelled(), if !stopping => continue,
                };
                match next {
                    Some(Ok(response)) => {
                        last = Some(response.status);
                        yield Ok(response);
                    }
                    Some(Err(status)) => {
                        yield Err(status);
                        break;
                    }
                    None => break,
                }
            }
        };
        Ok(Response::new(Box::pin(stream)))
    }
}
