//! Bookmarks: only for watchers that ask; one right after the current pods
//! (initial-events-end); one whenever a watch has been quiet for the
//! bookmark interval, at the newest version it is complete up to; and a
//! quiet watch that resumes from one keeps its place however much changed
//! elsewhere, where without them it must list again. In WatchPods and in
//! SyncPods subscriptions, on every store (memory, durable and etcd).

use crate::common;

use std::time::Duration;

use common::{Backend, Session, TestServer, within};
use pod_service::client::sync::{self, Mode};
use pod_service::client::{ClientConfig, PodWatch, WatchUpdate};
use pod_service::contract::{
    ListPodsRequest, Pod, PodServiceClient, Subscribe, bookmark, sync_event, sync_request,
};
use pod_service::domain::{ApplyPod, PodKey};
use pod_service::server::ServerConfig;
use pod_service::store::StoreConfig;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tonic::Streaming;
use tonic::transport::Channel;

/// Short enough that a test sees several bookmarks in well under a second.
const INTERVAL: Duration = Duration::from_millis(40);

async fn server(backend: Backend, history: usize) -> TestServer {
    TestServer::start_with(
        backend,
        StoreConfig {
            history,
            ..StoreConfig::default()
        },
        ServerConfig {
            bookmark_interval: INTERVAL,
            ..ServerConfig::default()
        },
    )
    .await
}

async fn watch(
    client: &mut PodServiceClient<Channel>,
    namespace: &str,
    resource_version: u64,
    allow_bookmarks: bool,
) -> Streaming<Pod> {
    client
        .watch_pods(ListPodsRequest {
            namespace: namespace.into(),
            resource_version,
            allow_bookmarks,
            ..ListPodsRequest::default()
        })
        .await
        .expect("watch_pods")
        .into_inner()
}

async fn next(stream: &mut Streaming<Pod>) -> Pod {
    within("a watch message", stream.message())
        .await
        .expect("the watch failed")
        .expect("the watch ended")
}

/// Applies `n` changes to pods of `namespace`, all submitted before any is
/// awaited (so a durable store commits them in a few batches).
/// How long the history of the quiet-watch scene is, and how many changes
/// happen elsewhere in it: twenty times the history. On etcd a tenth of
/// that (each change is a transaction through the cluster, about 1 ms).
fn scene(backend: Backend) -> (usize, usize) {
    match backend {
        Backend::Memory | Backend::Durable => (1_000, 20_000),
        Backend::Etcd | Backend::Nats | Backend::NatsTls => (100, 2_000),
    }
}

/// The scene of the quiet-watch failure: `--history 1000` and one pod,
/// `quiet/only`. Its watch buffer holds a whole burst of 20,000 changes:
/// these tests are about the history, not about a watcher falling behind.
async fn quiet_pod_server(backend: Backend) -> TestServer {
    let server = TestServer::start_with(
        backend,
        StoreConfig {
            history: scene(backend).0,
            watch_buffer: 32_768,
            ..StoreConfig::default()
        },
        ServerConfig {
            bookmark_interval: INTERVAL,
            ..ServerConfig::default()
        },
    )
    .await;
    server.apply("quiet", "only", "Running", 1).await;
    server
}

async fn changes(server: &TestServer, namespace: &str, n: usize) {
    let pending: Vec<_> = (0..n)
        .map(|i| {
            server.store.apply(ApplyPod {
                key: PodKey::new(namespace, format!("p{}", i % 20)),
                status: "Running".into(),
                replicas: i as i32,
                expected_version: None,
            })
        })
        .collect();
    for applied in pending {
        applied.await.expect("apply");
    }
}

/// With `allow_bookmarks`, the current pods are followed by a bookmark at
/// the version they reflect, and a quiet watch then gets bookmarks; without
/// it, never one: its next message is the next change.
async fn bookmarks_come_only_to_watchers_that_ask(backend: Backend) {
    let server = server(backend, 10_000).await;
    for name in ["a", "b", "c"] {
        server.apply("web", name, "Running", 1).await;
    }
    let version = server.store.version();
    let mut client = server.client().await;
    let mut asked = watch(&mut client, "web", 0, true).await;
    let mut plain = watch(&mut client, "web", 0, false).await;
    for stream in [&mut asked, &mut plain] {
        for name in ["a", "b", "c"] {
            let pod = next(stream).await;
            assert_eq!((pod.name.as_str(), pod.bookmark), (name, false));
        }
    }
    // Initial events end: exactly a bookmark, nothing else set.
    assert_eq!(next(&mut asked).await, bookmark(version));
    // Then, quiet, periodic bookmarks (the store has not moved).
    for _ in 0..3 {
        assert_eq!(next(&mut asked).await, bookmark(version));
    }
    // By now `plain` has been quiet for several intervals too: its next
    // message is the next change, not a bookmark.
    let change = server.apply("web", "a", "Pending", 2).await;
    assert_eq!(next(&mut plain).await, *change);
    let mut first_change = next(&mut asked).await;
    while first_change.bookmark {
        first_change = next(&mut asked).await;
    }
    assert_eq!(first_change, *change);
}

/// A watch of a quiet namespace gets bookmarks that follow the store's
/// version as other namespaces change, and never a change of theirs.
async fn a_quiet_watch_is_bookmarked_up_to_the_newest_version(backend: Backend) {
    let server = server(backend, 10_000).await;
    server.apply("quiet", "only", "Running", 1).await;
    let mut client = server.client().await;
    let mut stream = watch(&mut client, "quiet", server.store.version(), true).await;
    changes(&server, "busy", 500).await;
    let end = server.store.version();
    let mut last = 0;
    loop {
        let pod = next(&mut stream).await;
        assert!(pod.bookmark, "only bookmarks reach a quiet watch: {pod:?}");
        assert_eq!(
            pod,
            bookmark(pod.resource_version),
            "a bookmark sets nothing else"
        );
        assert!(pod.resource_version >= last, "bookmarks never go back");
        assert!(pod.resource_version <= end);
        last = pod.resource_version;
        if last == end {
            break;
        }
    }
}

/// The failure bookmarks exist for: with `--history 1000`, a client watch
/// of a quiet namespace while 20,000 changes happen elsewhere, then a
/// dropped connection. With bookmarks it resumes where it was (no
/// `OUT_OF_RANGE`, no re-list); without them it has to list again.
async fn a_quiet_watch_resumes_from_a_bookmark_without_a_relist(backend: Backend) {
    for bookmarks in [true, false] {
        let mut server = quiet_pod_server(backend).await;
        let client = pod_service::client::connect(&ClientConfig::new(server.url()))
            .await
            .expect("connect");
        let mut watch = PodWatch::new(client, "quiet");
        if !bookmarks {
            watch = watch.without_bookmarks();
        }
        let update = within("the list", watch.next()).await.unwrap();
        assert!(matches!(update, WatchUpdate::Listed(_)), "{update:?}");
        // The watch opens with the list.
        server.await_watchers(1).await;

        changes(&server, "busy", scene(backend).1).await;
        let end = server.store.version();
        if bookmarks {
            // The watch learns, with no change of its own, that it is complete up to `end`.
            loop {
                match within("a bookmark", watch.next()).await.unwrap() {
                    WatchUpdate::Progressed { version } if version == end => break,
                    WatchUpdate::Progressed { .. } => {}
                    other => panic!("a quiet watch got {other:?}"),
                }
            }
            assert_eq!(watch.version(), end);
        }

        server.restart().await;
        let update = within("the interruption", watch.next()).await.unwrap();
        assert!(
            matches!(update, WatchUpdate::Interrupted { .. }),
            "{update:?}"
        );
        let change = server.apply("quiet", "only", "Pending", 2).await;
        let mut relisted = false;
        loop {
            match within("the change after the restart", watch.next())
                .await
                .unwrap()
            {
                WatchUpdate::Changed(event) if event.pod == *change => break,
                WatchUpdate::Listed(events) => {
                    relisted = true;
                    if events.iter().any(|event| event.pod == *change) {
                        break;
                    }
                }
                WatchUpdate::Interrupted { reason, .. } => {
                    assert!(!reason.contains("OUT_OF_RANGE"), "{reason}")
                }
                WatchUpdate::Changed(_) | WatchUpdate::Progressed { .. } => {}
            }
        }
        assert_eq!(relisted, !bookmarks, "bookmarks: {bookmarks}");
    }
}

/// In a SyncPods session a bookmark arrives as a change: one after the
/// current pods of the subscription, then one per quiet interval.
async fn a_subscription_gets_bookmarks_as_changes(backend: Backend) {
    let server = server(backend, 10_000).await;
    server.apply("team", "web", "Running", 1).await;
    let version = server.store.version();
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    let ack = session
        .call(sync_request::Op::Subscribe(Subscribe {
            namespace: "team".into(),
            resource_version: 0,
            allow_bookmarks: true,
        }))
        .await;
    assert_eq!(ack.code, 0, "{}", ack.message);
    assert_eq!(session.next_change().await.name, "web");
    assert_eq!(session.next_change().await, bookmark(version));
    changes(&server, "elsewhere", 10).await;
    let end = server.store.version();
    loop {
        let change = session.next_change().await;
        assert!(change.bookmark, "{change:?}");
        if change.resource_version == end {
            break;
        }
    }
    // A session that did not ask gets none: its next event is its own ack.
    let mut plain = Session::open(&mut client).await;
    let ack = plain
        .call(sync_request::Op::Subscribe(Subscribe {
            namespace: "team".into(),
            resource_version: end,
            allow_bookmarks: false,
        }))
        .await;
    assert_eq!(ack.code, 0);
    // Quiet for several intervals, as the bookmarked session shows.
    for _ in 0..3 {
        assert!(session.next_change().await.bookmark);
    }
    let id = plain
        .send(sync_request::Op::Delete(pod_service::contract::PodRef {
            namespace: "team".into(),
            name: "web".into(),
        }))
        .await;
    let change = plain.next_change().await;
    assert!(change.deleted && !change.bookmark, "{change:?}");
    match plain.next_event().await {
        Some(sync_event::Event::Ack(ack)) => assert_eq!(ack.id, id),
        other => panic!("expected the ack, got {other:?}"),
    }
}

/// The failure of a quiet watch, for a subscribed `sync-pods` session: with
/// `--history 1000` and 20,000 changes elsewhere, it resumes after a restart
/// from its last bookmark, with no `OUT_OF_RANGE` and no re-list, and goes
/// on showing changes.
async fn a_subscribed_session_resumes_from_a_bookmark_without_a_relist(backend: Backend) {
    let mut server = quiet_pod_server(backend).await;
    let mut client =
        pod_service::client::connect_lazy(&ClientConfig::new(server.url())).expect("a client");
    let (mut commands, input) = tokio::io::duplex(1024);
    let (output, printed) = tokio::io::duplex(1 << 20);
    let (notices, mut noticed) = tokio::sync::mpsc::unbounded_channel();
    let session = tokio::spawn(async move {
        sync::run_session(
            &mut client,
            tokio::io::BufReader::new(input),
            output,
            Mode::Interactive,
            move |notice| {
                let _ = notices.send(notice);
            },
        )
        .await
    });
    let mut printed = tokio::io::BufReader::new(printed).lines();
    let mut next_line = async || {
        within("a line of the session", printed.next_line())
            .await
            .expect("the session's output")
            .expect("the session ended")
    };
    commands.write_all(b"watch quiet\n").await.unwrap();
    loop {
        if next_line().await.contains("quiet/only") {
            break;
        }
    }
    changes(&server, "busy", scene(backend).1).await;
    let end = server.store.version();
    // The session learns, from a bookmark, that it is complete up to `end`.
    loop {
        match within("a bookmark", noticed.recv()).await.unwrap() {
            sync::Notice::Progressed(version) if version == end => break,
            sync::Notice::Progressed(_) => {}
            sync::Notice::Note(note) => panic!("a quiet session noted {note:?}"),
        }
    }
    server.restart().await;
    loop {
        match within("the resume", noticed.recv()).await.unwrap() {
            sync::Notice::Note(note) if note.starts_with("resumed the watch") => {
                assert_eq!(note, format!("resumed the watch from version {end}"));
                break;
            }
            sync::Notice::Note(note) => assert!(
                note.starts_with("session interrupted") && !note.contains("OUT_OF_RANGE"),
                "{note}"
            ),
            sync::Notice::Progressed(_) => {}
        }
    }
    // Live again: the next change of the namespace shows, and nothing was
    // listed again on the way.
    server.apply("quiet", "only", "Pending", 2).await;
    let line = next_line().await;
    assert!(
        line.contains("quiet/only") && line.contains("Pending"),
        "{line}"
    );
    drop(commands);
    within("the session to end", session)
        .await
        .unwrap()
        .unwrap();
}

common::on_every_store!(
    bookmarks_come_only_to_watchers_that_ask,
    a_quiet_watch_is_bookmarked_up_to_the_newest_version,
    a_quiet_watch_resumes_from_a_bookmark_without_a_relist,
    a_subscription_gets_bookmarks_as_changes,
    a_subscribed_session_resumes_from_a_bookmark_without_a_relist,
);
