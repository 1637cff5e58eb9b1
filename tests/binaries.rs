//! Each binary run as a process, as a user runs it.
//!
//! These tests run on the embedded stores, which number changes
//! consecutively; where a test expects exact versions (`+ 1` between two
//! changes), it tests that property of the embedded stores: a cluster
//! store only promises that versions strictly increase.

mod common;

use std::process::Stdio;

use common::process::{ClientProcess, Output, bin, run_with_input};
use common::{Backend, Session, TestServer, pod, within};
use pod_service::sample;
use pod_service::server::ServerConfig;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Runs a binary to completion with `stdin` as its input.
async fn run(name: &str, args: &[&str], stdin: &str) -> Output {
    let mut command = bin(name);
    command.args(args);
    run_with_input(command, name, stdin).await
}

#[tokio::test]
async fn pod_server_serves_the_sample_and_stops_on_sigterm() {
    let data = tempfile::tempdir().unwrap();
    let mut server = bin("pod-server")
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = BufReader::new(server.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = within("the listening line", log.next_line())
            .await
            .unwrap()
            .expect("server exited");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let url = format!("http://{addr}");
    let output = run("list-pods", &["--addr", &url], "").await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.stdout.lines().count(), 1 + sample::SAMPLE_PODS.len());

    let pid = server.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = within("the server to exit", server.wait()).await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn pod_server_reports_a_busy_port_in_one_line() {
    let server = TestServer::start(Backend::Memory).await;
    let output = run(
        "pod-server",
        &["--addr", &server.addr.to_string(), "--in-memory"],
        "",
    )
    .await;
    output.assert_one_line_error(&format!("cannot listen on {}", server.addr));
}

#[tokio::test]
async fn list_pods_prints_an_aligned_table() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let output = run(
        "list-pods",
        &["--addr", &server.url(), "-n", "production"],
        "",
    )
    .await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(
        output.stdout,
        "NAMESPACE    NAME       STATUS    REPLICAS   VERSION\n\
         production   api        Running   3          3\n\
         production   postgres   Running   1          4\n\
         production   web        Running   4          5\n"
    );
}

#[tokio::test]
async fn clients_report_errors_in_one_line() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let output = run("list-pods", &["--addr", &server.url(), "-n", "Bad"], "").await;
    output.assert_one_line_error("server answered INVALID_ARGUMENT: invalid namespace");

    // A port with nothing listening.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let url = format!("http://{closed}");
    for name in ["list-pods", "watch-pods", "sync-pods"] {
        let output = run(name, &["--addr", &url], "").await;
        output.assert_one_line_error(&format!("cannot connect to {url}"));
    }
    for name in ["upload-logs", "pod-logs"] {
        let output = run(name, &["--addr", &url, "--pod", "web"], "").await;
        output.assert_one_line_error(&format!("cannot connect to {url}"));
    }
    let output = run("list-pods", &["--addr", "not a url"], "").await;
    output.assert_one_line_error("invalid server address");

    let output = run("pod-logs", &["--addr", &server.url(), "--pod", "ghost"], "").await;
    output.assert_one_line_error("NOT_FOUND: pod default/ghost not found");
}

#[tokio::test]
async fn watch_pods_prints_the_pods_then_each_change_across_a_restart() {
    let mut server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let mut watch = ClientProcess::of("watch-pods", &["--addr", &server.url(), "-n", "production"]);
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
    for name in ["api", "postgres", "web"] {
        assert_eq!(watch.next_words().await[..3], ["ADDED", "production", name]);
    }

    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    session.apply(pod("production", "web", "Failed", 0)).await; // v8
    session.apply(pod("staging", "web", "Failed", 0)).await; // v9: not watched
    session.delete("production", "api").await; // v10
    assert_eq!(
        watch.next_words().await,
        ["MODIFIED", "production", "web", "Failed", "0", "8"]
    );
    assert_eq!(
        watch.next_words().await,
        ["DELETED", "production", "api", "-", "-", "10"]
    );

    // Down and up again; changes made meanwhile are printed once each.
    server.stop().await;
    server.apply("production", "cache", "Running", 1).await; // v11
    server.apply("production", "web", "Running", 2).await; // v12
    server.restart().await;
    assert_eq!(
        watch.next_words().await,
        ["ADDED", "production", "cache", "Running", "1", "11"]
    );
    assert_eq!(
        watch.next_words().await,
        ["MODIFIED", "production", "web", "Running", "2", "12"]
    );
    server.apply("production", "last", "Running", 1).await; // v13: nothing repeated before it
    assert_eq!(
        watch.next_words().await[..3],
        ["ADDED", "production", "last"]
    );
}

#[tokio::test]
async fn upload_logs_streams_files_and_stdin() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.log");
    let mut content = Vec::new();
    for i in 0..10_000 {
        content.extend_from_slice(format!("line {i}\r\n").as_bytes());
    }
    content.extend_from_slice(b"bad \xff byte\n");
    content.extend_from_slice(b"no newline at the end");
    std::fs::write(&path, &content).unwrap();

    let output = run(
        "upload-logs",
        &[
            "--addr",
            &server.url(),
            "-n",
            "production",
            "--pod",
            "web",
            path.to_str().unwrap(),
        ],
        "",
    )
    .await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let bytes: usize = (0..10_000)
        .map(|i| format!("line {i}").len())
        .sum::<usize>()
        + "bad \u{FFFD} byte".len()
        + "no newline at the end".len();
    let summary = output.stdout.trim();
    assert!(
        summary.starts_with(&format!("uploaded 10002 lines ({bytes} bytes) in ")),
        "{summary}"
    );
    assert!(summary.ends_with("chunks to production/web"), "{summary}");
    assert!(
        output.stderr.contains("1 lines were not valid UTF-8"),
        "{}",
        output.stderr
    );

    let log = server.pod_log("production", "web").await.unwrap();
    assert_eq!(log.end_cursor(), 10_002);
    assert_eq!(
        log.read(10_000).batch.lines,
        ["line 9999", "bad \u{FFFD} byte", "no newline at the end"]
    );

    let output = run(
        "upload-logs",
        &["--addr", &server.url(), "--pod", "hello-world"],
        "a\nb\n",
    )
    .await;
    assert_eq!(
        output.stdout,
        "uploaded 2 lines (2 bytes) in 1 chunks to default/hello-world\n"
    );

    let output = run(
        "upload-logs",
        &["--addr", &server.url(), "--pod", "ghost"],
        "a\n",
    )
    .await;
    output.assert_one_line_error("NOT_FOUND");
    assert!(
        output.stderr.contains("0 lines stored before this error"),
        "{}",
        output.stderr
    );
    let output = run(
        "upload-logs",
        &["--addr", &server.url(), "--pod", "web", "/no/such/file"],
        "",
    )
    .await;
    output.assert_one_line_error("cannot open /no/such/file");

    // A read error mid-way (a directory opens, but does not read) fails the
    // upload; it is never reported as a success.
    let dir_arg = dir.path().to_str().unwrap();
    let output = run(
        "upload-logs",
        &[
            "--addr",
            &server.url(),
            "--pod",
            "web",
            "-n",
            "production",
            path.to_str().unwrap(),
            dir_arg,
        ],
        "",
    )
    .await;
    output.assert_one_line_error(&format!(
        "cannot read {dir_arg} after 10002 lines were sent"
    ));
    assert!(output.stdout.is_empty(), "{}", output.stdout);
}

#[tokio::test]
async fn pod_logs_prints_the_tail_and_follows() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let log = server.pod_log("default", "hello-world").await.unwrap();
    log.append((1..=5).map(|i| format!("line {i}")).collect());

    let output = run(
        "pod-logs",
        &[
            "--addr",
            &server.url(),
            "--pod",
            "hello-world",
            "--tail",
            "2",
        ],
        "",
    )
    .await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    assert_eq!(output.stdout, "line 4\nline 5\n");

    let mut follow = ClientProcess::of(
        "pod-logs",
        &["--addr", &server.url(), "--pod", "hello-world", "-f"],
    );
    for i in 1..=5 {
        assert_eq!(follow.next_line().await, format!("line {i}"));
    }
    log.append(vec!["line 6".into()]);
    assert_eq!(follow.next_line().await, "line 6");
    // Deleting the pod ends the follow, and the command succeeds.
    server.delete("default", "hello-world").await;
    let status = within("pod-logs to exit", follow.child.wait())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn sync_pods_runs_a_script() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let script = "\
# a comment, then a blank line

watch staging
apply staging/api status=Running replicas=2
apply staging/api replicas=3 version=1
delete staging/web
";
    let output = run("sync-pods", &["--addr", &server.url()], script).await;
    assert_eq!(output.code, Some(1), "one op failed: {}", output.stderr);
    assert_eq!(output.stderr, "error: 1 of 4 ops failed\n");
    let expected = "\
ack 1 OK
change ADDED staging/api status=Pending replicas=1 v6
change ADDED staging/web status=Running replicas=2 v7
change MODIFIED staging/api status=Running replicas=2 v8
ack 2 OK staging/api status=Running replicas=2 v8
ack 3 ABORTED: version conflict on pod staging/api: resource_version 1 expected, but the pod is at 8
change DELETED staging/web deleted v9
ack 4 OK staging/web deleted v9
";
    assert_eq!(output.stdout, expected);

    let output = run(
        "sync-pods",
        &["--addr", &server.url()],
        "apply ok\naply typo\napply never\n",
    )
    .await;
    output.assert_one_line_error("line 2: unknown command \"aply\"");
    assert_eq!(
        output.stdout,
        "ack 1 OK default/ok status=Pending replicas=0 v10\n"
    );
    assert!(
        server.pod_log("default", "never").await.is_err(),
        "nothing after the bad line ran"
    );
}

/// A session sees, live, a change another client makes, then leaves on `quit`.
#[tokio::test]
async fn sync_pods_shows_other_clients_changes_live() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let mut session = ClientProcess::of("sync-pods", &["--addr", &server.url()]);
    session.write("watch dev\n").await;
    assert_eq!(session.next_line().await, "ack 1 OK");
    assert_eq!(
        session.next_line().await,
        "change ADDED dev/scratchpad status=CrashLoopBackOff replicas=1 v2"
    );

    let mut client = server.client().await;
    Session::open(&mut client)
        .await
        .apply(pod("dev", "scratchpad", "Running", 1))
        .await;
    assert_eq!(
        session.next_line().await,
        "change MODIFIED dev/scratchpad status=Running replicas=1 v8"
    );
    session.write("quit\n").await;
    let status = within("sync-pods to exit", session.child.wait())
        .await
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn list_and_watch_print_json_lines() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let output = run(
        "list-pods",
        &["--addr", &server.url(), "-n", "staging", "-o", "json"],
        "",
    )
    .await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let pods: Vec<serde_json::Value> = output
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[0]["namespace"], "staging");
    assert_eq!(pods[0]["name"], "api");
    assert_eq!(pods[0]["status"], "Pending");
    assert_eq!(pods[0]["replicas"], 1);
    assert_eq!(pods[1]["resource_version"], 7);
    assert!(!output.stdout.contains('\x1b'), "no colour when piped");

    let mut watch = ClientProcess::of(
        "watch-pods",
        &["--addr", &server.url(), "-n", "dev", "--output", "json"],
    );
    let listed: serde_json::Value = serde_json::from_str(&watch.next_line().await).unwrap();
    assert_eq!(
        (listed["event"].as_str(), listed["name"].as_str()),
        (Some("ADDED"), Some("scratchpad"))
    );
    server.delete("dev", "scratchpad").await;
    let deleted: serde_json::Value = serde_json::from_str(&watch.next_line().await).unwrap();
    assert_eq!(deleted["event"], "DELETED");
    assert_eq!(deleted["deleted"], true);
    assert_eq!(deleted["resource_version"], 8);
}

#[tokio::test]
async fn the_tour_shows_all_four_patterns() {
    let output = run("tour", &[], "").await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let out = &output.stdout;
    for expected in [
        "== 1. Unary: ListPods",
        "NAMESPACE    NAME          STATUS             REPLICAS   VERSION",
        "  page at version 7: default/hello-world v1, dev/scratchpad v2, production/api v3; and a continue_token",
        "  page at version 7: staging/web v7; the last page",
        "== 2. Server streaming: WatchPods",
        "MODIFIED   production   web        Running   6          9",
        "DELETED    production   postgres   -         -          11",
        "  dev/scratchpad v2",
        "  bookmark at version 11",
        "== 3. Client streaming: UploadLogs",
        "uploaded 2000 lines (68351 bytes) in 1 chunks to production/web",
        "GET /api/pods 200 2ms request=2000",
        "== 4. Bidirectional streaming: SyncPods",
        "ack 3 ABORTED: version conflict on pod staging/api",
        "ack 4 OK staging/web deleted v13",
        "4 ops, 1 refused",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(out.find("== 1.") < out.find("== 2.") && out.find("== 3.") < out.find("== 4."));
}

#[tokio::test]
async fn a_token_protected_server_and_its_clients() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0ken-for-tests\n").unwrap();
    let token = token.to_str().unwrap();
    let server = common::process::ServerProcess::start(
        &dir.path().join("data"),
        "127.0.0.1:0",
        &["--token-file", token],
    )
    .await;
    let url = server.url();

    let output = run("list-pods", &["--addr", &url], "").await;
    output.assert_one_line_error("UNAUTHENTICATED");
    let output = run("list-pods", &["--addr", &url, "--token-file", token], "").await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    let output = run(
        "sync-pods",
        &["--addr", &url, "--token-file", token],
        "apply web\n",
    )
    .await;
    assert_eq!(output.code, Some(0), "{}", output.stderr);
    // The token can come from the environment instead.
    let output = bin("list-pods")
        .args(["--addr", &url])
        .env("POD_SERVICE_TOKEN", "t0ken-for-tests")
        .output();
    let output = within("list-pods", output).await.unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("web"));
}
