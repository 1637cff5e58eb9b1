//! `pod-server --make-certs DIR`: a small CA and a server certificate it
//! signed, for serving over TLS without knowing openssl.
//!
//! It writes `ca.pem` (what clients give as `--ca`), `server.pem` and
//! `server-key.pem` (the server's `--tls-cert` and `--tls-key`; the key
//! readable by its owner only), and `client.pem` and `client-key.pem`, a
//! client certificate for backends that check their clients' (etcd's
//! `--client-cert-auth`, NATS's `verify: true`: `--etcd-certfile`,
//! `--nats-cert`). The CA's own key is never written: nothing else can
//! ever be signed by this CA, so trusting `ca.pem` trusts these two
//! certificates and no other.
//!
//! The server certificate is a proper end-entity certificate (not a CA,
//! extended key usage serverAuth), so every TLS client accepts it the
//! usual way, with the CA as its root.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The names a server certificate is for unless told otherwise: loopback,
/// by name and by address.
pub const DEFAULT_CERT_NAMES: &str = "localhost,127.0.0.1";

/// How long the certificates are valid, from now.
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The files [`make_certs`] wrote.
#[derive(Debug, Clone)]
pub struct MadeCerts {
    /// The CA certificate: the clients' `--ca`.
    pub ca: PathBuf,
    /// The server's certificate: `--tls-cert`.
    pub cert: PathBuf,
    /// The server's private key (mode 0600): `--tls-key`.
    pub key: PathBuf,
    /// A client certificate (extended key usage clientAuth), for the
    /// backends: `--etcd-certfile`, `--nats-cert`.
    pub client_cert: PathBuf,
    /// Its private key (mode 0600): `--etcd-keyfile`, `--nats-key`.
    pub client_key: PathBuf,
    /// The names the server certificate is for.
    pub names: Vec<String>,
}

impl MadeCerts {
    /// The commands that start a server with these files on `addr` and a
    /// client that trusts it, for the user to copy.
    pub fn instructions(&self, addr: SocketAddr) -> String {
        let host = self
            .names
            .first()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
                _ => name.clone(),
            })
            .unwrap_or_else(|| "localhost".into());
        let mut text = String::new();
        let _ = writeln!(
            text,
            "wrote {}, {} and {} (for {}, valid for a year)",
            self.ca.display(),
            self.cert.display(),
            self.key.display(),
            self.names.join(", ")
        );
        let _ = writeln!(
            text,
            "and a client certificate of the same CA, {} and {}, for etcd and NATS that \
             check clients' certificates (--etcd-certfile/--etcd-keyfile, \
             --nats-cert/--nats-key)",
            self.client_cert.display(),
            self.client_key.display()
        );
        let _ = writeln!(text, "start the server:");
        let _ = writeln!(
            text,
            "  pod-server --addr {addr} --tls-cert {} --tls-key {}",
            self.cert.display(),
            self.key.display()
        );
        let _ = writeln!(text, "then connect a client:");
        let _ = writeln!(
            text,
            "  list-pods --addr https://{host}:{} --ca {}",
            addr.port(),
            self.ca.display()
        );
        text
    }
}

/// Makes a CA and a server certificate for `names` (DNS names or IP
/// addresses), and writes them into `dir` (created if missing). Refuses to
/// overwrite any of the files, so that a key in use is never replaced by
/// accident.
pub fn make_certs(dir: &Path, names: &[String]) -> anyhow::Result<MadeCerts> {
    let names: Vec<String> = names
        .iter()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect();
    if names.is_empty() {
        anyhow::bail!("--cert-names needs at least one name (e.g. {DEFAULT_CERT_NAMES})");
    }
    let made = MadeCerts {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server-key.pem"),
        client_cert: dir.join("client.pem"),
        client_key: dir.join("client-key.pem"),
        names,
    };
    let files = [
        &made.ca,
        &made.cert,
        &made.key,
        &made.client_cert,
        &made.client_key,
    ];
    for path in files {
        if path.exists() {
            anyhow::bail!(
                "{} already exists: remove it or choose another directory",
                path.display()
            );
        }
    }
    let pems = generate(&made.names)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_new(&made.key, pems.server_key.as_bytes(), 0o600)?;
    write_new(&made.cert, pems.server.as_bytes(), 0o644)?;
    write_new(&made.client_key, pems.client_key.as_bytes(), 0o600)?;
    write_new(&made.client_cert, pems.client.as_bytes(), 0o644)?;
    write_new(&made.ca, pems.ca.as_bytes(), 0o644)?;
    Ok(made)
}

/// What [`generate`] makes, as PEM.
struct Pems {
    ca: String,
    server: String,
    server_key: String,
    client: String,
    client_key: String,
}

/// The CA certificate, the server certificate and its key, a client
/// certificate and its key.
fn generate(names: &[String]) -> anyhow::Result<Pems> {
    let now = time::OffsetDateTime::now_utc();
    // A day's slack before now, for clients whose clock is a little behind.
    let not_before = now - Duration::from_secs(24 * 60 * 60);
    let not_after = now + VALIDITY;

    let mut ca = CertificateParams::default();
    // A name of its own: clients find a certificate's issuer by name, and
    // two CAs of one name (from two runs) would make a certificate of the
    // other look forged rather than signed by an unknown CA.
    let ca_name = format!("pod-server CA {:016x}", fastrand::u64(..));
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    // It signs end-entity certificates and nothing below them.
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_key = KeyPair::generate().context("cannot generate the CA's key")?;
    let ca_cert = ca
        .self_signed(&ca_key)
        .context("cannot make the CA certificate")?;

    let mut server = CertificateParams::default();
    server
        .distinguished_name
        .push(DnType::CommonName, names[0].as_str());
    server.subject_alt_names =
        names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => name.as_str().try_into().map(SanType::DnsName).map_err(|_| {
                    anyhow::anyhow!("{name:?} is neither a DNS name nor an IP address")
                }),
            })
            .collect::<anyhow::Result<_>>()?;
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.use_authority_key_identifier_extension = true;
    (server.not_before, server.not_after) = (not_before, not_after);
    let server_key = KeyPair::generate().context("cannot generate the server's key")?;
    let issuer = Issuer::new(ca, ca_key);
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .context("cannot make the server certificate")?;

    // Named for what it is; the backends check its signature and purpose.
    let mut client = CertificateParams::default();
    client
        .distinguished_name
        .push(DnType::CommonName, "pod-server");
    client.is_ca = IsCa::ExplicitNoCa;
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client.use_authority_key_identifier_extension = true;
    (client.not_before, client.not_after) = (not_before, not_after);
    let client_key = KeyPair::generate().context("cannot generate the client's key")?;
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .context("cannot make the client certificate")?;

    Ok(Pems {
        ca: ca_cert.pem(),
        server: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

/// Writes a file that must not exist yet, with the given mode from the
/// start (a key is never readable by others, not even for a moment).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}
