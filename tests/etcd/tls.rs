//! `pod-server` replicas over an etcd that serves TLS and requires client
//! certificates (`--client-cert-auth`), as kube-apiserver's etcd runs:
//! `--etcd-cafile`, `--etcd-certfile`, `--etcd-keyfile`, on a real
//! 3-member cluster (`common::etcd_tls`) with the certificates of
//! `pod-server --make-certs` (`common::pki`). Every refusal is checked
//! as the binaries fail: one line on stderr, exit code 1, soon.

use crate::common;

use std::time::{Duration, Instant};

use common::etcd::unique_prefix;
use common::etcd_tls::EtcdTlsCluster;
use common::process::{ClientProcess, Output, ServerProcess, bin, run};
use common::replicas::AppliedVersion;
use common::{Session, pki, pod};
use pod_service::contract::PodServiceClient;
use pod_service::server::certs::MadeCerts;

/// How soon a replica that cannot use etcd must have said so: the etcd
/// client's retries over 3 members are bounded well below this.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The flags of the etcd TLS files of `made`, with its client
/// certificate if `client`.
fn tls_flags(made: &MadeCerts, client: bool) -> Vec<String> {
    let mut flags = vec!["--etcd-cafile".to_owned(), made.ca.display().to_string()];
    if client {
        flags.extend([
            "--etcd-certfile".to_owned(),
            made.client_cert.display().to_string(),
            "--etcd-keyfile".to_owned(),
            made.client_key.display().to_string(),
        ]);
    }
    flags
}

/// Runs `pod-server` on `endpoints` with `flags` until it exits (it is
/// expected to fail), and how long that took.
async fn fail_to_start(endpoints: &str, flags: &[String]) -> (Output, Duration) {
    let mut command = bin("pod-server");
    command
        .args(["--addr", "127.0.0.1:0", "--etcd-endpoints", endpoints])
        .args(["--etcd-prefix", &unique_prefix()])
        .args(flags)
        .env_remove("RUST_LOG");
    let began = Instant::now();
    let output = run(command, "pod-server to fail").await;
    (output, began.elapsed())
}

/// Two replicas with the client certificate serve one registry over TLS:
/// a write through one is seen by a watch on, and a list through, the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_a_registry_over_mutual_tls() {
    let cluster = EtcdTlsCluster::shared();
    let prefix = unique_prefix();
    let flags = tls_flags(pki::shared(), true);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let endpoints = cluster.endpoints_arg();
    let a = ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &flags).await;
    let b = ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &flags).await;
    let mut watch = ClientProcess::of("watch-pods", &["--addr", &b.url()]);
    assert!(watch.next_line().await.starts_with("EVENT"), "the header");
    let mut writer = PodServiceClient::connect(a.url()).await.unwrap();
    let version = Session::open(&mut writer)
        .await
        .applied_version(pod("production", "web", "Running", 3))
        .await;
    let words: Vec<String> = watch.next_words().await;
    assert_eq!(
        words,
        [
            "ADDED",
            "production",
            "web",
            "Running",
            "3",
            &version.to_string()
        ],
        "the write through A, on B's watch"
    );
    let listed = run(
        {
            let mut list = bin("list-pods");
            list.args(["--addr", &b.url(), "-o", "json"]);
            list
        },
        "list-pods",
    )
    .await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(
        listed.stdout.contains("\"web\"") && listed.stdout.contains("production"),
        "{}",
        listed.stdout
    );
}

/// Without a client certificate, a replica fails at start-up, soon, with
/// one line that says what etcd wants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_start_up_fails_in_one_line() {
    let cluster = EtcdTlsCluster::shared();
    let endpoints = cluster.endpoints_arg();
    let (output, took) = fail_to_start(&endpoints, &tls_flags(pki::shared(), false)).await;
    output.assert_one_line_error(&format!(
        "cannot reach etcd at {}: the TLS handshake failed: etcd requires a client \
         certificate (--etcd-certfile, --etcd-keyfile)",
        cluster.endpoints().join(", ")
    ));
    assert!(took < PROMPTLY, "took {took:?}");
}

/// A CA that did not sign etcd's certificate is refused in one line that
/// names the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_is_refused_in_one_line() {
    let cluster = EtcdTlsCluster::shared();
    let other = pki::another("other-ca");
    let mut flags = tls_flags(&other, false);
    // The right client certificate, the wrong CA.
    flags.extend(tls_flags(pki::shared(), true).split_off(2));
    let (output, took) = fail_to_start(&cluster.endpoints_arg(), &flags).await;
    output.assert_one_line_error(&format!(
        "the TLS handshake failed: etcd's certificate is not signed by the CA in \
         --etcd-cafile {}",
        other.ca.display()
    ));
    assert!(took < PROMPTLY, "took {took:?}");
}

/// A client certificate of another CA is refused by etcd: one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_etcd_does_not_trust_is_one_line() {
    let cluster = EtcdTlsCluster::shared();
    let other = pki::another("other-client");
    let mut flags = tls_flags(pki::shared(), false);
    flags.extend(tls_flags(&other, true).split_off(2));
    let (output, took) = fail_to_start(&cluster.endpoints_arg(), &flags).await;
    output.assert_one_line_error(&format!(
        "etcd refused the client certificate --etcd-certfile {}",
        other.client_cert.display()
    ));
    assert!(took < PROMPTLY, "took {took:?}");
}

/// The TLS files are read and checked before anything connects (the
/// endpoints here have nothing listening): each mistake is one line that
/// names the flag and the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_files_and_schemes_are_checked_before_connecting() {
    let made = pki::shared();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a certificate\n").unwrap();
    let https = "https://127.0.0.1:1";
    let path = |p: &std::path::Path| p.display().to_string();
    let cases: Vec<(&str, Vec<String>, String)> = vec![
        (
            https,
            vec!["--etcd-cafile".into(), path(&missing)],
            format!("cannot read --etcd-cafile {}", missing.display()),
        ),
        (
            https,
            vec!["--etcd-cafile".into(), path(&notes)],
            format!(
                "--etcd-cafile {} holds no CA certificate (expected PEM",
                notes.display()
            ),
        ),
        (
            https,
            vec![
                "--etcd-certfile".into(),
                path(&made.client_cert),
                "--etcd-keyfile".into(),
                path(&made.key),
            ],
            format!(
                "--etcd-keyfile {} is not the key of --etcd-certfile {}",
                made.key.display(),
                made.client_cert.display()
            ),
        ),
        (
            "http://127.0.0.1:1",
            tls_flags(made, true),
            "are for https:// endpoints, and --etcd-endpoints http://127.0.0.1:1 is \
             plaintext"
                .into(),
        ),
        (
            "https://127.0.0.1:1,http://127.0.0.1:2",
            tls_flags(made, true),
            "mixes http:// and https:// URLs".into(),
        ),
    ];
    for (endpoints, flags, message) in cases {
        let (output, took) = fail_to_start(endpoints, &flags).await;
        output.assert_one_line_error(&message);
        assert!(took < PROMPTLY, "took {took:?}");
    }
}
