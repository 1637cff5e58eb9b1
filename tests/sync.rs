//! SyncPods (bidirectional) end to end: acks, optimistic concurrency,
//! validation, subscriptions and half-close.
//!
//! These tests run on every store: memory, durable and etcd (a fresh
//! prefix of a real 3-member cluster). The embedded stores number changes
//! consecutively; where a test expects that, it says so
//! ([`Backend::assert_next`](common::Backend::assert_next)): etcd only
//! promises that versions strictly increase.

mod common;

use common::{Backend, Session, TestServer, pod, within};
use pod_service::contract::{Pod, PodRef, Subscribe, SyncRequest, sync_event, sync_request};
use pod_service::domain::PodSelector;
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use tonic::Code;

fn subscribe(namespace: &str, resource_version: u64) -> sync_request::Op {
    sync_request::Op::Subscribe(Subscribe {
        namespace: namespace.into(),
        resource_version,
        ..Subscribe::default()
    })
}

async fn every_op_gets_one_ack_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let start = server.store.version();
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    // Pipelined: all ops sent before any ack is read.
    let ops = [
        sync_request::Op::Apply(pod("", "web", "Running", 2)),
        sync_request::Op::Apply(pod("prod", "web", "", 1)),
        sync_request::Op::Delete(PodRef {
            namespace: "".into(),
            name: "web".into(),
        }),
        sync_request::Op::Delete(PodRef {
            namespace: "".into(),
            name: "web".into(),
        }),
    ];
    let mut ids = Vec::new();
    for op in ops {
        ids.push(session.send(op).await);
    }
    let acks = [
        session.next_ack().await,
        session.next_ack().await,
        session.next_ack().await,
        session.next_ack().await,
    ];
    assert_eq!(acks.iter().map(|a| a.id).collect::<Vec<_>>(), ids);

    let created = acks[0].pod.as_ref().unwrap();
    assert_eq!(
        (created.namespace.as_str(), acks[0].code),
        ("default", 0),
        "an empty namespace means default"
    );
    backend.assert_next(start, created.resource_version);
    let defaulted = acks[1].pod.as_ref().unwrap();
    assert_eq!(defaulted.status.as_str(), "Pending");
    backend.assert_next(created.resource_version, defaulted.resource_version);
    let tombstone = acks[2].pod.as_ref().unwrap();
    assert!(tombstone.deleted);
    backend.assert_next(defaulted.resource_version, tombstone.resource_version);
    assert_eq!(acks[3].code, Code::NotFound as u32);
    assert!(
        acks[3].message.contains("pod default/web not found"),
        "{}",
        acks[3].message
    );
    assert!(acks[3].pod.is_none());
}

async fn apply_with_a_stale_version_is_aborted_and_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    let v1 = session
        .apply(pod("a", "web", "Running", 1))
        .await
        .pod
        .unwrap();

    // Two writers read v1; the first update wins, the second conflicts.
    let first = session
        .apply(Pod {
            replicas: 2,
            resource_version: v1.resource_version,
            ..v1.clone()
        })
        .await;
    assert_eq!(first.code, 0);
    let v2 = first.pod.unwrap().resource_version;
    backend.assert_next(v1.resource_version, v2);
    let second = session
        .apply(Pod {
            replicas: 3,
            resource_version: v1.resource_version,
            ..v1.clone()
        })
        .await;
    assert_eq!(second.code, Code::Aborted as u32);
    assert!(
        second.message.contains(&format!(
            "resource_version {} expected, but the pod is at {v2}",
            v1.resource_version
        )),
        "{}",
        second.message
    );
    // A version on a pod that does not exist is a conflict too.
    let missing = session
        .apply(Pod {
            resource_version: 5,
            ..pod("a", "ghost", "Running", 1)
        })
        .await;
    assert_eq!(missing.code, Code::Aborted as u32);
    assert!(
        missing.message.contains("does not exist"),
        "{}",
        missing.message
    );

    let list = server.store.fresh(0).await.unwrap().list(&PodSelector::All);
    assert_eq!(list.version, v2, "the failed applies took no version");
    assert_eq!(list.pods.len(), 1);
    assert_eq!(list.pods[0].replicas, 2);
}

async fn invalid_ops_are_refused_with_the_field_and_rule(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    let start = server.store.version();
    let long = "a".repeat(64);
    let cases: Vec<(sync_request::Op, &str)> = vec![
        (
            sync_request::Op::Apply(pod("", "", "Running", 1)),
            "invalid apply.name: must be a DNS-1123 label",
        ),
        (
            sync_request::Op::Apply(pod("", "Web", "Running", 1)),
            "invalid apply.name",
        ),
        (
            sync_request::Op::Apply(pod("", "-web", "Running", 1)),
            "invalid apply.name",
        ),
        (
            sync_request::Op::Apply(pod("", "web-", "Running", 1)),
            "invalid apply.name",
        ),
        (
            sync_request::Op::Apply(pod("", "a/b", "Running", 1)),
            "invalid apply.name",
        ),
        (
            sync_request::Op::Apply(pod("", "a\0b", "Running", 1)),
            "invalid apply.name",
        ),
        (
            sync_request::Op::Apply(pod("", "wеb", "Running", 1)),
            "invalid apply.name",
        ), // Cyrillic e
        (
            sync_request::Op::Apply(pod("", &long, "Running", 1)),
            "invalid apply.name",
        ),
        (
            sync_request::Op::Apply(pod("Prod", "web", "Running", 1)),
            "invalid apply.namespace",
        ),
        (
            sync_request::Op::Apply(pod("a.b", "web", "Running", 1)),
            "invalid apply.namespace",
        ),
        (
            sync_request::Op::Apply(pod("", "web", "Running", -1)),
            "invalid apply.replicas: must be >= 0",
        ),
        (
            sync_request::Op::Apply(pod("", "web", "Run ning", 1)),
            "invalid apply.status",
        ),
        (
            sync_request::Op::Apply(Pod {
                deleted: true,
                ..pod("", "web", "Running", 1)
            }),
            "invalid apply.deleted",
        ),
        (
            sync_request::Op::Delete(PodRef {
                namespace: "".into(),
                name: "".into(),
            }),
            "invalid delete.name",
        ),
        (
            sync_request::Op::Delete(PodRef {
                namespace: "X".into(),
                name: "web".into(),
            }),
            "invalid delete.namespace",
        ),
        (subscribe("Nope", 0), "invalid subscribe.namespace"),
    ];
    for (op, expected) in cases {
        let ack = session.call(op).await;
        assert_eq!(
            ack.code,
            Code::InvalidArgument as u32,
            "{expected}: {}",
            ack.message
        );
        assert!(
            ack.message.starts_with(expected),
            "{expected}: {}",
            ack.message
        );
        assert!(ack.pod.is_none());
    }
    // A request without an op.
    session.send_raw(SyncRequest { id: 99, op: None }).await;
    let ack = session.next_ack().await;
    assert_eq!((ack.id, ack.code), (99, Code::InvalidArgument as u32));
    assert!(ack.message.starts_with("invalid op"), "{}", ack.message);

    assert_eq!(server.store.version(), start, "nothing changed");
    // The stream survived every failure.
    assert_eq!(session.apply(pod("", "web", "Running", 1)).await.code, 0);
}

/// Two sessions see each other's changes live, each its own change before
/// its ack, and changes made through other RPCs too.
async fn subscribed_sessions_see_every_clients_changes(backend: Backend) {
    let server = TestServer::start(backend).await;
    let v1 = server
        .apply("a", "existing", "Running", 1)
        .await
        .resource_version;
    let mut client = server.client().await;
    let mut alice = Session::open(&mut client).await;
    let mut bob = Session::open(&mut client).await;

    assert_eq!(alice.call(subscribe("", 0)).await.code, 0);
    let snapshot = alice.next_change().await;
    assert_eq!(
        (snapshot.name.as_str(), snapshot.resource_version),
        ("existing", v1)
    );
    assert_eq!(bob.call(subscribe("a", v1)).await.code, 0);

    // Bob applies: he sees his change, then his ack; Alice sees the change.
    bob.send(sync_request::Op::Apply(pod("a", "web", "Running", 3)))
        .await;
    let own = bob.next_change().await;
    let ack = bob.next_ack().await;
    let v2 = ack.pod.unwrap().resource_version;
    backend.assert_next(v1, v2);
    assert_eq!((own.name.as_str(), own.resource_version), ("web", v2));
    assert_eq!(alice.next_change().await.resource_version, v2);

    // Alice deletes, in a namespace Bob does not watch, then in his.
    alice
        .send(sync_request::Op::Apply(pod("b", "db", "Running", 1)))
        .await;
    alice
        .send(sync_request::Op::Delete(PodRef {
            namespace: "a".into(),
            name: "web".into(),
        }))
        .await;
    let applied = alice.next_change().await;
    let ack = alice.next_ack().await;
    assert_eq!(ack.code, 0);
    let v3 = ack.pod.unwrap().resource_version;
    backend.assert_next(v2, v3);
    assert_eq!(
        (applied.name.as_str(), applied.resource_version),
        ("db", v3)
    );
    let removed = alice.next_change().await;
    let ack = alice.next_ack().await;
    assert_eq!(ack.code, 0);
    let v4 = ack.pod.unwrap().resource_version;
    backend.assert_next(v3, v4);
    assert_eq!((removed.resource_version, removed.deleted), (v4, true));
    let deleted = bob.next_change().await;
    assert_eq!((deleted.resource_version, deleted.deleted), (v4, true));

    // A change through the store directly (any RPC) reaches both.
    let v5 = server
        .apply("a", "other", "Running", 1)
        .await
        .resource_version;
    backend.assert_next(v4, v5);
    assert_eq!(alice.next_change().await.resource_version, v5);
    assert_eq!(bob.next_change().await.resource_version, v5);
}

async fn subscription_errors_are_acks_and_the_session_goes_on(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        StoreConfig {
            history: 2,
            ..StoreConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    let mut versions = Vec::new();
    for replicas in 0..5 {
        versions.push(
            server
                .apply("a", "web", "Running", replicas)
                .await
                .resource_version,
        );
    }
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    // The history keeps the newest 2 changes: the 4th and the 5th.
    let too_old = session.call(subscribe("", versions[0])).await;
    assert_eq!(too_old.code, Code::OutOfRange as u32);
    assert!(
        too_old.message.contains("out of range"),
        "{}",
        too_old.message
    );

    assert_eq!(session.call(subscribe("", versions[3])).await.code, 0);
    assert_eq!(session.next_change().await.resource_version, versions[4]);
    let twice = session.call(subscribe("a", 0)).await;
    assert_eq!(twice.code, Code::FailedPrecondition as u32);
    assert!(
        twice.message.contains("already subscribed"),
        "{}",
        twice.message
    );
}

async fn half_close_gets_the_remaining_acks_then_ok(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    for i in 0..100 {
        session
            .send(sync_request::Op::Apply(pod(
                "a",
                &format!("p{i}"),
                "Running",
                1,
            )))
            .await;
    }
    session.half_close();
    let mut acks = 0;
    loop {
        match within("the end of the session", session.events.message()).await {
            Ok(Some(event)) => {
                let Some(sync_event::Event::Ack(ack)) = event.event else {
                    panic!("unsubscribed sessions get only acks");
                };
                acks += 1;
                assert_eq!((ack.id, ack.code), (acks, 0));
            }
            Ok(None) => break,
            Err(status) => panic!("the session must end with OK: {status:?}"),
        }
    }
    assert_eq!(acks, 100);
    assert_eq!(
        server
            .store
            .fresh(0)
            .await
            .unwrap()
            .list(&PodSelector::Namespace("a".into()))
            .pods
            .len(),
        100
    );
}

async fn shutdown_ends_a_subscribed_session_with_unavailable(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    assert_eq!(session.call(subscribe("", 0)).await.code, 0);
    server.stop().await;
    let status = within("the end", session.events.message())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
}

/// Every status kubectl prints is stored and listed as sent; a status that
/// would garble a terminal is refused, naming the field and the rule, and
/// changes nothing.
async fn kubectl_statuses_are_accepted_and_terminal_garbage_refused(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    let statuses = [
        "Init:0/1",
        "Init:CrashLoopBackOff",
        "PodInitializing",
        "ContainerCreating",
        "CreateContainerConfigError",
        "ImagePullBackOff",
        "OOMKilled",
        "Terminating",
        "Completed",
        "Evicted",
        "SchedulingGated",
    ];
    for (i, status) in statuses.iter().enumerate() {
        let ack = session
            .apply(pod("kubectl", &format!("p{i}"), status, 1))
            .await;
        assert_eq!(ack.code, 0, "{status}: {}", ack.message);
    }
    let list = client
        .list_pods(common::list_request("kubectl", 0))
        .await
        .unwrap()
        .into_inner();
    let mut listed: Vec<(String, String)> =
        list.pods.into_iter().map(|p| (p.name, p.status)).collect();
    listed.sort();
    let mut expected: Vec<(String, String)> = statuses
        .iter()
        .enumerate()
        .map(|(i, status)| (format!("p{i}"), status.to_string()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);

    let version = server.store.version();
    for bad in [
        "Run\nning",
        "\x1b[2J",
        "Tab\t",
        "Bell\x07",
        "Del\x7f",
        "Zero\u{200b}width",
        "Ünï",
    ] {
        let ack = session.apply(pod("kubectl", "bad", bad, 1)).await;
        assert_eq!(ack.code, Code::InvalidArgument as u32, "{bad:?}");
        assert!(
            ack.message.contains("invalid apply.status") && ack.message.contains("visible ASCII"),
            "{bad:?}: {}",
            ack.message
        );
    }
    assert_eq!(server.store.version(), version, "nothing changed");
}

/// Two `sync-pods` sessions raise different fields of one pod at once, 1,000
/// times each, naming only their own field: every edit of each survives
/// (a watcher sees both fields only ever rise), where a blind apply would
/// reset the other session's field.
async fn concurrent_partial_applies_lose_no_edit(backend: Backend) {
    use pod_service::client::sync::{self, Mode};
    const EDITS: usize = 1_000;
    let server = TestServer::start(backend).await;
    server.apply("race", "web", "S0", 0).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_pods(common::list_request("race", server.store.version()))
        .await
        .unwrap()
        .into_inner();
    let session = |script: String| {
        let url = server.url();
        tokio::spawn(async move {
            let config = pod_service::client::ClientConfig::new(url);
            let mut client = pod_service::client::connect(&config).await.unwrap();
            let mut output = Vec::new();
            let report = sync::run_session(
                &mut client,
                script.as_bytes(),
                &mut output,
                Mode::Script,
                |_| {},
            )
            .await
            .unwrap();
            (report, String::from_utf8(output).unwrap())
        })
    };
    let replicas: String = (1..=EDITS)
        .map(|i| format!("apply race/web replicas={i}\n"))
        .collect();
    let statuses: String = (1..=EDITS)
        .map(|i| format!("apply race/web status=S{i}\n"))
        .collect();
    let (a, b) = (session(replicas), session(statuses));
    let (a, b) = (
        within("session a", a).await.unwrap(),
        within("session b", b).await.unwrap(),
    );
    for (report, output) in [&a, &b] {
        let failed: Vec<&str> = output
            .lines()
            .filter(|line| line.starts_with("ack") && !line.contains(" OK "))
            .collect();
        assert_eq!((report.ops, report.failed), (EDITS as u64, 0), "{failed:?}");
    }
    eprintln!(
        "conflicts read again and retried: {} and {}",
        a.0.retries, b.0.retries
    );
    let (mut replicas, mut status) = (0, 0);
    while (replicas, status) != (EDITS as i32, EDITS) {
        let pod = common::within("a change", watch.message())
            .await
            .unwrap()
            .unwrap();
        let number: usize = pod.status[1..].parse().unwrap();
        assert!(pod.replicas >= replicas, "replicas went back: {pod:?}");
        assert!(number >= status, "status went back: {pod:?}");
        (replicas, status) = (pod.replicas, number);
    }
}

common::on_every_store!(
    concurrent_partial_applies_lose_no_edit,
    kubectl_statuses_are_accepted_and_terminal_garbage_refused,
    every_op_gets_one_ack_in_order,
    apply_with_a_stale_version_is_aborted_and_changes_nothing,
    invalid_ops_are_refused_with_the_field_and_rule,
    subscribed_sessions_see_every_clients_changes,
    subscription_errors_are_acks_and_the_session_goes_on,
    half_close_gets_the_remaining_acks_then_ok,
    shutdown_ends_a_subscribed_session_with_unavailable,
);
