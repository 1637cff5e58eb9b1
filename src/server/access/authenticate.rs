//! Authentication: who a PodService call comes from, decided once per call
//! by a tower layer in front of all services, before any handler runs and
//! before a byte of the request is read.
//!
//! As in kube-apiserver, the authenticators are tried in a fixed order and
//! the first that recognises the caller wins:
//!
//! 1. a client certificate verified against `--client-ca-file` during the
//!    TLS handshake: the user is its CN, the groups its O values; a token
//!    sent beside it is not looked at;
//! 2. a bearer token: the server's single `--token-file` token (the user
//!    [`TOKEN_USER`](super::user::TOKEN_USER), with every permission), or a
//!    token of `--token-auth-file`.
//!
//! A call with a token no authenticator knows, or with no credentials on a
//! server that has some authenticator, is refused `UNAUTHENTICATED`. A
//! server with none takes every caller as the anonymous user, which is how
//! it always was. The user is left in the request's extensions
//! ([`Caller`]) for the permission check at the handlers' edge.
//!
//! Only PodService calls are authenticated, recognised by the service name
//! the generated code reports (so a new RPC is covered without a change
//! here): health stays open for probes, and reflection (which only
//! describes the public contract) too.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

use super::client_cert;
use super::token_users::TokenUsers;
use super::user::{Caller, User};
use crate::contract::{POD_SERVICE, TOKEN_ENV, Token};

/// Who may call, and how they prove it.
#[derive(Clone, Debug, Default)]
pub struct Authenticators {
    /// The single token, whose holder may do everything.
    pub token: Option<Token>,
    /// The users of a token file.
    pub users: Option<TokenUsers>,
    /// Whether connections are asked for client certificates.
    pub client_certs: bool,
}

impl Authenticators {
    fn any(&self) -> bool {
        self.token.is_some() || self.users.is_some() || self.client_certs
    }
}

/// The layer.
#[derive(Clone, Debug)]
pub(in crate::server) struct Authenticate {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    authenticators: Authenticators,
    /// Made once, so that a call costs a reference count, not a user.
    anonymous: Arc<User>,
    token_holder: Arc<User>,
    /// What a refused caller is told to send.
    wanted: String,
}

impl Authenticate {
    /// Authenticates PodService calls with `authenticators`.
    pub fn new(authenticators: Authenticators) -> Self {
        let mut ways = Vec::new();
        if authenticators.token.is_some() || authenticators.users.is_some() {
            ways.push(format!(
                "a token: send `authorization: Bearer <token>` (clients: --token-file FILE \
                 or {TOKEN_ENV})"
            ));
        }
        if authenticators.client_certs {
            ways.push(
                "a client certificate signed by the server's client CA (clients: --cert FILE \
                 --key FILE)"
                    .to_owned(),
            );
        }
        Authenticate {
            shared: Arc::new(Shared {
                wanted: format!("this server requires {}", ways.join(", or ")),
                authenticators,
                anonymous: Arc::new(User::anonymous()),
                token_holder: Arc::new(User::token_holder()),
            }),
        }
    }
}

impl Shared {
    /// The caller of `request`, or why it is refused.
    fn authenticate<B>(&self, request: &http::Request<B>) -> Result<Arc<User>, String> {
        let auth = &self.authenticators;
        if auth.client_certs
            && let Some(user) = client_cert::user(request)
        {
            return user.map(Arc::new);
        }
        if auth.token.is_none() && auth.users.is_none() {
            return if auth.any() {
                Err(self.wanted.clone())
            } else {
                Ok(Arc::clone(&self.anonymous))
            };
        }
        let Some(header) = request.headers().get(http::header::AUTHORIZATION) else {
            return Err(self.wanted.clone());
        };
        let Some(presented) = header.as_bytes().strip_prefix(b"Bearer ") else {
            return Err(format!(
                "the authorization header is not `Bearer <token>`; {}",
                self.wanted
            ));
        };
        // Both are always compared, so the time says nothing of which matched.
        let holder = auth
            .token
            .as_ref()
            .is_some_and(|token| token.matches(presented));
        let user = auth.users.as_ref().and_then(|users| users.user(presented));
        match (holder, user) {
            (true, _) => Ok(Arc::clone(&self.token_holder)),
            (false, Some(user)) => Ok(user),
            (false, None) => Err(format!("the token was not accepted; {}", self.wanted)),
        }
    }
}

impl<S> Layer<S> for Authenticate {
    type Service = AuthenticateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticateService {
            inner,
            shared: Arc::clone(&self.shared),
        }
    }
}

/// The layer's service, in front of `S`.
#[derive(Clone, Debug)]
pub(in crate::server) struct AuthenticateService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S, B> Service<http::Request<B>> for AuthenticateService<S>
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

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if is_pod_service(request.uri().path()) {
            match self.shared.authenticate(&request) {
                Ok(user) => {
                    request.extensions_mut().insert(Caller(user));
                }
                Err(reason) => {
                    tracing::info!(
                        method = request.uri().path(),
                        code = "UNAUTHENTICATED",
                        "call refused: {reason}"
                    );
                    let status = Status::unauthenticated(reason);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        Box::pin(self.inner.call(request))
    }
}

/// Whether a request path (`/package.Service/Method`) calls the PodService.
pub(in crate::server) fn is_pod_service(path: &str) -> bool {
    path.strip_prefix('/')
        .and_then(|path| path.split_once('/'))
        .is_some_and(|(service, _)| service == POD_SERVICE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::access::user::{ANONYMOUS, MASTERS};

    #[test]
    fn recognises_pod_service_paths() {
        assert!(is_pod_service(&format!("/{POD_SERVICE}/ListPods")));
        assert!(is_pod_service(&format!("/{POD_SERVICE}/AnyNewMethod")));
        assert!(!is_pod_service(&format!("/{POD_SERVICE}Extra/ListPods")));
        assert!(!is_pod_service("/grpc.health.v1.Health/Check"));
        assert!(!is_pod_service(POD_SERVICE));
    }

    fn call(authenticators: Authenticators, token: Option<&str>) -> Result<Arc<User>, String> {
        let mut request = http::Request::builder().uri(format!("/{POD_SERVICE}/ListPods"));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let layer = Authenticate::new(authenticators);
        layer.shared.authenticate(&request.body(()).unwrap())
    }

    #[test]
    fn tokens_name_their_users() {
        let both = Authenticators {
            token: Some(Token::new("single").unwrap()),
            users: Some(TokenUsers::parse("t1,alice,1,dev\n").unwrap()),
            client_certs: false,
        };
        let holder = call(both.clone(), Some("single")).unwrap();
        assert!(holder.in_group(MASTERS));
        assert_eq!(call(both.clone(), Some("t1")).unwrap().name, "alice");
        let wrong = call(both.clone(), Some("t2")).unwrap_err();
        assert!(wrong.starts_with("the token was not accepted"), "{wrong}");
        let none = call(both, None).unwrap_err();
        assert!(none.starts_with("this server requires a token"), "{none}");
    }

    #[test]
    fn without_authenticators_everyone_is_anonymous() {
        let user = call(Authenticators::default(), Some("anything")).unwrap();
        assert_eq!(user.name, ANONYMOUS);
        let certs_only = Authenticators {
            client_certs: true,
            ..Authenticators::default()
        };
        let refused = call(certs_only, None).unwrap_err();
        assert!(refused.contains("a client certificate"), "{refused}");
        assert!(!refused.contains("token"), "{refused}");
    }
}
