//! Token authentication: with a token configured, every PodService call must
//! carry `authorization: Bearer <token>`.
//!
//! The check is a tower layer in front of all services, so a call without
//! the right token is refused with `UNAUTHENTICATED` before any handler runs
//! and before a byte of its request is read. Only PodService calls are
//! guarded, recognised by the service name the generated code reports (so
//! a renamed package or a new RPC is covered without a change here): health
//! stays open for probes, and reflection (which only describes the public
//! contract) too.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use crate::contract::{POD_SERVICE, TOKEN_ENV, Token};

/// The layer; with no token it lets everything through.
#[derive(Clone, Debug, Default)]
pub(super) struct RequireToken {
    token: Option<Token>,
}

impl RequireToken {
    /// Requires `token`, if any, on every PodService call.
    pub fn new(token: Option<Token>) -> Self {
        RequireToken { token }
    }
}

impl<S> Layer<S> for RequireToken {
    type Service = RequireTokenService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireTokenService {
            inner,
            token: self.token.clone(),
        }
    }
}

/// The layer's service, in front of `S`.
#[derive(Clone, Debug)]
pub(super) struct RequireTokenService<S> {
    inner: S,
    token: Option<Token>,
}

impl<S, B> Service<http::Request<B>> for RequireTokenService<S>
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
        if let Some(token) = &self.token
            && is_pod_service(request.uri().path())
            && !token.accepts(request.headers().get(http::header::AUTHORIZATION))
        {
            tracing::info!(
                method = request.uri().path(),
                code = "UNAUTHENTICATED",
                "call refused: missing or wrong token"
            );
            let status = Status::unauthenticated(format!(
                "this server requires a token: send `authorization: Bearer <token>` \
                 (clients: --token-file FILE or {TOKEN_ENV})"
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// Whether a request path (`/package.Service/Method`) calls the PodService.
pub(super) fn is_pod_service(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|path| path.split_once('/'))
        .is_some_and(|(service, _)| service == POD_SERVICE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_pod_service_paths() {
        assert!(is_pod_service(&format!("/{POD_SERVICE}/ListPods")));
        assert!(is_pod_service(&format!("/{POD_SERVICE}/AnyNewMethod")));
        assert!(!is_pod_service(&format!("/{POD_SERVICE}Extra/ListPods")));
        assert!(!is_pod_service("/grpc.health.v1.Health/Check"));
        assert!(!is_pod_service(POD_SERVICE));
    }
}
