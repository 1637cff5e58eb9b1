//! Certificates for the tests of TLS towards the backends: one CA, a
//! server certificate for loopback (`localhost`, `127.0.0.1`) that the
//! etcd members and NATS nodes serve with, and a client certificate that
//! `pod-server` shows them, made by the server's own `--make-certs` code
//! ([`certs::make_certs`]) once per test binary.
//!
//! They live in a directory named after the test process under the
//! system's temporary directory, removed by the next test process that
//! makes one once this one is gone (as the clusters' directories are).

use std::path::PathBuf;
use std::sync::OnceLock;

use pod_service::server::certs::{self, MadeCerts};
use pod_service::store::{BackendTls, TlsFiles};

/// The test binary's certificates, made by the first call.
pub fn shared() -> &'static MadeCerts {
    static SHARED: OnceLock<MadeCerts> = OnceLock::new();
    SHARED.get_or_init(|| another("shared"))
}

/// A CA of its own and its certificates, in a directory named `name` of
/// this test process (a second CA, to be refused).
pub fn another(name: &str) -> MadeCerts {
    let dir = directory().join(name);
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    certs::make_certs(&dir, &names).unwrap_or_else(|e| panic!("make certificates: {e:#}"))
}

/// TLS towards a backend served with `made`'s server certificate: its CA,
/// and its client certificate if `client`.
pub fn backend_tls(made: &MadeCerts, client: bool, flags: [&str; 3]) -> BackendTls {
    BackendTls::load(TlsFiles {
        ca: Some(&made.ca),
        cert: client.then_some(made.client_cert.as_path()),
        key: client.then_some(made.client_key.as_path()),
        flags,
    })
    .expect("the test certificates load")
}

/// This process's directory, `<tmp>/pod-service-pki/<pid>`; those of
/// processes that are gone are removed first.
fn directory() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::temp_dir().join("pod-service-pki");
        if let Ok(entries) = std::fs::read_dir(&base) {
            for entry in entries.flatten() {
                let name = entry.file_name();
                let gone = name
                    .to_str()
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|pid| {
                        !std::path::Path::new("/proc").join(pid.to_string()).exists()
                    });
                if gone {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(std::process::id().to_string());
        // Left by an earlier process of the same pid: start afresh.
        let _ = std::fs::remove_dir_all(&dir);
        dir
    })
    .clone()
}
