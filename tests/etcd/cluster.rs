//! The etcd test harness itself (tests/common/etcd.rs): clusters come up
//! healthy, the fault controls do what they say, and no etcd outlives the
//! test process, however that process ends.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::etcd::{EtcdCluster, Health, unique_prefix};
use common::{PATIENCE, eventually};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_starts_with_every_member_healthy_and_dies_when_dropped() {
    let cluster = EtcdCluster::start(3).await;
    assert_eq!(cluster.len(), 3);
    let endpoints = cluster.endpoints();
    assert_eq!(endpoints.len(), 3);
    for (i, endpoint) in endpoints.iter().enumerate() {
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        assert_eq!(cluster.health(i).await, Health::Ready, "member {i}");
    }
    assert_eq!(cluster.endpoints_arg(), endpoints.join(","));
    let leader = cluster.leader().await;
    assert!(leader < 3);

    let pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).expect("running")).collect();
    drop(cluster);
    for pid in pids {
        assert!(dead(pid), "etcd {pid} outlived its cluster");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_member_cluster_leads_itself() {
    let cluster = EtcdCluster::start(1).await;
    assert_eq!(cluster.leader().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_restart_brings_it_back() {
    let cluster = EtcdCluster::start(3).await;
    let old = cluster.leader().await;
    let pid = cluster.pid(old).expect("running");

    cluster.kill(old);
    assert!(dead(pid), "SIGKILL and wait leave no process");
    assert_eq!(cluster.pid(old), None);
    assert!(
        matches!(cluster.health(old).await, Health::NoAnswer(_)),
        "a killed member does not answer"
    );
    let new = cluster.leader().await;
    assert_ne!(new, old, "a killed member cannot lead");
    for i in (0..3).filter(|&i| i != old) {
        cluster.await_ready(i).await;
    }

    cluster.restart(old).await;
    assert_eq!(cluster.health(old).await, Health::Ready);
    assert_ne!(cluster.pid(old), Some(pid));
    // It came back as a member of the same cluster, with its old data: the
    // cluster still has one leader that a majority names.
    assert!(cluster.leader().await < 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_member_answers_nothing_until_resumed() {
    let cluster = EtcdCluster::start(3).await;
    let leader = cluster.leader().await;

    cluster.pause(leader);
    match cluster.health(leader).await {
        Health::NoAnswer(why) => assert!(why.contains("no answer"), "{why}"),
        other => panic!("a paused member answered: {other:?}"),
    }
    let next = cluster.leader().await;
    assert_ne!(next, leader, "the others elect a leader of their own");

    cluster.resume(leader);
    cluster.await_ready(leader).await;
    // The old leader learns it was deposed; the three agree on a leader.
    assert!(cluster.leader().await < 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[should_panic(expected = "is running: kill it before restarting it")]
async fn restarting_a_running_member_is_a_mistake() {
    let cluster = EtcdCluster::start(1).await;
    cluster.restart(0).await;
}

#[test]
fn the_shared_cluster_is_one_per_process_and_healthy() {
    let first = EtcdCluster::shared();
    let second = EtcdCluster::shared();
    assert!(std::ptr::eq(first, second));
    assert_eq!(first.len(), 3);
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
        .block_on(async { assert!(first.leader().await < 3) });
}

#[tokio::test]
async fn the_shared_cluster_can_be_asked_for_from_a_test_runtime() {
    // A current-thread runtime, which the start must not need.
    let cluster = EtcdCluster::shared();
    assert_eq!(cluster.health(0).await, Health::Ready);
}

#[test]
#[should_panic(expected = "the shared etcd cluster takes no faults (kill)")]
fn the_shared_cluster_takes_no_faults() {
    EtcdCluster::shared().kill(0);
}

#[test]
fn prefixes_are_unique_and_look_like_directories() {
    let a = unique_prefix();
    let b = unique_prefix();
    assert_ne!(a, b);
    for prefix in [&a, &b] {
        assert!(
            prefix.starts_with("/test-") && prefix.ends_with('/'),
            "{prefix}"
        );
    }
}

/// What the child test process prints its members' pids after.
const PIDS: &str = "etcd-pids:";

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
#[ignore = "run by no_etcd_outlives_a_killed_test_process"]
fn child_that_starts_clusters_and_waits() {
    if std::env::var_os("ETCD_HARNESS_CHILD").is_none() {
        return;
    }
    let shared = EtcdCluster::shared();
    let own = EtcdCluster::start_blocking(1);
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
async fn no_etcd_outlives_a_killed_test_process() {
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
            .env("ETCD_HARNESS_CHILD", "1")
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
    let pids: Vec<u32> = common::within("the child to start its clusters", pids)
        .await
        .expect("read the child")
        .expect("the child printed no pids")
        .split(' ')
        .map(|pid| pid.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 4);
    assert!(pids.iter().all(|&pid| !dead(pid)), "the members run");

    child.0.kill().expect("SIGKILL the child");
    child.0.wait().expect("wait for the child");
    eventually(
        || pids.iter().all(|&pid| dead(pid)),
        "the etcd members of a killed test process to die",
    )
    .await;
}
