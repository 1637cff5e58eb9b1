//! The dashboard with a read-only identity (issue 26), in headless Chromium
//! (see `common/browser.rs`) against a real server that knows two tokens:
//! an admin's, and a viewer's whose policy lets it read every namespace
//! and write none.
//!
//! With the viewer's token the page reads as usual; an apply is refused
//! with the server's own message (the one a tonic client gets), the write
//! controls are disabled with the reason beside them, and nothing reached
//! the store (the admin's tonic client says so). Entering the admin's
//! token brings the controls back, and its apply goes through.

use crate::common::browser::Browser;
use crate::common::{Backend, TestServer, pod};
use pod_service::client::{Client, ClientConfig, connect};
use pod_service::contract::{
    ListPodsRequest, SyncAck, SyncRequest, Token, sync_event, sync_request,
};
use pod_service::sample;
use pod_service::server::ServerConfig;
use pod_service::server::access::{Policy, TokenUsers};

/// Kubernetes' `--token-auth-file` CSV: token, user, uid, groups.
const TOKENS: &str = "admin-token,admin,1,system:masters\nviewer-token,viewer,2,\"viewers\"\n";

/// Kubernetes ABAC, one policy per line: the admin may do anything; the
/// viewers may read everything and write nothing.
const POLICY: &str = concat!(
    r#"{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"user": "admin", "namespace": "*", "resource": "*"}}"#,
    "\n",
    r#"{"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy", "spec": {"group": "viewers", "namespace": "*", "resource": "*", "readonly": true}}"#,
    "\n",
);

/// The pod the page tries to create.
const NAMESPACE: &str = "staging";
const NAME: &str = "from-the-viewer";

fn rows_are_the_sample() -> String {
    let mut keys: Vec<String> = sample::SAMPLE_PODS
        .iter()
        .map(|(namespace, name, ..)| format!("{namespace}/{name}"))
        .collect();
    keys.sort();
    format!(
        "return JSON.stringify([...document.querySelectorAll('#pods tr[data-key]')]
           .filter(row => !row.classList.contains('deleted') && !row.hidden)
           .map(row => row.dataset.key)) === {:?}",
        serde_json::to_string(&keys).unwrap()
    )
}

/// True once every control of the apply form is `disabled` (or, with
/// `false`, none is), the rows' delete buttons are greyed or not, and the
/// notice is shown or not, to match.
fn writes_disabled(disabled: bool) -> String {
    format!(
        "const controls = [...document.querySelector('#apply-form').elements];
         return controls.length > 0
           && controls.every(control => control.disabled === {disabled})
           && document.querySelector('#pods').classList.contains('read-only') === {disabled}
           && document.querySelector('#write-access').hidden === {hidden}",
        hidden = !disabled
    )
}

fn outcome_is(outcome: &str) -> String {
    format!("return document.querySelector('#write-result')?.dataset.outcome === {outcome:?}")
}

const TOKEN_FORM_SHOWN: &str = "return document.querySelector('#token-form')?.hidden === false";

async fn client_with(server: &TestServer, token: &str) -> Client {
    let config = ClientConfig {
        token: Some(Token::new(token).unwrap()),
        ..ClientConfig::new(server.url())
    };
    connect(&config).await.expect("connect")
}

/// One SyncPods call of one op, as the page makes it: the code and the
/// message of its ack, or of the call if the server refused the call itself
/// (the page shows either).
async fn one_op(client: &mut Client, op: sync_request::Op) -> (tonic::Code, String) {
    let request = SyncRequest {
        id: 1,
        op: Some(op),
    };
    let call = async {
        let mut events = client
            .sync_pods(tokio_stream::iter([request]))
            .await?
            .into_inner();
        loop {
            match events.message().await?.map(|event| event.event) {
                Some(Some(sync_event::Event::Ack(ack))) => return Ok(ack),
                Some(_) => continue,
                None => return Err(tonic::Status::internal("the call ended without an ack")),
            }
        }
    };
    match crate::common::within("a SyncPods call", call).await {
        Ok(SyncAck { code, message, .. }) => (tonic::Code::from(code as i32), message),
        Err(status) => (status.code(), status.message().to_owned()),
    }
}

/// Whether the store has `NAMESPACE/NAME`, as the admin reads it.
async fn pod_exists(admin: &mut Client) -> bool {
    let list = admin
        .list_pods(ListPodsRequest {
            namespace: NAMESPACE.into(),
            ..ListPodsRequest::default()
        })
        .await
        .expect("the admin lists")
        .into_inner();
    list.pods.iter().any(|pod| pod.name == NAME)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_reads_and_its_refused_write_greys_the_writes_out() {
    let config = ServerConfig {
        token_users: Some(TokenUsers::parse(TOKENS).expect("the token file")),
        policy: Some(Policy::parse(POLICY).expect("the policy")),
        ..ServerConfig::default()
    };
    let server = TestServer::with_sample(Backend::Memory, config).await;
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser.wait_for("the token prompt", TOKEN_FORM_SHOWN).await;
    browser.set_value("#token-input", "viewer-token").await;
    browser.click("#token-submit").await;

    // Reading works as it does for anyone.
    browser
        .wait_for("the sample pods", &rows_are_the_sample())
        .await;
    browser
        .wait_for("writes allowed until refused", &writes_disabled(false))
        .await;

    // An apply: refused, with the server's message.
    browser.set_value("#apply-namespace", NAMESPACE).await;
    browser.set_value("#apply-name", NAME).await;
    browser.click("#apply-submit").await;
    browser.wait_for("the refusal", &outcome_is("error")).await;
    browser
        .wait_for("the writes greyed out", &writes_disabled(true))
        .await;
    let shown = browser.text("#write-result").await;
    let mut viewer = client_with(&server, "viewer-token").await;
    let (code, message) = one_op(
        &mut viewer,
        sync_request::Op::Apply(pod(NAMESPACE, NAME, "Running", 1)),
    )
    .await;
    assert_eq!(code, tonic::Code::PermissionDenied, "{message}");
    assert_eq!(shown, message, "the server's message, verbatim");
    assert!(shown.contains("viewer"), "it names the identity: {shown}");
    assert_eq!(
        browser.text("#write-access-reason").await,
        format!("read-only: the server refused writes for this token: {shown}")
    );

    // Nothing reached the store.
    let mut admin = client_with(&server, "admin-token").await;
    assert!(
        !pod_exists(&mut admin).await,
        "the viewer's apply was refused"
    );
    assert_eq!(server.store.version(), sample::SAMPLE_PODS.len() as u64);

    // Another token: the writes come back, and the admin's apply goes through.
    browser.click("#write-access-token").await;
    browser.wait_for("the token form", TOKEN_FORM_SHOWN).await;
    browser.set_value("#token-input", "admin-token").await;
    browser.click("#token-submit").await;
    browser
        .wait_for("the writes back", &writes_disabled(false))
        .await;
    browser.click("#apply-submit").await;
    browser.wait_for("the apply", &outcome_is("ok")).await;
    assert!(pod_exists(&mut admin).await, "the admin's apply landed");
    browser.close().await;
}
