//! TLS for the clients: which server certificates `--ca FILE` makes them
//! trust, the TLS connection tonic's channel runs over, and a one-line
//! reason, with what to do, for every handshake that fails.
//!
//! Why not tonic's own `ClientTlsConfig`: it verifies with plain webpki,
//! which refuses a CA certificate presented as the server's own
//! (`CaUsedAsEndEntity`). That is exactly what the common
//! `openssl req -x509 ...` command makes (OpenSSL marks it `CA:TRUE`), and
//! grpc-go, grpcio and our own server accept such a certificate. So the
//! clients trust, like grpc-go, either:
//!
//! - a certificate that is byte for byte one of those in `--ca`, valid now
//!   and issued for the name the client connects to (its subjectAltName, a
//!   DNS name or an IP address); or
//! - a chain that the normal webpki verification accepts with the
//!   certificates in `--ca` as roots.
//!
//! Nothing else is relaxed: a different self-signed certificate, a wrong
//! name or an expired certificate is refused on either path, and the
//! handshake's signatures are always verified with rustls' standard
//! functions. tonic's `ClientTlsConfig` takes no custom verifier, so the
//! connection is made here ([`TlsConnector`]) and handed to
//! `Endpoint::connect_with_connector`.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// The port of an `https://` address that names none.
const HTTPS_PORT: u16 = 443;

/// A client certificate and its private key, as PEM files (`--cert`,
/// `--key`): who the client is to a server that asks.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    /// The certificate, then any intermediates.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl ClientIdentity {
    fn read(&self) -> anyhow::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
        let cert = self.cert.display();
        let pem =
            std::fs::read(&self.cert).with_context(|| format!("cannot read --cert {cert}"))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| anyhow::anyhow!("--cert {cert} is not a valid PEM file"))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "--cert {cert} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)"
        );
        let key_path = self.key.display();
        let pem =
            std::fs::read(&self.key).with_context(|| format!("cannot read --key {key_path}"))?;
        let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
            anyhow::anyhow!(
                "--key {key_path} holds no private key (expected PEM: -----BEGIN PRIVATE KEY-----)"
            )
        })?;
        Ok((certs, key))
    }
}

/// The rustls settings of a client whose `--ca` is `ca_file`: ring, the
/// [`ExactOrChain`] verifier, ALPN `h2` (gRPC needs HTTP/2; tonic's
/// server offers nothing else), and the client's certificate if any.
pub(crate) fn client_config(
    ca_file: &Path,
    identity: Option<&ClientIdentity>,
) -> anyhow::Result<rustls::ClientConfig> {
    let named = || format!("--ca {}", ca_file.display());
    let pem = std::fs::read(ca_file)
        .with_context(|| format!("cannot read the CA file {}", ca_file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            let what = match err {
                pem::Error::MissingSectionEnd { .. } => "a section has no END line",
                pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
                pem::Error::Base64Decode(_) => "a certificate's base64 text is damaged",
                _ => "it cannot be read as PEM",
            };
            anyhow::anyhow!("{} is not a valid PEM file: {what}", named())
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "{} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)",
            named()
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = ExactOrChain::new(certs, Arc::clone(&provider))
        .map_err(|err| anyhow::anyhow!("{}: {err}", named()))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("rustls has no TLS version for the ring provider")?
        .dangerous() // our verifier, which is no weaker than webpki's (see above)
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (certs, key) = identity.read()?;
            builder.with_client_auth_cert(certs, key).map_err(|err| {
                anyhow::anyhow!(
                    "--cert {} and --key {} do not go together: {err}",
                    identity.cert.display(),
                    identity.key.display()
                )
            })?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Trusts a server certificate that is exactly one of `--ca`'s (and valid
/// now, for the name connected to), or one that chains to them.
#[derive(Debug)]
struct ExactOrChain {
    /// The certificates of `--ca`, as DER.
    exact: Vec<CertificateDer<'static>>,
    /// The normal verification, with those certificates as the roots.
    chain: Arc<WebPkiServerVerifier>,
    /// The ring provider's algorithms, for the handshake's signatures.
    algorithms: WebPkiSupportedAlgorithms,
}

impl ExactOrChain {
    fn new(
        certs: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for cert in &certs {
            roots
                .add(cert.clone())
                .map_err(|err| anyhow::anyhow!("a certificate in it cannot be used ({err})"))?;
        }
        let algorithms = provider.signature_verification_algorithms;
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .context("its certificates cannot be used as roots")?;
        Ok(ExactOrChain {
            exact: certs,
            chain,
            algorithms,
        })
    }

    /// The exact-match path: the certificate is one the user gave, so it
    /// needs no issuer; what is left to check is its name and its dates.
    fn verify_exact(
        end_entity: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let validity = cert.validity();
        let (not_before, not_after) = (
            unix_time(validity.not_before.timestamp()),
            unix_time(validity.not_after.timestamp()),
        );
        if now.as_secs() < not_before.as_secs() {
            return Err(CertificateError::NotValidYetContext {
                time: now,
                not_before,
            }
            .into());
        }
        if now.as_secs() > not_after.as_secs() {
            return Err(CertificateError::ExpiredContext {
                time: now,
                not_after,
            }
            .into());
        }
        Ok(())
    }
}

/// A certificate time as rustls' `UnixTime` (times before 1970 as 1970).
fn unix_time(timestamp: i64) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(timestamp.max(0).unsigned_abs()))
}

impl ServerCertVerifier for ExactOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.exact.iter().any(|cert| cert == end_entity) {
            Self::verify_exact(end_entity, server_name, now)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.chain
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Connects to the host and port of a URI over TCP, then TLS with the
/// URI's host as the server name: the connector of a tonic channel.
#[derive(Clone)]
pub(crate) struct TlsConnector {
    config: Arc<rustls::ClientConfig>,
    /// For the error messages.
    ca_file: PathBuf,
}

impl TlsConnector {
    pub(crate) fn new(config: rustls::ClientConfig, ca_file: &Path) -> Self {
        TlsConnector {
            config: Arc::new(config),
            ca_file: ca_file.to_path_buf(),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower::Service<http::Uri> for TlsConnector {
    type Response = TokioIo<TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(uri).await })
    }
}

impl TlsConnector {
    async fn connect(self, uri: http::Uri) -> Result<TokioIo<TlsStream<TcpStream>>, BoxError> {
        let host = uri
            .host()
            .ok_or_else(|| TlsError(format!("{uri} names no host")))?;
        // An IPv6 host comes bracketed in a URI, not in a server name.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(HTTPS_PORT);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| TlsError(format!("{host} is not a valid TLS server name")))?;
        // Said as tonic's own connector says it, for the same one line as
        // an http:// address gets.
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|err| io::Error::new(err.kind(), format!("tcp connect error: {err}")))?;
        // gRPC sends small messages that must not wait for more to fill a
        // segment (what tonic's own connector does with tcp_nodelay).
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
        match tls.connect(server_name, tcp).await {
            Ok(stream) => Ok(TokioIo::new(stream)),
            Err(err) => Err(Box::new(TlsError(describe(
                &err,
                &host,
                port,
                &self.ca_file,
            )))),
        }
    }
}

/// A failed TLS handshake, said in one line with what to do about it.
#[derive(Debug)]
struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// What went wrong in a handshake with `host:port`, and what to do.
fn describe(err: &io::Error, host: &str, port: u16, ca_file: &Path) -> String {
    let ca = ca_file.display();
    let plaintext = || {
        format!(
            "the server at {host}:{port} does not speak TLS: if it is a plaintext server, \
             use http://{host}:{port}"
        )
    };
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        // A server that closes the connection on a ClientHello (a plaintext
        // HTTP/2 server does, after a preface it does not understand).
        if err.kind() == io::ErrorKind::UnexpectedEof {
            return format!(
                "the server at {host}:{port} closed the connection during the TLS handshake: \
                 if it is a plaintext server, use http://{host}:{port}"
            );
        }
        return format!("TLS handshake with {host}:{port} failed: {err}");
    };
    match tls {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => unknown_issuer(&ca),
            CertificateError::Other(other) if is_ca_used_as_end_entity(other) => {
                unknown_issuer(&ca)
            }
            CertificateError::NotValidForNameContext { presented, .. } => {
                let names: Vec<&str> = presented.iter().map(|name| plain_name(name)).collect();
                let which = if names.len() == 1 {
                    "that name"
                } else {
                    "one of those names"
                };
                format!(
                    "the server's certificate is not for {host}: it is for {}; connect with \
                     {which}, or give the server a certificate for {host}",
                    names.join(", ")
                )
            }
            CertificateError::NotValidForName => format!(
                "the server's certificate is not for {host}, but for other names: connect \
                 with one of its names, or give the server a certificate for {host}"
            ),
            CertificateError::ExpiredContext { not_after, .. } => format!(
                "the server's certificate expired on {}: give the server a new one \
                 (e.g. pod-server --make-certs DIR)",
                date(*not_after)
            ),
            CertificateError::Expired => "the server's certificate has expired: give the server \
                 a new one (e.g. pod-server --make-certs DIR)"
                .into(),
            CertificateError::NotValidYetContext { not_before, .. } => format!(
                "the server's certificate is not valid before {}: check this machine's clock, \
                 or give the server a certificate valid now",
                date(*not_before)
            ),
            CertificateError::NotValidYet => "the server's certificate is not valid yet: check \
                 this machine's clock, or give the server a certificate valid now"
                .into(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "the server's certificate is not for TLS servers (its extended key usage): \
                 give the server a server certificate"
                    .into()
            }
            // Signed by a CA that has the name of the one in --ca, not by it.
            CertificateError::BadSignature => format!(
                "the server's certificate is not signed by the CA in --ca {ca} (only by one \
                 of the same name): give the CA that signed it (or the server's own \
                 certificate)"
            ),
            other => format!("the server's certificate is refused ({other:?}) with --ca {ca}"),
        },
        // Bytes that are no TLS record: a plaintext server answering.
        rustls::Error::InvalidMessage(_) => plaintext(),
        rustls::Error::NoApplicationProtocol => format!(
            "the server at {host}:{port} does not offer HTTP/2 over TLS (ALPN h2): is it a \
             gRPC server?"
        ),
        rustls::Error::AlertReceived(alert) => format!(
            "the server at {host}:{port} refused the TLS handshake (alert {alert:?}): see \
             its log"
        ),
        other => format!("TLS handshake with {host}:{port} failed: {other}"),
    }
}

/// A name as rustls presents it (`DnsName("example.com")`,
/// `IpAddress(10.0.0.1)`) as the user wrote it.
fn plain_name(presented: &str) -> &str {
    let unwrap = |prefix: &str, suffix: &str| {
        presented
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
    };
    unwrap("DnsName(\"", "\")")
        .or_else(|| unwrap("IpAddress(", ")"))
        .unwrap_or(presented)
}

fn unknown_issuer(ca: &impl fmt::Display) -> String {
    format!(
        "the server's certificate is not signed by the CA in --ca {ca}: give the CA that \
         signed it (or the server's own certificate)"
    )
}

/// webpki's refusal of a CA certificate as the server's own: here, one that
/// is not exactly in `--ca` (that case was accepted), so its issuer is
/// unknown just the same.
fn is_ca_used_as_end_entity(other: &rustls::OtherError) -> bool {
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// A certificate time as `2026-12-02 04:56 UTC`.
fn date(time: UnixTime) -> String {
    let seconds = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(at) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            at.year(),
            u8::from(at.month()),
            at.day(),
            at.hour(),
            at.minute()
        ),
        Err(_) => format!("{seconds} seconds after 1970"),
    }
}
