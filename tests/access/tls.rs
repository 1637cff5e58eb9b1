//! TLS between our clients and the server: the certificates people actually
//! make (the usual `openssl req -x509` one-liner, `pod-server --make-certs`)
//! are accepted, and what a weakened verifier would let through (another
//! self-signed certificate, a wrong name, an expired certificate) is
//! refused, each with one line saying what to do. Both the library's
//! `connect` and the real `list-pods` binary are checked.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{Backend, TestServer, list_request, within};
use pod_service::client::{self, ClientConfig};
use pod_service::server::{ServerConfig, certs};
use pod_service::store::StoreConfig;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tonic::transport::Identity;

/// The subject and subjectAltName of the openssl command.
const SUBJECT: &str = "/CN=localhost";
const SAN: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1";

/// Runs, in `dir`, the command from the issue (with `subject` and `san`
/// given as there): `cert.pem` (self-signed, `CA:TRUE`) and `key.pem`.
async fn openssl_cert(dir: &Path, subject: &str, san: &str) -> (PathBuf, PathBuf) {
    let args = [
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
        "-days", "30", "-subj", subject, "-addext", san,
    ];
    common::tools::require("openssl", "openssl");
    let run = tokio::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output();
    let output = match within("openssl", run).await {
        Ok(output) => output,
        Err(err) => panic!("cannot run openssl: {err}"),
    };
    assert!(
        output.status.success(),
        "openssl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (dir.join("cert.pem"), dir.join("key.pem"))
}

/// A fresh directory for one certificate.
fn subdir(root: &tempfile::TempDir, name: &str) -> PathBuf {
    let dir = root.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    dir
}

/// An in-process TLS server with one pod, presenting `cert` and `key` (PEM).
async fn tls_server(cert: impl AsRef<[u8]>, key: impl AsRef<[u8]>) -> TestServer {
    let config = ServerConfig {
        tls: Some(Identity::from_pem(cert, key)),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(Backend::Memory, StoreConfig::default(), config).await;
    server.apply("default", "web", "Running", 1).await;
    server
}

async fn tls_server_from_files(cert: &Path, key: &Path) -> TestServer {
    tls_server(std::fs::read(cert).unwrap(), std::fs::read(key).unwrap()).await
}

fn tls_client(addr: &str, ca: &Path) -> ClientConfig {
    ClientConfig {
        ca: Some(ca.to_path_buf()),
        ..ClientConfig::new(addr)
    }
}

/// Lists pods through the library and returns their names.
async fn list_with_library(addr: &str, ca: &Path) -> Vec<String> {
    let mut client = within("connect", client::connect(&tls_client(addr, ca)))
        .await
        .unwrap_or_else(|err| panic!("{addr} with --ca {}: {err:#}", ca.display()));
    let pods = within("list", client.list_pods(list_request("", 0)))
        .await
        .unwrap()
        .into_inner()
        .pods;
    pods.into_iter().map(|pod| pod.name).collect()
}

/// Runs the real `list-pods` with `--addr addr --ca ca`.
async fn list_pods_binary(addr: &str, ca: &Path) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_list-pods"))
        .args(["--addr", addr, "--ca"])
        .arg(ca)
        .env_remove("POD_SERVICE_ADDR")
        .env_remove("POD_SERVICE_CA")
        .env_remove("POD_SERVICE_TOKEN")
        .kill_on_drop(true)
        .output();
    within("list-pods", run).await.expect("run list-pods")
}

/// `list-pods` succeeds and prints the server's pod.
async fn assert_binary_lists(addr: &str, ca: &Path) {
    let output = list_pods_binary(addr, ca).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "list-pods failed: {stderr}");
    assert!(
        stdout
            .lines()
            .any(|line| line.contains("default") && line.contains("web")),
        "{stdout}"
    );
}

/// Both clients are refused: `connect` with an error ending in `reason`,
/// and `list-pods` with exactly one line on stderr, the connect error
/// ending in `reason`, and a failing exit code.
async fn assert_refused(addr: &str, ca: &Path, reason: &str) {
    match within("connect", client::connect(&tls_client(addr, ca))).await {
        Ok(_) => panic!("{addr} with --ca {} was accepted", ca.display()),
        Err(err) => {
            let chain = format!("{err:#}");
            assert!(chain.ends_with(reason), "{chain}\nexpected: {reason}");
        }
    }
    let output = list_pods_binary(addr, ca).await;
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("error: cannot connect to {addr}: transport error: {reason}\n")
    );
}

fn unknown_issuer(ca: &Path) -> String {
    format!(
        "the server's certificate is not signed by the CA in --ca {}: give the CA that \
         signed it (or the server's own certificate)",
        ca.display()
    )
}

#[tokio::test]
async fn the_openssl_one_liner_certificate_is_accepted_as_its_own_ca() {
    let root = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(&subdir(&root, "openssl"), SUBJECT, SAN).await;
    let server = tls_server_from_files(&cert, &key).await;
    let port = server.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let addr = format!("https://{host}:{port}");
        assert_eq!(list_with_library(&addr, &cert).await, ["web"]);
        assert_binary_lists(&addr, &cert).await;
    }
    // The lazy connection (watch-pods, sync-pods) goes the same way.
    let addr = format!("https://localhost:{port}");
    let mut lazy = client::connect_lazy(&tls_client(&addr, &cert)).unwrap();
    let pods = within("list", lazy.list_pods(list_request("", 0)))
        .await
        .unwrap()
        .into_inner()
        .pods;
    assert_eq!(pods.len(), 1);
}

#[tokio::test]
async fn another_self_signed_certificate_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(&subdir(&root, "served"), SUBJECT, SAN).await;
    let (other, _) = openssl_cert(&subdir(&root, "other"), SUBJECT, SAN).await;
    let server = tls_server_from_files(&cert, &key).await;
    let addr = format!("https://localhost:{}", server.addr.port());
    assert_refused(&addr, &other, &unknown_issuer(&other)).await;
}

#[tokio::test]
async fn an_exact_certificate_for_other_names_is_refused() {
    let root = tempfile::tempdir().unwrap();
    // Its subject's CN is localhost, but only the subjectAltName counts.
    let (cert, key) = openssl_cert(
        &subdir(&root, "elsewhere"),
        SUBJECT,
        "subjectAltName=DNS:elsewhere.test,IP:10.9.8.7",
    )
    .await;
    let server = tls_server_from_files(&cert, &key).await;
    let port = server.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let reason = format!(
            "the server's certificate is not for {host}: it is for elsewhere.test, 10.9.8.7; \
             connect with one of those names, or give the server a certificate for {host}"
        );
        assert_refused(&format!("https://{host}:{port}"), &cert, &reason).await;
    }
}

/// A self-signed CA certificate like openssl's, from rcgen with the given
/// validity, for localhost and 127.0.0.1: (cert PEM, key PEM).
fn self_signed_ca(
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> (String, String) {
    let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (params.not_before, params.not_after) = (not_before, not_after);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn an_exact_certificate_out_of_its_validity_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let cases = [
        (
            "expired",
            rcgen::date_time_ymd(2020, 1, 1),
            rcgen::date_time_ymd(2020, 2, 1),
            "the server's certificate expired on 2020-02-01 00:00 UTC: give the server a new \
             one (e.g. pod-server --make-certs DIR)",
        ),
        (
            "future",
            rcgen::date_time_ymd(2100, 1, 1),
            rcgen::date_time_ymd(2101, 1, 1),
            "the server's certificate is not valid before 2100-01-01 00:00 UTC: check this \
             machine's clock, or give the server a certificate valid now",
        ),
    ];
    for (name, not_before, not_after, reason) in cases {
        let (cert, key) = self_signed_ca(not_before, not_after);
        let ca = root.path().join(format!("{name}.pem"));
        std::fs::write(&ca, &cert).unwrap();
        let server = tls_server(cert, key).await;
        let addr = format!("https://localhost:{}", server.addr.port());
        assert_refused(&addr, &ca, reason).await;
    }
}

#[tokio::test]
async fn a_plaintext_server_at_an_https_address_is_named_as_such() {
    let root = tempfile::tempdir().unwrap();
    let (cert, _) = openssl_cert(&subdir(&root, "openssl"), SUBJECT, SAN).await;
    let server = TestServer::start(Backend::Memory).await;
    let at = format!("127.0.0.1:{}", server.addr.port());
    let reason = format!(
        "the server at {at} does not speak TLS: if it is a plaintext server, use http://{at}"
    );
    assert_refused(&format!("https://{at}"), &cert, &reason).await;
}

#[tokio::test]
async fn a_ca_file_without_a_certificate_is_named() {
    let root = tempfile::tempdir().unwrap();
    let empty = root.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let key_only = root.path().join("key.pem");
    std::fs::write(&key_only, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let addr = "https://localhost:1"; // never reached: the file is read first
    for ca in [empty, key_only] {
        let output = list_pods_binary(addr, &ca).await;
        assert!(!output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stderr),
            format!(
                "error: --ca {} holds no certificate (expected PEM: -----BEGIN CERTIFICATE-----)\n",
                ca.display()
            )
        );
    }
    let damaged = root.path().join("damaged.pem");
    std::fs::write(
        &damaged,
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let output = list_pods_binary(addr, &damaged).await;
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: --ca {} is not a valid PEM file: a certificate's base64 text is damaged\n",
            damaged.display()
        )
    );
}

#[tokio::test]
async fn make_certs_writes_a_ca_and_a_server_certificate_that_work() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("certs");
    let make = || {
        let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_pod-server"))
            .arg("--make-certs")
            .arg(&dir)
            .kill_on_drop(true)
            .output();
        within("pod-server --make-certs", run)
    };
    let output = make().await.expect("run pod-server");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let commands = [
        format!(
            "  pod-server --addr 127.0.0.1:50051 --tls-cert {} --tls-key {}",
            cert.display(),
            key.display()
        ),
        format!(
            "  list-pods --addr https://localhost:50051 --ca {}",
            ca.display()
        ),
    ];
    for command in commands {
        assert!(printed.lines().any(|line| line == command), "{printed}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    let server = tls_server_from_files(&cert, &key).await;
    let port = server.addr.port();
    for host in ["localhost", "127.0.0.1"] {
        let addr = format!("https://{host}:{port}");
        assert_eq!(list_with_library(&addr, &ca).await, ["web"]);
        assert_binary_lists(&addr, &ca).await;
    }

    // A second run would replace a key in use: it is refused, in one line.
    let output = make().await.expect("run pod-server");
    assert!(!output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "error: {} already exists: remove it or choose another directory\n",
            ca.display()
        )
    );
}

#[tokio::test]
async fn a_chain_to_another_ca_or_for_another_name_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let names = |names: &[&str]| {
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
    };
    let served = certs::make_certs(&root.path().join("served"), &names(&["localhost"])).unwrap();
    let other = certs::make_certs(&root.path().join("other"), &names(&["localhost"])).unwrap();
    let server = tls_server_from_files(&served.cert, &served.key).await;
    let port = server.addr.port();

    assert_eq!(
        list_with_library(&format!("https://localhost:{port}"), &served.ca).await,
        ["web"]
    );
    assert_refused(
        &format!("https://localhost:{port}"),
        &other.ca,
        &unknown_issuer(&other.ca),
    )
    .await;
    assert_refused(
        &format!("https://127.0.0.1:{port}"),
        &served.ca,
        "the server's certificate is not for 127.0.0.1: it is for localhost; connect with \
         that name, or give the server a certificate for 127.0.0.1",
    )
    .await;
}
