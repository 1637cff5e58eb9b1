//! `pod-server` replicas with their logs on a NATS that asks for more than
//! a connection: TLS with client certificates verified (`--nats-ca`,
//! `--nats-cert`, `--nats-key`, `tls://` URLs) on a real 3-node cluster,
//! and a user and password (`--nats-user`, `--nats-password-file`,
//! `POD_SERVER_NATS_PASSWORD`) on a node of its own (`common::nats_secure`).
//! The pods are in the shared plaintext etcd cluster. The log suites run
//! over TLS too, in tests/logs.rs (`nats_tls`). Every refusal is checked as
//! the binaries fail: one line on stderr, exit code 1, soon.

mod common;

use std::time::{Duration, Instant};

use common::etcd::{EtcdCluster, unique_prefix};
use common::nats::unique_stream;
use common::nats_secure::{self, PASSWORD, Password, SecuredNats, USER};
use common::process::{Output, ServerProcess, bin, run};
use common::{Session, pki, pod, within};
use pod_service::contract::{GetLogsRequest, LogChunk, PodServiceClient};
use pod_service::server::certs::MadeCerts;

/// How soon a replica that cannot use NATS must have said so.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The flags of the NATS TLS files of `made`, with its client certificate
/// if `client`.
fn tls_flags(made: &MadeCerts, client: bool) -> Vec<String> {
    let mut flags = vec!["--nats-ca".to_owned(), made.ca.display().to_string()];
    if client {
        flags.extend([
            "--nats-cert".to_owned(),
            made.client_cert.display().to_string(),
            "--nats-key".to_owned(),
            made.client_key.display().to_string(),
        ]);
    }
    flags
}

/// A replica of a fresh registry with its logs in a fresh stream at `urls`.
async fn replica(urls: &str, stream: &str, prefix: &str, flags: &[String]) -> ServerProcess {
    let mut args = vec!["--nats-url", urls, "--nats-stream", stream];
    args.extend(flags.iter().map(String::as_str));
    let endpoints = EtcdCluster::shared().endpoints_arg();
    ServerProcess::start_replica(&endpoints, prefix, "127.0.0.1:0", &args).await
}

/// Runs a replica that is expected to fail at start-up, with `env` set.
async fn fail_to_start(urls: &str, flags: &[String], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut command = bin("pod-server");
    command
        .args(["--addr", "127.0.0.1:0", "--etcd-endpoints"])
        .arg(EtcdCluster::shared().endpoints_arg())
        .args(["--etcd-prefix", &unique_prefix()])
        .args(["--nats-url", urls, "--nats-stream", &unique_stream()])
        .args(flags)
        .env_remove("RUST_LOG")
        .env_remove("POD_SERVER_NATS_PASSWORD")
        .envs(env.iter().copied());
    let began = Instant::now();
    let output = run(command, "pod-server to fail").await;
    (output, began.elapsed())
}

/// Uploads 100 numbered lines to production/web through `writer` (the pod
/// is created first) and reads them back through `reader`.
async fn upload_and_read_back(writer: &ServerProcess, reader: &ServerProcess) {
    let mut client = PodServiceClient::connect(writer.url()).await.unwrap();
    let ack = Session::open(&mut client)
        .await
        .apply(pod("production", "web", "Running", 1))
        .await;
    assert!(ack.pod.is_some(), "{ack:?}");
    let sent: Vec<String> = (1..=100).map(|i| format!("line {i}")).collect();
    let summary = client
        .upload_logs(tokio_stream::iter([LogChunk {
            namespace: "production".into(),
            pod: "web".into(),
            lines: sent.clone(),
            first_line: 0,
        }]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.lines, 100);
    let mut other = PodServiceClient::connect(reader.url()).await.unwrap();
    let mut stream = other
        .get_logs(GetLogsRequest {
            namespace: "production".into(),
            pod: "web".into(),
            ..GetLogsRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut read = Vec::new();
    while let Some(chunk) = within("log lines", stream.message()).await.unwrap() {
        read.extend(chunk.lines);
    }
    assert_eq!(
        read, sent,
        "the upload through one replica, read on the other"
    );
}

/// Two replicas with a client certificate share the logs over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_the_logs_over_tls_with_client_certificates() {
    let urls = nats_secure::shared_tls().urls_arg();
    assert!(urls.starts_with("tls://"), "{urls}");
    let (prefix, stream) = (unique_prefix(), unique_stream());
    let flags = tls_flags(pki::shared(), true);
    let a = replica(&urls, &stream, &prefix, &flags).await;
    let b = replica(&urls, &stream, &prefix, &flags).await;
    upload_and_read_back(&a, &b).await;
}

/// Without a client certificate, a replica fails at start-up, soon, in one
/// line that says what NATS wants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_client_certificate_start_up_fails_in_one_line() {
    let urls = nats_secure::shared_tls().urls_arg();
    let (output, took) = fail_to_start(&urls, &tls_flags(pki::shared(), false), &[]).await;
    output.assert_one_line_error(&format!(
        "error: cannot connect to NATS at {urls}: the TLS handshake failed: NATS requires a \
         client certificate (--nats-cert, --nats-key)"
    ));
    assert!(took < PROMPTLY, "took {took:?}");
}

/// A CA that did not sign the servers' certificates: one line naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_ca_is_refused_in_one_line() {
    let urls = nats_secure::shared_tls().urls_arg();
    let other = pki::another("other-ca");
    let mut flags = tls_flags(&other, false);
    flags.extend(tls_flags(pki::shared(), true).split_off(2));
    let (output, took) = fail_to_start(&urls, &flags, &[]).await;
    output.assert_one_line_error(&format!(
        "the TLS handshake failed: NATS's certificate is not signed by the CA in --nats-ca {}",
        other.ca.display()
    ));
    assert!(took < PROMPTLY, "took {took:?}");
}

/// A user and password, from a file or from the environment, work; a wrong
/// password, or none, fails at start-up in one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_and_password_work_and_a_wrong_one_fails_in_one_line() {
    let nats = SecuredNats::<Password>::start(1).await;
    let urls = nats.urls_arg();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let (prefix, stream) = (unique_prefix(), unique_stream());
    let from_file = [
        "--nats-user".to_owned(),
        USER.to_owned(),
        "--nats-password-file".to_owned(),
        file.display().to_string(),
    ];
    let a = replica(&urls, &stream, &prefix, &from_file).await;
    // From the environment.
    let b = ServerProcess::start_replica_with_env(
        &EtcdCluster::shared().endpoints_arg(),
        &prefix,
        "127.0.0.1:0",
        &[
            "--nats-url",
            &urls,
            "--nats-stream",
            &stream,
            "--nats-user",
            USER,
        ],
        &[("POD_SERVER_NATS_PASSWORD", PASSWORD)],
    )
    .await;
    upload_and_read_back(&a, &b).await;

    let user = ["--nats-user".to_owned(), USER.to_owned()];
    let wrong = [("POD_SERVER_NATS_PASSWORD", "not-the-password")];
    let (output, took) = fail_to_start(&urls, &user, &wrong).await;
    output.assert_one_line_error(&format!(
        "error: cannot connect to NATS at {urls}: NATS refused user \"{USER}\" with that \
         password (--nats-user, --nats-password-file or POD_SERVER_NATS_PASSWORD)"
    ));
    assert!(took < PROMPTLY, "took {took:?}");
    let (output, _) = fail_to_start(&urls, &[], &[]).await;
    output.assert_one_line_error("NATS requires credentials: give --nats-user");
    let (output, _) = fail_to_start(&urls, &user, &[]).await;
    output.assert_one_line_error(&format!(
        "--nats-user {USER} needs a password: --nats-password-file FILE, or the variable \
         POD_SERVER_NATS_PASSWORD"
    ));
}
