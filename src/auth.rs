//! Token authentication: with a token configured, every PodService call must
//! carry `authorization: Bearer <token>`.
//!
//! The check is a tower layer in front of all services, so a call without
//! the right token is refused with `UNAUTHENTICATED` before any handler runs
//! and before a byte of its request is read. Only PodService paths are
//! guarded: health stays open for probes, and reflection (which only
//! describes the public contract) too. The comparison takes the same time
//! wherever the tokens differ.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http;
use tower::{Layer, Service};

/// The environment variable that holds the token, for server and clients.
pub const TOKEN_ENV: &str = "POD_SERVICE_TOKEN";

/// The request path prefix of the guarded service.
const GUARDED: &str = "/infra.PodService/";

/// A shared secret. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    /// A token from text: surrounding whitespace is ignored; it must be
    /// non-empty visible ASCII, as an HTTP header value requires.
    pub fn new(text: &str) -> Result<Self, String> {
        let token = text.trim();
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("the token must be visible ASCII without spaces".into());
        }
        Ok(Token(token.into()))
    }

    /// Reads a token from a file (a trailing newline is fine).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read token file {}: {err}", path.display()))?;
        Token::new(&text).map_err(|err| format!("token file {}: {err}", path.display()))
    }

    /// The value of the `authorization` header that carries this token.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    fn accepts(&self, header: Option<&http::HeaderValue>) -> bool {
        let Some(presented) = header.and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
        else {
            return false;
        };
        presented.ct_eq(self.0.as_bytes()).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// The layer; with no token it lets everything through.
#[derive(Clone, Debug, Default)]
pub struct RequireToken {
    token: Option<Token>,
}

impl RequireToken {
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

#[derive(Clone, Debug)]
pub struct RequireTokenService<S> {
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
            && request.uri().path().starts_with(GUARDED)
            && !token.accepts(request.headers().get(http::header::AUTHORIZATION))
        {
            tracing::info!(
                method = request.uri().path(),
                code = "UNAUTHENTICATED",
                "call refused: missing or wrong token"
            );
            let status = Status::unauthenticated(
                "this server requires a token: send `authorization: Bearer <token>` \
                 (clients: --token-file FILE or POD_SERVICE_TOKEN)",
            );
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let token = Token::new("s3cret\n").unwrap();
        let header = |text: &str| http::HeaderValue::from_str(text).ok();
        assert!(token.accepts(header("Bearer s3cret").as_ref()));
        assert!(!token.accepts(header("Bearer s3cre").as_ref()));
        assert!(!token.accepts(header("Bearer s3cret2").as_ref()));
        assert!(!token.accepts(header("bearer s3cret").as_ref()));
        assert!(!token.accepts(header("s3cret").as_ref()));
        assert!(!token.accepts(None));
        assert!(Token::new("  ").is_err());
        assert!(Token::new("two words").is_err());
        assert_eq!(format!("{token:?}"), "Token(..)");
    }
}
