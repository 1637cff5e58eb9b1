//! The NATS JetStream test harness itself (tests/common/nats.rs): clusters
//! come up ready with a meta leader, the fault controls do what they say,
//! and no nats-server outlives the test process, however that process ends.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::nats::{Health, NatsCluster, unique_stream};
use common::{PATIENCE, eventually, within};
use tokio::io::AsyncBufReadExt;

/// Whether a process is gone (or a zombie, dead but not yet reaped by
/// whoever inherited it).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // pid (comm) STATE ...: comm may hold spaces, so after the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

/// `127.0.0.1:PORT` of a `nats://127.0.0.1:PORT` URL.
fn address(url: &str) -> &str {
    url.strip_prefix("nats://")
        .unwrap_or_else(|| panic!("not a nats:// URL: {url}"))
}

/// The line a NATS server greets a new client connection with: `INFO {...}`,
/// the JSON of the server (its name, version, whether JetStream is on).
async fn greeting(url: &str) -> String {
    within("the INFO line of a new connection", async {
        let stream = tokio::net::TcpStream::connect(address(url))
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
        let mut line = String::new();
        tokio::io::BufReader::new(stream)
            .read_line(&mut line)
            .await
            .expect("read the INFO line");
        line
    })
    .await
}

/// Asserts that the node at `url` serves clients as server `name`, with
/// JetStream.
async fn assert_serves(url: &str, name: &str) {
    let line = greeting(url).await;
    let json = line
        .strip_prefix("INFO {")
        .map(|rest| format!("{{{}", rest.trim_end()))
        .unwrap_or_else(|| panic!("{url} greeted with {line:?}"));
    let info: serde_json::Value = serde_json::from_str(&json).expect("INFO is JSON");
    assert_eq!(info["server_name"], name, "{line}");
    assert_eq!(info["jetstream"], true, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_starts_with_every_node_ready_and_dies_when_dropped() {
    let cluster = NatsCluster::start(3).await;
    assert_eq!(cluster.len(), 3);
    let urls = cluster.urls();
    assert_eq!(urls.len(), 3);
    for (i, url) in urls.iter().enumerate() {
        assert!(url.starts_with("nats://127.0.0.1:"), "{url}");
        assert_eq!(url, &cluster.url(i));
        assert!(
            cluster.monitor_url(i).starts_with("http://127.0.0.1:"),
            "{}",
            cluster.monitor_url(i)
        );
        assert_eq!(cluster.health(i).await, Health::Ready, "node {i}");
        assert_serves(url, &format!("n{i}")).await;
        let log = std::fs::read_to_string(cluster.log_path(i)).expect("read the log");
        assert!(log.contains("Server is ready"), "{log}");
    }
    assert_eq!(cluster.urls_arg(), urls.join(","));
    assert!(cluster.meta_leader().await < 3);

    let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).expect("running")).collect();
    drop(cluster);
    for pid in pids {
        assert!(dead(pid), "nats-server {pid} outlived its cluster");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_node_runs_jetstream_and_leads_itself() {
    let cluster = NatsCluster::start(1).await;
    assert_eq!(cluster.health(0).await, Health::Ready);
    assert_serves(&cluster.url(0), "n0").await;
    assert_eq!(cluster.meta_leader().await, 0);
    assert_eq!(cluster.urls_arg(), cluster.url(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_refuses_connections_and_restart_brings_it_back_on_its_port() {
    let cluster = NatsCluster::start(3).await;
    // The meta leader, so that the others must elect another.
    let old = cluster.meta_leader().await;
    let pid = cluster.pid(old).expect("running");
    let url = cluster.url(old);

    cluster.kill(old);
    assert!(dead(pid), "SIGKILL and wait leave no process");
    assert_eq!(cluster.pid(old), None);
    let refused = std::net::TcpStream::connect(address(&url))
        .expect_err("a killed node's client port accepts no connection");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(
        matches!(cluster.health(old).await, Health::NoAnswer(_)),
        "a killed node does not answer"
    );
    let new = cluster.meta_leader().await;
    assert_ne!(new, old, "a killed node cannot lead");
    for i in (0..3).filter(|&i| i != old) {
        cluster.await_ready(i).await;
        assert_serves(&cluster.url(i), &format!("n{i}")).await;
    }

    cluster.restart(old).await;
    assert_eq!(cluster.url(old), url, "the same port");
    assert_eq!(cluster.health(old).await, Health::Ready);
    assert_serves(&url, &format!("n{old}")).await;
    assert_ne!(cluster.pid(old), Some(pid));
    // Its log goes on in the same file.
    let log = std::fs::read_to_string(cluster.log_path(old)).expect("read the log");
    assert_eq!(log.matches("Starting nats-server").count(), 2, "{log}");
    // It came back as a node of the same meta group: one leader that a
    // majority names.
    assert!(cluster.meta_leader().await < 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "is running: kill it before restarting it")]
async fn restarting_a_running_node_is_a_mistake() {
    let cluster = NatsCluster::start(1).await;
    cluster.restart(0).await;
}

#[test]
fn the_shared_cluster_is_one_per_process_and_ready() {
    let first = NatsCluster::shared();
    let second = NatsCluster::shared();
    assert!(std::ptr::eq(first, second));
    assert_eq!(first.len(), 3);
    assert_eq!(first.urls(), second.urls());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        for i in 0..3 {
            assert_eq!(first.health(i).await, Health::Ready);
        }
    });
    // It outlives the runtime it was first used from.
    drop(runtime);
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            assert!(first.meta_leader().await < 3);
            assert_serves(&first.url(0), "n0").await;
        });
}

#[tokio::test]
async fn the_shared_cluster_can_be_asked_for_from_a_test_runtime() {
    // A current-thread runtime, which the start must not need.
    let cluster = NatsCluster::shared();
    assert_eq!(cluster.health(0).await, Health::Ready);
}

#[test]
#[should_panic(expected = "the shared nats cluster takes no faults (kill)")]
fn the_shared_cluster_takes_no_faults() {
    NatsCluster::shared().kill(0);
}

#[test]
fn streams_are_unique_and_valid_names_and_subject_tokens() {
    let names: Vec<String> = (0..100).map(|_| unique_stream()).collect();
    let distinct: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "{names:?}");
    for name in &names {
        assert!(name.starts_with("logs-"), "{name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}"
        );
    }
}

/// What the child test process prints its nodes' pids after.
const PIDS: &str = "nats-pids:";

/// The child test process, killed if the test fails before it does.
struct ChildTest(Child);

impl Drop for ChildTest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The test process this test starts: starts the shared cluster and one of
/// its own, prints their pids, and waits to be killed.
#[test]
#[ignore = "run by no_nats_server_outlives_a_killed_test_process"]
fn child_that_starts_clusters_and_waits() {
    if std::env::var_os("NATS_HARNESS_CHILD").is_none() {
        return;
    }
    let shared = NatsCluster::shared();
    let own = NatsCluster::start_blocking(1);
    let pids: Vec<String> = (0..3)
        .map(|i| shared.pid(i))
        .chain([own.pid(0)])
        .map(|pid| pid.expect("running").to_string())
        .collect();
    // On a line of its own: libtest has begun one without ending it.
    println!("\n{PIDS} {}", pids.join(" "));
    std::thread::sleep(PATIENCE * 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_nats_server_outlives_a_killed_test_process() {
    // Under setpriv too, so that it dies with this process whatever happens.
    let mut child = ChildTest(
        Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(std::env::current_exe().expect("this test binary"))
            .args([
                "--exact",
                "cluster::child_that_starts_clusters_and_waits",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("NATS_HARNESS_CHILD", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child test process"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let pids = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix(PIDS).map(|pids| pids.trim().to_owned()))
    });
    let pids: Vec<u32> = within("the child to start its clusters", pids)
        .await
        .expect("read the child")
        .expect("the child printed no pids")
        .split(' ')
        .map(|pid| pid.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|&pid| !dead(pid)), "the nodes run");

    child.0.kill().expect("SIGKILL the child");
    child.0.wait().expect("wait for the child");
    eventually(
        || pids.iter().all(|&pid| dead(pid)),
        "the nats-servers of a killed test process to die",
    )
    .await;
}
