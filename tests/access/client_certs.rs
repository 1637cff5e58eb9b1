//! Client certificates (`--client-ca-file`) and the access files' errors:
//! a certificate the CA signed is its CN's user in its O's groups; one of
//! another CA, or expired, is refused at the handshake; a bad token or
//! policy file refuses start-up naming the line.

use std::path::Path;
use std::process::Command;

use crate::common::certs::{TestCa, Validity};
use crate::common::{Backend, TestServer, pod};
use pod_service::client::{self, ClientConfig, ClientIdentity};
use pod_service::contract::{ListPodsRequest, SyncRequest, Token, sync_event, sync_request};
use pod_service::server::ServerConfig;
use pod_service::server::access::{API_VERSION, Policy};
use pod_service::store::StoreConfig;
use tonic::Code;
use tonic::transport::{Certificate, Identity};

/// A TLS server whose callers are its client CA's certificates; the group
/// `dev-team` may do anything in `dev`.
async fn server(dir: &Path) -> (TestServer, TestCa) {
    let ca = TestCa::new(dir, "clients");
    let server_cert = ca.server("server");
    let policy = format!(
        r#"{{"apiVersion": "{API_VERSION}", "kind": "Policy", "spec": {{"group": "dev-team", "namespace": "dev", "resource": "*"}}}}"#
    );
    let config = ServerConfig {
        tls: Some(Identity::from_pem(
            &server_cert.cert_pem,
            &server_cert.key_pem,
        )),
        client_ca: Some(Certificate::from_pem(&ca.pem)),
        policy: Some(Policy::parse(&policy).unwrap()),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(Backend::Memory, StoreConfig::default(), config).await;
    (server, ca)
}

fn https(server: &TestServer) -> String {
    format!("https://127.0.0.1:{}", server.addr.port())
}

fn client_config(server: &TestServer, ca: &TestCa, cert: Option<(&Path, &Path)>) -> ClientConfig {
    ClientConfig {
        ca: Some(ca.file.clone()),
        identity: cert.map(|(cert, key)| ClientIdentity {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        ..ClientConfig::new(https(server))
    }
}

/// Applies `namespace/name` in a one-op session: the ack's code and message.
async fn apply(
    config: &ClientConfig,
    namespace: &str,
    name: &str,
) -> Result<(u32, String), tonic::Status> {
    let mut client = client::connect(config)
        .await
        .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
    let op = SyncRequest {
        id: 1,
        op: Some(sync_request::Op::Apply(pod(namespace, name, "Running", 1))),
    };
    let mut events = client
        .sync_pods(tokio_stream::iter([op]))
        .await?
        .into_inner();
    while let Some(event) = events.message().await? {
        if let Some(sync_event::Event::Ack(ack)) = event.event {
            return Ok((ack.code, ack.message));
        }
    }
    Err(tonic::Status::internal("no ack"))
}

#[tokio::test]
async fn a_certificate_of_the_ca_is_its_cn_in_its_os_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = server(dir.path()).await;
    let jane = ca.client("jane", "jane", &["qa", "dev-team"]);
    let config = client_config(&server, &ca, Some((&jane.cert, &jane.key)));

    assert_eq!(
        apply(&config, "dev", "web").await.unwrap(),
        (0, String::new())
    );
    let (code, message) = apply(&config, "prod", "web").await.unwrap();
    assert_eq!(code, Code::PermissionDenied as u32);
    assert!(
        message.starts_with("user \"jane\" may not write pods in namespace \"prod\""),
        "{message}"
    );

    // As in Kubernetes, the certificate wins over a token sent beside it.
    let with_token = ClientConfig {
        token: Some(Token::new("not-a-token").unwrap()),
        ..config.clone()
    };
    assert_eq!(apply(&with_token, "dev", "api").await.unwrap().0, 0);

    // No certificate and no token: the connection is fine, the call is not.
    let anonymous = client_config(&server, &ca, None);
    let mut client = client::connect(&anonymous).await.unwrap();
    let refused = client
        .list_pods(ListPodsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    assert!(
        refused.message().contains("a client certificate"),
        "{}",
        refused.message()
    );

    let pods = server
        .store
        .fresh(0)
        .await
        .unwrap()
        .list(&pod_service::domain::PodSelector::All);
    let keys: Vec<String> = pods
        .pods
        .iter()
        .map(|p| format!("{}/{}", p.namespace, p.name))
        .collect();
    assert_eq!(keys, ["dev/api", "dev/web"]);
}

#[tokio::test]
async fn a_certificate_of_another_ca_or_expired_fails_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = server(dir.path()).await;
    let other = TestCa::new(dir.path(), "other");
    let stranger = other.client("stranger", "jane", &["dev-team"]);
    let expired = ca.client_valid("expired", "jane", &["dev-team"], Validity::Expired);
    for (what, cert) in [("another CA's", &stranger), ("an expired", &expired)] {
        let config = client_config(&server, &ca, Some((&cert.cert, &cert.key)));
        let refused = apply(&config, "dev", "web").await.unwrap_err();
        // Refused by TLS, before any gRPC: the server verifies the
        // certificate after the client's last handshake message and drops
        // the connection instead of answering (no status from the server).
        assert!(
            matches!(refused.code(), Code::Unavailable | Code::Unknown),
            "{what} certificate: {refused:?}"
        );
        let message = with_causes(&refused);
        assert!(
            message.contains("peer closed connection without sending TLS close_notify"),
            "{what} certificate: {message}"
        );
    }
    assert_eq!(server.store.version(), 0, "nothing was written");
}

/// A status's message and the errors under it (the TLS alert is a cause
/// of tonic's "transport error").
fn with_causes(status: &tonic::Status) -> String {
    let mut text = status.message().to_owned();
    let mut cause = std::error::Error::source(status);
    while let Some(err) = cause {
        text.push_str(&format!(": {err}"));
        cause = err.source();
    }
    text
}

fn pod_server(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pod-server"))
        .args(["--in-memory", "--addr", "127.0.0.1:0"])
        .args(args)
        .env_remove("POD_SERVICE_TOKEN")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn bad_access_files_refuse_start_up_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "t1,alice,1\n\nt2,bob\n").unwrap();
    let (ok, stderr) = pod_server(&["--token-auth-file".as_ref(), tokens.as_os_str()]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "token file {}: line 3: has 2 fields",
            tokens.display()
        )),
        "{stderr}"
    );

    let policy = dir.path().join("policy.jsonl");
    let line = |spec: &str| {
        format!(r#"{{"apiVersion": "{API_VERSION}", "kind": "Policy", "spec": {spec}}}"#)
    };
    std::fs::write(
        &policy,
        [
            line(r#"{"user": "a", "namespace": "*", "resource": "pods"}"#),
            line(r#"{"user": "b", "namespace": "*", "resource": "deployments"}"#),
        ]
        .join("\n"),
    )
    .unwrap();
    let (ok, stderr) = pod_server(&["--authorization-policy-file".as_ref(), policy.as_os_str()]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "policy file {}: line 2: resource \"deployments\" is not one this server has",
            policy.display()
        )),
        "{stderr}"
    );
}

/// The clients' `--cert` and `--key`: `list-pods` as jane, allowed `dev`
/// and refused every namespace with one line.
// Two workers: the binary is waited for on one, the server runs on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pods_takes_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (server, ca) = server(dir.path()).await;
    server.apply("dev", "web", "Running", 1).await;
    let jane = ca.client("jane", "jane", &["dev-team"]);
    let list = |namespace: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_list-pods"))
            .arg("--addr")
            .arg(https(&server))
            .arg("--ca")
            .arg(&ca.file)
            .arg("--cert")
            .arg(&jane.cert)
            .arg("--key")
            .arg(&jane.key)
            .args(namespace)
            .env_remove("POD_SERVICE_TOKEN")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = list(&["-n", "dev"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("web"), "{stdout}");
    let (ok, _, stderr) = list(&[]);
    assert!(!ok);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("user \"jane\" may not read pods in every namespace"),
        "{stderr}"
    );
}
