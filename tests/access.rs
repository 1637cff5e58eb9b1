//! Who may do what: every RPC and every SyncPods op, for every kind of
//! identity (an admin, a reader of every namespace, a writer limited to
//! `dev`, a group's policy, a user without a policy, the single token's
//! holder, a wrong token, no credentials), allowed or refused with the
//! right code; nothing refused changes the store. The RPCs are those of
//! the compiled descriptor: a new one fails here until it has its cases.
//! Client certificates and the files' errors are in `client_certs` (one
//! test binary for both: each binary is a link of the whole crate).

#[path = "access/client_certs.rs"]
mod client_certs;
mod common;
#[path = "access/tls.rs"]
mod tls;

use std::collections::BTreeSet;

use common::{Backend, TestServer, pod};
use pod_service::client::{self, Client, ClientConfig};
use pod_service::contract::{
    GetLogsRequest, ListPodsRequest, LogChunk, PodRef, Subscribe, SyncRequest, Token, sync_event,
    sync_request,
};
use pod_service::server::ServerConfig;
use pod_service::server::access::{API_VERSION, Policy, TokenUsers};
use pod_service::store::StoreConfig;
use tonic::Code;

const TOKENS: &str = "\
admin-t,admin,1
reader-t,reader,2
dev-t,dev-writer,3
ops-t,gina,4,\"ops,on-call\"
nobody-t,nobody,5
";

fn policies() -> String {
    [
        r#"{"user": "admin", "namespace": "*", "resource": "*"}"#,
        r#"{"user": "reader", "namespace": "*", "resource": "*", "readonly": true}"#,
        r#"{"user": "dev-writer", "namespace": "dev", "resource": "*"}"#,
        r#"{"group": "ops", "namespace": "prod", "resource": "pods"}"#,
    ]
    .map(|spec| format!(r#"{{"apiVersion": "{API_VERSION}", "kind": "Policy", "spec": {spec}}}"#))
    .join("\n")
}

/// The namespace a request names; `All` only where a request can be of
/// every namespace (lists, watches, subscribes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ns {
    Dev,
    Prod,
    All,
}

impl Ns {
    fn name(self) -> &'static str {
        match self {
            Ns::Dev => "dev",
            Ns::Prod => "prod",
            Ns::All => "",
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    List(Ns),
    Watch(Ns),
    GetLogs(Ns),
    Upload(Ns),
    Apply(Ns),
    Delete(Ns),
    Subscribe(Ns),
}

impl Op {
    fn all() -> Vec<Op> {
        let mut ops = Vec::new();
        for ns in [Ns::Dev, Ns::Prod] {
            ops.extend([
                Op::List(ns),
                Op::Watch(ns),
                Op::GetLogs(ns),
                Op::Upload(ns),
                Op::Apply(ns),
                Op::Delete(ns),
                Op::Subscribe(ns),
            ]);
        }
        ops.extend([
            Op::List(Ns::All),
            Op::Watch(Ns::All),
            Op::Subscribe(Ns::All),
        ]);
        ops
    }

    fn method(self) -> &'static str {
        match self {
            Op::List(_) => "ListPods",
            Op::Watch(_) => "WatchPods",
            Op::GetLogs(_) => "GetLogs",
            Op::Upload(_) => "UploadLogs",
            Op::Apply(_) | Op::Delete(_) | Op::Subscribe(_) => "SyncPods",
        }
    }

    fn ns(self) -> Ns {
        match self {
            Op::List(ns)
            | Op::Watch(ns)
            | Op::GetLogs(ns)
            | Op::Upload(ns)
            | Op::Apply(ns)
            | Op::Delete(ns)
            | Op::Subscribe(ns) => ns,
        }
    }

    fn writes(self) -> bool {
        matches!(self, Op::Upload(_) | Op::Apply(_) | Op::Delete(_))
    }

    fn of_logs(self) -> bool {
        matches!(self, Op::GetLogs(_) | Op::Upload(_))
    }

    /// What the refusal's message names: the action and the resource.
    fn refusal(self) -> String {
        let verb = if self.writes() { "write" } else { "read" };
        let resource = if self.of_logs() { "pods/log" } else { "pods" };
        let place = match self.ns() {
            Ns::All => "in every namespace".to_owned(),
            ns => format!("in namespace {:?}", ns.name()),
        };
        format!("may not {verb} {resource} {place}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied,
    Unauthenticated,
}

/// One kind of caller: its credential and what it may do.
struct Identity {
    user: &'static str,
    token: Option<&'static str>,
    may: fn(Op) -> Outcome,
}

fn allowed_if(yes: bool) -> Outcome {
    if yes {
        Outcome::Allowed
    } else {
        Outcome::Denied
    }
}

fn identities() -> [Identity; 8] {
    [
        Identity {
            user: "admin",
            token: Some("admin-t"),
            may: |_| Outcome::Allowed,
        },
        Identity {
            user: "token",
            token: Some("single-t"),
            may: |_| Outcome::Allowed,
        },
        Identity {
            user: "reader",
            token: Some("reader-t"),
            may: |op| allowed_if(!op.writes()),
        },
        Identity {
            user: "dev-writer",
            token: Some("dev-t"),
            may: |op| allowed_if(op.ns() == Ns::Dev),
        },
        Identity {
            user: "gina",
            token: Some("ops-t"),
            may: |op| allowed_if(op.ns() == Ns::Prod && !op.of_logs()),
        },
        Identity {
            user: "nobody",
            token: Some("nobody-t"),
            may: |_| Outcome::Denied,
        },
        Identity {
            user: "wrong",
            token: Some("wrong-t"),
            may: |_| Outcome::Unauthenticated,
        },
        Identity {
            user: "none",
            token: None,
            may: |_| Outcome::Unauthenticated,
        },
    ]
}

async fn server() -> TestServer {
    let config = ServerConfig {
        token: Some(Token::new("single-t").unwrap()),
        token_users: Some(TokenUsers::parse(TOKENS).unwrap()),
        policy: Some(Policy::parse(&policies()).unwrap()),
        ..ServerConfig::default()
    };
    let server = TestServer::start_with(Backend::Memory, StoreConfig::default(), config).await;
    let mut admin = connect(&server, Some("admin-t")).await;
    for ns in ["dev", "prod"] {
        server.apply(ns, "web", "Running", 1).await;
        for identity in identities() {
            server.apply(ns, &victim(identity.user), "Running", 1).await;
        }
        let chunk = LogChunk {
            namespace: ns.into(),
            pod: "web".into(),
            lines: vec!["seeded".into()],
            first_line: 0,
        };
        admin
            .upload_logs(tokio_stream::iter([chunk]))
            .await
            .unwrap();
    }
    server
}

fn victim(user: &str) -> String {
    format!("victim-{user}")
}

async fn connect(server: &TestServer, token: Option<&str>) -> Client {
    let mut config = ClientConfig::new(server.url());
    config.token = token.map(|token| Token::new(token).unwrap());
    client::connect(&config).await.unwrap()
}

/// Does `op` as `user`; the status it was refused with, if any.
async fn perform(client: &mut Client, user: &str, op: Op) -> Result<(), tonic::Status> {
    let namespace = op.ns().name().to_owned();
    let list = ListPodsRequest {
        namespace: namespace.clone(),
        ..ListPodsRequest::default()
    };
    match op {
        Op::List(_) => client.list_pods(list).await.map(drop),
        Op::Watch(_) => {
            let mut watch = client.watch_pods(list).await?.into_inner();
            // The snapshot's first pod: the watch really runs.
            watch
                .message()
                .await?
                .map(drop)
                .ok_or_else(|| tonic::Status::internal("empty"))
        }
        Op::GetLogs(_) => {
            let request = GetLogsRequest {
                namespace,
                pod: "web".into(),
                ..Default::default()
            };
            let mut logs = client.get_logs(request).await?.into_inner();
            let chunk = logs
                .message()
                .await?
                .ok_or_else(|| tonic::Status::internal("empty"))?;
            assert_eq!(chunk.lines[0], "seeded");
            Ok(())
        }
        Op::Upload(_) => {
            let chunk = LogChunk {
                namespace,
                pod: "web".into(),
                lines: vec![format!("from {user}")],
                first_line: 0,
            };
            client
                .upload_logs(tokio_stream::iter([chunk]))
                .await
                .map(drop)
        }
        Op::Apply(_) | Op::Delete(_) | Op::Subscribe(_) => {
            let op = match op {
                Op::Apply(_) => sync_request::Op::Apply(pod(&namespace, user, "Running", 1)),
                Op::Delete(_) => sync_request::Op::Delete(PodRef {
                    namespace,
                    name: victim(user),
                }),
                _ => sync_request::Op::Subscribe(Subscribe {
                    namespace,
                    ..Subscribe::default()
                }),
            };
            let request = SyncRequest {
                id: 1,
                op: Some(op),
            };
            let mut events = client
                .sync_pods(tokio_stream::iter([request]))
                .await?
                .into_inner();
            loop {
                match events.message().await?.and_then(|event| event.event) {
                    Some(sync_event::Event::Ack(ack)) if ack.code == 0 => return Ok(()),
                    Some(sync_event::Event::Ack(ack)) => {
                        return Err(tonic::Status::new(Code::from(ack.code as i32), ack.message));
                    }
                    Some(sync_event::Event::Change(_)) => {}
                    None => return Err(tonic::Status::internal("no ack")),
                }
            }
        }
    }
}

/// Every RPC of the descriptor has cases here.
#[test]
fn every_rpc_of_the_descriptor_is_covered() {
    let covered: BTreeSet<String> = Op::all().iter().map(|op| op.method().to_owned()).collect();
    let methods: BTreeSet<String> = common::pod_service_methods().into_iter().collect();
    assert_eq!(covered, methods, "an RPC without access cases");
}

#[tokio::test]
async fn every_rpc_and_op_for_every_identity() {
    let server = server().await;
    for identity in identities() {
        let mut client = connect(&server, identity.token).await;
        for op in Op::all() {
            let expected = (identity.may)(op);
            let before = server.store.version();
            let log_before = server
                .pod_log(op.ns().name(), "web")
                .await
                .map(|log| log.end_cursor());
            let result = perform(&mut client, identity.user, op).await;
            let what = format!("{} {op:?}", identity.user);
            match (expected, result) {
                (Outcome::Allowed, Ok(())) => {}
                (Outcome::Denied, Err(status)) => {
                    assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
                    let message = status.message();
                    let expected = format!("user {:?} {}", identity.user, op.refusal());
                    assert!(message.contains(&expected), "{what}: {message}");
                }
                (Outcome::Unauthenticated, Err(status)) => {
                    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
                }
                (expected, got) => panic!("{what}: expected {expected:?}, got {got:?}"),
            }
            if expected != Outcome::Allowed {
                assert_eq!(server.store.version(), before, "{what} changed the pods");
                let log_after = server
                    .pod_log(op.ns().name(), "web")
                    .await
                    .map(|log| log.end_cursor());
                assert_eq!(log_after.ok(), log_before.ok(), "{what} changed the log");
            }
        }
    }
}

/// A refused op is acknowledged with code 7 and the session goes on.
#[tokio::test]
async fn a_refused_op_gets_its_own_ack_and_the_session_goes_on() {
    let server = server().await;
    let mut client = connect(&server, Some("dev-t")).await;
    let ops = [
        sync_request::Op::Apply(pod("prod", "sneaky", "Running", 1)),
        sync_request::Op::Subscribe(Subscribe::default()),
        sync_request::Op::Apply(pod("dev", "fine", "Running", 1)),
    ];
    let requests = ops
        .into_iter()
        .zip(1..)
        .map(|(op, id)| SyncRequest { id, op: Some(op) });
    let mut events = client
        .sync_pods(tokio_stream::iter(requests.collect::<Vec<_>>()))
        .await
        .unwrap()
        .into_inner();
    let mut acks = Vec::new();
    while let Some(event) = events.message().await.unwrap() {
        if let Some(sync_event::Event::Ack(ack)) = event.event {
            acks.push((ack.id, ack.code, ack.message));
        }
    }
    let codes: Vec<(u64, u32)> = acks.iter().map(|(id, code, _)| (*id, *code)).collect();
    assert_eq!(codes, [(1, 7), (2, 7), (3, 0)], "{acks:?}");
    assert!(
        acks[0]
            .2
            .contains("user \"dev-writer\" may not write pods in namespace \"prod\"")
    );
    assert!(
        acks[1].2.contains("may not read pods in every namespace"),
        "{}",
        acks[1].2
    );
    let pods = server
        .store
        .fresh(0)
        .await
        .unwrap()
        .list(&pod_service::domain::PodSelector::All);
    let names: Vec<&str> = pods.pods.iter().map(|p| p.name.as_str()).collect();
    assert!(
        names.contains(&"fine") && !names.contains(&"sneaky"),
        "{names:?}"
    );
}

/// An upload is checked at its first chunk, and every chunk names its pod.
#[tokio::test]
async fn an_upload_is_of_the_pod_its_first_chunk_names() {
    let server = server().await;
    let mut client = connect(&server, Some("dev-t")).await;
    let chunk = |namespace: &str, pod: &str| LogChunk {
        namespace: namespace.into(),
        pod: pod.into(),
        lines: vec!["line".into()],
        first_line: 0,
    };
    let before = server.pod_log("prod", "web").await.unwrap().end_cursor();
    let refused = client
        .upload_logs(tokio_stream::iter([
            chunk("dev", "web"),
            chunk("prod", "web"),
        ]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("must name the pod of the first chunk (dev/web)")
    );
    assert!(
        refused.message().contains("1 lines"),
        "{}",
        refused.message()
    );
    assert_eq!(
        server.pod_log("prod", "web").await.unwrap().end_cursor(),
        before
    );
}
