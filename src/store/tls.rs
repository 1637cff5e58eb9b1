//! TLS towards the store's backends (etcd, NATS): the CA that signs their
//! certificates and the client certificate this server shows them, read
//! and checked once, before anything connects.
//!
//! Why checked up front: a missing, damaged or mismatched file would
//! otherwise surface as a failed handshake on first use, far from the flag
//! that named it. Here each is one line naming the flag and the file.
//!
//! Without a CA file, the system's CAs are trusted (what etcdctl and the
//! NATS tools do with `https://` and `tls://` servers).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The files of one backend's TLS, and the flags that named them (for
/// the messages): `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`.
#[derive(Debug, Clone, Copy)]
pub struct TlsFiles<'a> {
    /// The CAs that sign the servers' certificates (else the system's).
    pub ca: Option<&'a Path>,
    /// The client certificate (chain), and its key: both or neither.
    pub cert: Option<&'a Path>,
    /// The key of `cert`.
    pub key: Option<&'a Path>,
    /// The flags of `ca`, `cert` and `key`, in that order.
    pub flags: [&'a str; 3],
}

/// One PEM file, read: its bytes, and where they came from.
#[derive(Clone)]
struct Pem {
    flag: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

/// TLS towards one backend: whom to trust, and what to show. Its `Debug`
/// names the files and never prints the key. Cheap to clone (shared).
#[derive(Clone)]
pub struct BackendTls(Arc<Settings>);

/// What a [`BackendTls`] holds.
struct Settings {
    /// The CAs that sign the servers' certificates; `None`: the system's.
    ca: Option<Pem>,
    /// The client certificate (chain) and its key, for servers that
    /// authenticate clients by certificate.
    identity: Option<(Pem, Pem)>,
    /// The rustls settings made from them (ring, like tonic's tls-ring).
    config: rustls::ClientConfig,
    /// The flags of the CA, the certificate and the key, for messages.
    flags: [String; 3],
}

impl fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.0;
        f.debug_struct("BackendTls")
            .field("ca", &settings.ca.as_ref().map(|pem| &pem.path))
            .field(
                "cert",
                &settings.identity.as_ref().map(|(cert, _)| &cert.path),
            )
            .field("key", &settings.identity.as_ref().map(|(_, key)| &key.path))
            .finish()
    }
}

impl BackendTls {
    /// Reads and checks the CA file (if any) and the client certificate
    /// and key (both or neither): each must be PEM holding what its flag
    /// says, and the key must be the certificate's. The error is one line
    /// naming the flag and the file.
    pub fn load(files: TlsFiles<'_>) -> Result<Self, String> {
        let [ca_flag, cert_flag, key_flag] = files.flags;
        let ca = files.ca.map(|path| read(ca_flag, path)).transpose()?;
        let roots = match &ca {
            Some(pem) => {
                let certs = certificates(pem, "CA certificate")?;
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs {
                    roots.add(cert).map_err(|err| {
                        format!(
                            "{} {}: a certificate in it cannot be a CA ({err})",
                            pem.flag,
                            pem.path.display()
                        )
                    })?;
                }
                roots
            }
            None => system_roots(ca_flag)?,
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|err| format!("rustls has no TLS version for the ring provider: {err}"))?
        .with_root_certificates(roots);
        let (identity, config) = match (files.cert, files.key) {
            (None, None) => (None, builder.with_no_client_auth()),
            (Some(_), None) => return Err(format!("{cert_flag} needs {key_flag} too")),
            (None, Some(_)) => return Err(format!("{key_flag} needs {cert_flag} too")),
            (Some(cert), Some(key)) => {
                let (cert, key) = (read(cert_flag, cert)?, read(key_flag, key)?);
                let chain = certificates(&cert, "certificate")?;
                let private = PrivateKeyDer::from_pem_slice(&key.bytes).map_err(|err| {
                    let what = match err {
                        pem::Error::NoItemsFound => "holds no private key",
                        _ => "is not a valid PEM private key",
                    };
                    format!("{key_flag} {} {what}", key.path.display())
                })?;
                let config =
                    builder
                        .with_client_auth_cert(chain, private)
                        .map_err(|err| match err {
                            rustls::Error::InconsistentKeys(_) => format!(
                                "{key_flag} {} is not the key of {cert_flag} {}",
                                key.path.display(),
                                cert.path.display()
                            ),
                            other => format!(
                                "{cert_flag} {} with {key_flag} {}: {other}",
                                cert.path.display(),
                                key.path.display()
                            ),
                        })?;
                (Some((cert, key)), config)
            }
        };
        Ok(BackendTls(Arc::new(Settings {
            ca,
            identity,
            config,
            flags: files.flags.map(str::to_owned),
        })))
    }

    /// Whether a client certificate is given.
    pub fn has_client_cert(&self) -> bool {
        self.0.identity.is_some()
    }

    /// Whether a CA file is given (else the system's CAs are trusted).
    pub fn has_ca(&self) -> bool {
        self.0.ca.is_some()
    }

    /// The rustls settings: these CAs, this client certificate.
    pub(crate) fn rustls_config(&self) -> rustls::ClientConfig {
        self.0.config.clone()
    }

    /// The same settings as tonic's, for a channel.
    pub(crate) fn tonic_config(&self) -> tonic::transport::ClientTlsConfig {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut config = ClientTlsConfig::new();
        config = match &self.0.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(&ca.bytes)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.0.identity {
            config = config.identity(Identity::from_pem(&cert.bytes, &key.bytes));
        }
        config
    }
}

impl BackendTls {
    /// What a handshake with `server` (`etcd`, `NATS`) that failed with
    /// `err` means, and what to do about it, in a few words.
    pub(crate) fn explain(&self, err: &rustls::Error, server: &str) -> String {
        use rustls::{AlertDescription as Alert, CertificateError as Cert};
        let [ca_flag, cert_flag, key_flag] = &self.0.flags;
        let trusted = match &self.0.ca {
            Some(ca) => format!("the CA in {ca_flag} {}", ca.path.display()),
            None => format!("any of the system's CAs (give its CA with {ca_flag})"),
        };
        match err {
            // TLS 1.3 says "certificate required"; a TLS 1.2 server says
            // "bad certificate" or "handshake failure" to a client that
            // sent none.
            rustls::Error::AlertReceived(
                Alert::CertificateRequired | Alert::BadCertificate | Alert::HandshakeFailure,
            ) if self.0.identity.is_none() => {
                format!("{server} requires a client certificate ({cert_flag}, {key_flag})")
            }
            rustls::Error::AlertReceived(
                alert @ (Alert::CertificateRequired
                | Alert::BadCertificate
                | Alert::UnknownCA
                | Alert::CertificateUnknown
                | Alert::CertificateExpired
                | Alert::CertificateRevoked
                | Alert::UnsupportedCertificate
                | Alert::HandshakeFailure),
            ) => {
                let cert = self
                    .0
                    .identity
                    .as_ref()
                    .map_or_else(String::new, |(cert, _)| cert.path.display().to_string());
                format!(
                    "{server} refused the client certificate {cert_flag} {cert} (alert \
                     {alert:?}): is it signed by a CA {server} trusts, and valid now?"
                )
            }
            rustls::Error::AlertReceived(alert) => {
                format!("{server} refused the handshake (alert {alert:?}): see its log")
            }
            rustls::Error::InvalidCertificate(cert) => match cert {
                Cert::UnknownIssuer | Cert::BadSignature => {
                    format!("{server}'s certificate is not signed by {trusted}")
                }
                Cert::NotValidForName | Cert::NotValidForNameContext { .. } => format!(
                    "{server}'s certificate is not for the host in its URL: connect with a \
                     name or address it is for"
                ),
                Cert::Expired | Cert::ExpiredContext { .. } => {
                    format!("{server}'s certificate has expired")
                }
                Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                    format!("{server}'s certificate is not valid yet: check this machine's clock")
                }
                Cert::InvalidPurpose | Cert::InvalidPurposeContext { .. } => {
                    format!("{server}'s certificate is not a TLS server's (its extended key usage)")
                }
                other => format!("{server}'s certificate is refused ({other:?})"),
            },
            rustls::Error::InvalidMessage(_) => {
                format!("{server} does not speak TLS at that address: use a plaintext URL")
            }
            other => other.to_string(),
        }
    }
}

/// The TLS error under `err`, if a handshake failed: tonic and async-nats
/// wrap it in their own errors and in I/O errors (whose `source` skips
/// the error they wrap, hence `get_ref`). An alert received after the
/// handshake (a TLS 1.3 server refusing the client's certificate) comes
/// as an I/O error holding only rustls' words, which are read back.
pub(crate) fn handshake_error(err: &(dyn std::error::Error + 'static)) -> Option<rustls::Error> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.clone());
        }
        if let Some(alert) = err
            .to_string()
            .strip_prefix("received fatal alert: ")
            .and_then(alert_named)
        {
            return Some(rustls::Error::AlertReceived(alert));
        }
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// The alert that rustls names so (its `Debug`), among those a refused
/// handshake brings.
fn alert_named(name: &str) -> Option<rustls::AlertDescription> {
    use rustls::AlertDescription as Alert;
    [
        Alert::CertificateRequired,
        Alert::BadCertificate,
        Alert::UnsupportedCertificate,
        Alert::CertificateRevoked,
        Alert::CertificateExpired,
        Alert::CertificateUnknown,
        Alert::UnknownCA,
        Alert::AccessDenied,
        Alert::HandshakeFailure,
        Alert::DecryptError,
        Alert::ProtocolVersion,
        Alert::InsufficientSecurity,
        Alert::InternalError,
        Alert::NoApplicationProtocol,
    ]
    .into_iter()
    .find(|alert| format!("{alert:?}") == name)
}

fn read(flag: &str, path: &Path) -> Result<Pem, String> {
    let bytes = std::fs::read(path)
        .map_err(|err| format!("cannot read {flag} {}: {err}", path.display()))?;
    Ok(Pem {
        flag: flag.to_owned(),
        path: path.to_owned(),
        bytes,
    })
}

/// The certificates of a PEM file, at least one.
fn certificates(pem: &Pem, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(&pem.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            let why = match err {
                pem::Error::MissingSectionEnd { .. } => "a section has no END line",
                pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
                pem::Error::Base64Decode(_) => "a certificate's base64 text is damaged",
                _ => "it cannot be read as PEM",
            };
            format!(
                "{} {} is not a valid PEM file: {why}",
                pem.flag,
                pem.path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "{} {} holds no {what} (expected PEM: -----BEGIN CERTIFICATE-----)",
            pem.flag,
            pem.path.display()
        ));
    }
    Ok(certs)
}

/// The system's CAs, for servers with certificates from a public or
/// company CA installed on this machine.
fn system_roots(ca_flag: &str) -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let why = found
            .errors
            .first()
            .map_or_else(String::new, |err| format!(" ({err})"));
        return Err(format!(
            "this system has no CA certificates to trust{why}: give the servers' CA with {ca_flag}"
        ));
    }
    Ok(roots)
}
