//! Clients given several addresses (`--addr A,B`): the replicas of one
//! registry, here in-process servers sharing one store, as stateless
//! replicas of a cluster store do. A client uses the first that accepts a
//! connection and, when its server fails, moves on to the next, carrying on
//! from where it was: a watch from its version, a list from its token.
//!
//! A dead address is a loopback port that was bound and closed (refused at
//! once). A stopped [`TestServer`] is not dead: it keeps its port, so
//! connections wait in its backlog unanswered, as at a frozen server.

mod common;

use std::sync::Arc;

use common::process::{ClientProcess, bin, run};
use common::{Backend, TestServer, within};
use pod_service::client::{self, ClientConfig, Pages, Servers};
use pod_service::sample;
use pod_service::server::ServerConfig;
use pod_service::store::{Registry, StoreConfig};

/// A loopback address where nothing listens: bound, then closed.
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// Two servers of one store: a registry served by two replicas.
async fn replicas() -> (TestServer, TestServer) {
    let store = Arc::new(Registry::in_memory(StoreConfig::default()));
    let first = TestServer::start_on(Arc::clone(&store), ServerConfig::default()).await;
    let second = TestServer::start_on(store, ServerConfig::default()).await;
    (first, second)
}

const PRODUCTION_TABLE: &str = "\
NAMESPACE    NAME       STATUS    REPLICAS   VERSION
production   api        Running   3          3
production   postgres   Running   1          4
production   web        Running   4          5
";

#[tokio::test]
async fn list_pods_passes_over_a_dead_address() {
    let live = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let addrs = format!("{},{}", dead_url(), live.url());
    let mut command = bin("list-pods");
    command.args(["--addr", &addrs, "-n", "production"]);
    let output = run(command, "list-pods").await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.stdout, PRODUCTION_TABLE);
    assert!(output.stderr.is_empty(), "{}", output.stderr);

    // The environment takes the same list, spaces after commas allowed.
    let mut command = bin("list-pods");
    command.args(["-n", "production"]).env(
        "POD_SERVICE_ADDR",
        format!("{}, {}", dead_url(), live.url()),
    );
    let output = run(command, "list-pods").await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.stdout, PRODUCTION_TABLE);
}

/// A replica that accepts connections but never answers (a stopped server
/// keeps its port) is given `--timeout`, then the next one answers; when
/// none answers, the error names them all.
#[tokio::test]
async fn list_pods_passes_over_a_server_that_never_answers() {
    let mut frozen = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    frozen.stop().await;
    let live = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let addrs = format!("{},{}", frozen.url(), live.url());
    let mut command = bin("list-pods");
    command.args(["--addr", &addrs, "-n", "production", "--timeout", "1"]);
    let output = run(command, "list-pods").await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.stdout, PRODUCTION_TABLE);

    let mut also_frozen = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    also_frozen.stop().await;
    let addrs = format!("{},{}", frozen.url(), also_frozen.url());
    let mut command = bin("list-pods");
    command.args(["--addr", &addrs, "--timeout", "0.3"]);
    let output = run(command, "list-pods").await;
    output.assert_one_line_error(&format!(
        "no answer from any of {}, {}: the server did not answer within 0.3s",
        frozen.url(),
        also_frozen.url()
    ));
}

/// A list whose server dies between two pages goes on at the other
/// replica from the token it had: the pages are one list.
#[tokio::test]
async fn a_list_goes_on_at_another_replica_from_its_token() {
    let (first, second) = replicas().await;
    first.store.load(sample::sample()).await.unwrap();
    let config = ClientConfig {
        addrs: vec![first.url(), second.url()],
        ..ClientConfig::new(first.url())
    };
    let mut servers = Servers::connect(&config).await.unwrap();
    assert_eq!(servers.addr(), Some(first.url().as_str()));

    let mut first = Some(first);
    let mut pages = Pages::new("", 3);
    let mut names = Vec::new();
    while let Some(request) = pages.next_request() {
        if !names.is_empty()
            && let Some(mut dying) = first.take()
        {
            // Dead for good after the first page: stopped, and its port
            // closed as it is dropped.
            dying.stop().await;
        }
        let page = servers
            .call(async |client| {
                client::with_deadline(client::DEFAULT_TIMEOUT, request.clone(), |request| {
                    client.list_pods(request)
                })
                .await
            })
            .await
            .unwrap();
        pages.received(&page);
        names.extend(
            page.pods
                .iter()
                .map(|pod| format!("{}/{}", pod.namespace, pod.name)),
        );
    }
    assert_eq!(servers.addr(), Some(second.url().as_str()));
    let expected: Vec<String> = sample::SAMPLE_PODS
        .iter()
        .map(|(namespace, name, ..)| format!("{namespace}/{name}"))
        .collect();
    assert_eq!(names, expected);
    assert_eq!(pages.version(), sample::SAMPLE_PODS.len() as u64);
}

/// The watch of a registry served by two replicas: the first stops, and
/// the watch resumes at the second from its last version, printing every
/// later change exactly once; the second stops, and it goes round to the
/// first, restarted meanwhile.
#[tokio::test]
async fn watch_pods_moves_to_the_next_replica_and_misses_nothing() {
    let (mut first, mut second) = replicas().await;
    first.apply("production", "web", "Running", 1).await; // v1
    let addrs = format!("{},{}", first.url(), second.url());
    let mut watch = ClientProcess::of_keeping_stderr("watch-pods", &["--addr", &addrs]);
    assert_eq!(
        watch.next_words().await,
        [
            "EVENT",
            "NAMESPACE",
            "NAME",
            "STATUS",
            "REPLICAS",
            "VERSION"
        ]
    );
    assert_eq!(
        watch.next_words().await,
        ["ADDED", "production", "web", "Running", "1", "1"]
    );
    first.apply("production", "api", "Running", 2).await; // v2
    assert_eq!(
        watch.next_words().await,
        ["ADDED", "production", "api", "Running", "2", "2"]
    );

    first.stop().await;
    second.apply("production", "web", "Failed", 0).await; // v3
    second.delete("production", "api").await; // v4
    second.apply("production", "cache", "Running", 1).await; // v5
    assert_eq!(
        watch.next_words().await,
        ["MODIFIED", "production", "web", "Failed", "0", "3"]
    );
    assert_eq!(
        watch.next_words().await,
        ["DELETED", "production", "api", "-", "-", "4"]
    );
    assert_eq!(
        watch.next_words().await,
        ["ADDED", "production", "cache", "Running", "1", "5"]
    );

    // Round to the first: a watch that came back to a stopped server would
    // wait in its backlog and print nothing more.
    first.restart().await;
    second.stop().await;
    first.apply("production", "last", "Running", 1).await; // v6
    assert_eq!(
        watch.next_words().await,
        ["ADDED", "production", "last", "Running", "1", "6"]
    );
    let stderr = watch.kill().await;
    assert!(
        stderr.contains(&format!("resuming from version 2 at {} in", second.url())),
        "{stderr}"
    );
}

/// A subscribed `sync-pods` session whose server stops reconnects to the
/// other replica, resumes its watch from its last version, and its ops go
/// on there.
#[tokio::test]
async fn a_sync_session_moves_to_the_next_replica() {
    let (mut first, second) = replicas().await;
    first.apply("dev", "scratchpad", "Running", 1).await; // v1
    let addrs = format!("{},{}", first.url(), second.url());
    let mut session = ClientProcess::of("sync-pods", &["--addr", &addrs]);
    session.write("watch dev\n").await;
    assert_eq!(session.next_line().await, "ack 1 OK");
    assert_eq!(
        session.next_line().await,
        "change ADDED dev/scratchpad status=Running replicas=1 v1"
    );

    first.stop().await;
    second.apply("dev", "scratchpad", "Failed", 0).await; // v2
    assert_eq!(
        session.next_line().await,
        "change MODIFIED dev/scratchpad status=Failed replicas=0 v2"
    );
    session
        .write("apply dev/tool status=Running replicas=2\n")
        .await;
    assert_eq!(
        session.next_line().await,
        "change ADDED dev/tool status=Running replicas=2 v3"
    );
    assert_eq!(
        session.next_line().await,
        "ack 2 OK dev/tool status=Running replicas=2 v3"
    );
    session.write("quit\n").await;
    let status = within("sync-pods to exit", session.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// When no address answers, every client says so in one line naming each
/// one, and fails.
#[tokio::test]
async fn no_reachable_address_is_one_line_naming_them_all() {
    let (one, two) = (dead_url(), dead_url());
    let addrs = format!("{one},{two}");
    let expected = format!("cannot reach any of {one}, {two}: ");
    for (name, extra) in [
        ("list-pods", &[][..]),
        ("watch-pods", &[]),
        ("sync-pods", &[]),
        ("pod-logs", &["--pod", "web"]),
        ("upload-logs", &["--pod", "web"]),
    ] {
        let mut command = bin(name);
        command.args(["--addr", &addrs]).args(extra);
        let output = run(command, name).await;
        output.assert_one_line_error(&expected);
        assert!(
            output.stderr.contains("Connection refused"),
            "{}",
            output.stderr
        );
    }
}

/// Every address is checked before any is tried: a typo in the last fails
/// at once, though the first would answer.
#[tokio::test]
async fn every_address_is_checked_first() {
    let live = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let addrs = format!("{},not-a-url", live.url());
    let mut command = bin("list-pods");
    command.args(["--addr", &addrs]);
    let output = run(command, "list-pods").await;
    output.assert_one_line_error("invalid server address \"not-a-url\"");
    // An empty entry is no address either.
    let mut command = bin("list-pods");
    command.args(["--addr", &format!("{},", live.url())]);
    let output = run(command, "list-pods").await;
    output.assert_one_line_error("invalid server address \"\"");
}
