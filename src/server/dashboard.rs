//! The dashboard: a page at `/` that watches the pods over gRPC-Web, and
//! the rules that keep other sites' pages away from the API.
//!
//! The page (`dashboard/page/`: HTML, CSS and small plain JavaScript
//! modules, with no build step; `tests/grpc_web/page.rs` runs their unit tests with
//! `node --test`) is embedded in the binary and talks gRPC-Web to the
//! same PodService as every other client, on the same port: no second API,
//! no second contract. This layer is the outermost of the server's: it
//! answers `GET` and `HEAD` with the page's files and passes everything else
//! on to the gRPC-Web translation, the guard and the token check.
//!
//! What a browser may send is narrowed here, once, for every request:
//! - **Same origin only.** The server sends no CORS headers and refuses
//!   preflights (`OPTIONS`), and a request whose `Origin` is not the
//!   server's own is refused, so another site's page cannot call the API.
//! - **No DNS rebinding.** On a loopback listener, a browser request must
//!   name a loopback host (`localhost`, `*.localhost`, `127.x.x.x`, `[::1]`):
//!   a site that points its own name at 127.0.0.1 is refused. Browsers reach
//!   a plaintext port only over HTTP/1.1 (none speaks cleartext HTTP/2), so
//!   HTTP/1.x requests and requests with an `Origin` count as a browser's;
//!   native gRPC clients are not affected by how they name the server.
//! - **Only the page's own files.** The page's Content-Security-Policy lets
//!   it load its own scripts and styles and connect to its own origin, and
//!   nothing else: no inline script, no other host, no framing.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Version};
use tonic::body::Body;
use tower::{Layer, Service};

/// The page's Content-Security-Policy: its own files, its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The page's address on a server listening on `addr`. A server listening
/// on every interface is reachable on loopback too, at a name the loopback
/// rule accepts.
pub fn url(addr: std::net::SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = match addr.ip() {
        ip if ip.is_unspecified() => "localhost".to_owned(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    format!("{scheme}://{host}:{}/", addr.port())
}

/// One embedded file of the page.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    path: "/index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("dashboard/page/index.html"),
};

/// One JavaScript module of the page, served at `/NAME`.
macro_rules! module {
    ($name:literal) => {
        Asset {
            path: concat!("/", $name),
            content_type: "text/javascript; charset=utf-8",
            body: include_str!(concat!("dashboard/page/", $name)),
        }
    };
}

/// The page's files; `/` is `index.html`, whatever the query says (the
/// view lives in the query: `/?namespace=NS&pod=NAME`). `app.js` imports
/// the other modules (`page/test/` holds their unit tests, not served).
const ASSETS: &[Asset] = &[
    INDEX,
    module!("app.js"),
    module!("hooks.js"),
    module!("log-viewer.js"),
    module!("pod-api.js"),
    module!("pod-summary.js"),
    module!("pod-table.js"),
    module!("pod-watch.js"),
    module!("pods.js"),
    module!("retry.js"),
    module!("token.js"),
    module!("view-url.js"),
    module!("write-access.js"),
    module!("write-form.js"),
    module!("grpc-web.js"),
    module!("protobuf.js"),
    Asset {
        path: "/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/page/style.css"),
    },
    Asset {
        path: "/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("dashboard/page/favicon.svg"),
    },
];

/// The page's protobuf codec, whose schema a test compares with the
/// compiled descriptor.
pub const PROTOBUF_JS: &str = include_str!("dashboard/page/protobuf.js");

/// The layer: serves the page (unless it is off) and applies the browser
/// rules above to every request.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dashboard {
    /// Serve the page; with `false`, `GET /` is a 404 naming the flag.
    page: bool,
    /// Refuse browser requests that name a host other than loopback.
    loopback_hosts_only: bool,
}

impl Dashboard {
    pub fn new(page: bool, loopback_hosts_only: bool) -> Self {
        Dashboard {
            page,
            loopback_hosts_only,
        }
    }
}

impl<S> Layer<S> for Dashboard {
    type Service = DashboardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DashboardService {
            inner,
            rules: *self,
        }
    }
}

/// The layer's service, in front of `S`.
#[derive(Clone, Debug)]
pub(super) struct DashboardService<S> {
    inner: S,
    rules: Dashboard,
}

impl<S, B> Service<http::Request<B>> for DashboardService<S>
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
        match self.rules.answer(&request) {
            Some(response) => Box::pin(async move { Ok(response) }),
            None => Box::pin(self.inner.call(request)),
        }
    }
}

impl Dashboard {
    /// The answer to a request this layer handles itself: a refusal or a
    /// file of the page. `None` passes the request on.
    fn answer<B>(&self, request: &http::Request<B>) -> Option<http::Response<Body>> {
        if request.method() == Method::OPTIONS {
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "preflight refused: this server's API is for pages of its own origin only (no CORS)",
            ));
        }
        let host = request_host(request);
        let browser =
            request.version() < Version::HTTP_2 || request.headers().contains_key(header::ORIGIN);
        if browser && self.loopback_hosts_only && !host.is_some_and(is_loopback_host) {
            tracing::info!(
                host,
                path = request.uri().path(),
                "request refused: not a loopback host"
            );
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "refused: this server listens on loopback and answers browsers only at \
                 localhost, 127.0.0.1 or [::1] (a foreign Host may be DNS rebinding)",
            ));
        }
        if let Some(origin) = request.headers().get(header::ORIGIN)
            && !same_origin(origin, host)
        {
            tracing::info!(
                ?origin,
                host,
                path = request.uri().path(),
                "request refused: cross-origin"
            );
            return Some(refusal(
                StatusCode::FORBIDDEN,
                "refused: cross-origin request (this server's API is for pages of its own origin only)",
            ));
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return None;
        }
        let head = request.method() == Method::HEAD;
        if !self.page {
            return Some(refusal(
                StatusCode::NOT_FOUND,
                "not found: the dashboard is off (pod-server --no-dashboard)",
            ));
        }
        let path = match request.uri().path() {
            "/" => INDEX.path,
            path => path,
        };
        Some(match ASSETS.iter().find(|asset| asset.path == path) {
            Some(asset) => file(asset, head),
            None => refusal(StatusCode::NOT_FOUND, "not found: the dashboard is at /"),
        })
    }
}

/// The host a request names, without its port: `Host` (HTTP/1.1) or the
/// `:authority` (HTTP/2).
fn request_host<B>(request: &http::Request<B>) -> Option<&str> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        })
}

/// Whether `host` (with or without a port) names this machine's loopback
/// interface: a name no other site can be behind.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:50051`
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _port)| name),
    };
    let name = name.to_ascii_lowercase();
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether an `Origin` (`http://HOST[:PORT]`) is the origin of the server
/// the request reached under `host`.
fn same_origin(origin: &HeaderValue, host: Option<&str>) -> bool {
    let origin = origin.to_str().unwrap_or_default();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((authority, host), (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host))
}

fn file(asset: &Asset, head: bool) -> http::Response<Body> {
    let mut response = http::Response::new(if head {
        Body::empty()
    } else {
        Body::new(http_body_util::Full::new(bytes::Bytes::from_static(
            asset.body.as_bytes(),
        )))
    });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
    // A new binary's page is fetched again; the files are small.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    page_headers(headers);
    response
}

fn refusal(status: StatusCode, reason: &'static str) -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(http_body_util::Full::new(
        bytes::Bytes::from_static(reason.as_bytes()),
    )));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    page_headers(headers);
    response
}

/// The headers of everything the layer answers itself.
fn page_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_a_reachable_host() {
        let page = |addr: &str, tls| url(addr.parse().unwrap(), tls);
        assert_eq!(page("127.0.0.1:50051", false), "http://127.0.0.1:50051/");
        assert_eq!(page("0.0.0.0:50051", true), "https://localhost:50051/");
        assert_eq!(page("[::1]:8080", false), "http://[::1]:8080/");
    }

    #[test]
    fn loopback_hosts() {
        for host in [
            "localhost",
            "localhost:50051",
            "LOCALHOST:1",
            "dash.localhost:8080",
            "127.0.0.1",
            "127.0.0.1:50051",
            "127.1.2.3:9",
            "[::1]:50051",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:50051",
            "localhost.evil.example",
            "10.0.0.1:50051",
            "[::2]:50051",
            "",
            "127.0.0.1.nip.io:50051",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn same_origin_compares_the_authority() {
        let origin = |value| HeaderValue::from_static(value);
        assert!(same_origin(
            &origin("http://127.0.0.1:50051"),
            Some("127.0.0.1:50051")
        ));
        assert!(same_origin(
            &origin("https://LocalHost:1"),
            Some("localhost:1")
        ));
        assert!(!same_origin(
            &origin("http://127.0.0.1:50052"),
            Some("127.0.0.1:50051")
        ));
        assert!(!same_origin(&origin("null"), Some("127.0.0.1:50051")));
        assert!(!same_origin(&origin("http://127.0.0.1:50051"), None));
    }

    #[test]
    fn every_asset_is_served_with_its_type() {
        let dashboard = Dashboard::new(true, true);
        for asset in ASSETS {
            let request = http::Request::get(asset.path)
                .header("host", "127.0.0.1:1")
                .body(())
                .unwrap();
            let response = dashboard.answer(&request).expect("an answer");
            assert_eq!(response.status(), StatusCode::OK, "{}", asset.path);
            assert_eq!(response.headers()[header::CONTENT_TYPE], asset.content_type);
        }
    }
}
