//! Faults under many concurrent writers: 64 `SyncPods` sessions, each
//! changing pods of its own through replicas of one etcd registry, when
//!
//! - the etcd leader is killed: nothing acknowledged is lost, and every
//!   session gets acks again within [`RECOVERY`];
//! - a `pod-server` replica is killed (SIGKILL) with transactions in
//!   flight: every session on it sees its stream fail, its acks are a
//!   prefix of its ops, and everything acknowledged is in etcd (read
//!   through another replica), the unacknowledged ops having happened or
//!   not;
//! - the etcd member the replicas use is stopped (SIGSTOP): writes go on
//!   within [`RECOVERY`], and once it runs again and has dealt with what it
//!   held, nothing acknowledged is lost.
//!
//! "Nothing acknowledged is lost" is exact (tests/common/load.rs,
//! `assert_nothing_acknowledged_lost`): each pod is as its last
//! acknowledged op left it, at that op's version, or as an unconfirmed op
//! sent after it left it; never as an earlier op left it. Every test that
//! hurts etcd starts a cluster of its own.

use crate::common;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::TestServer;
use common::etcd::{EtcdCluster, unique_prefix};
use common::load::{
    Load, NAMESPACE, Outcome, SessionLog, assert_nothing_acknowledged_lost, drive, own_apply,
};
use common::process::ServerProcess;
use common::replicas::{list, replica_on, replicas, settle};
use pod_service::contract::PodServiceClient;

/// Sessions writing at once.
const SESSIONS: usize = 64;
/// Pods each session changes in turn.
const OWN_PODS: usize = 2;
/// How many ops every other session sends ahead of their acks.
const PIPELINE_DEPTH: usize = 4;
/// Acks (in all) before the fault strikes.
const ACKS_BEFORE: usize = 256;
/// Acks of ops sent after the fault that each session waits for.
const ACKS_AFTER: usize = 6;
/// The most a session may wait, after the fault, for its first ack of an
/// op sent after it: an upper bound, not a wait.
const RECOVERY: Duration = Duration::from_secs(20);

/// Runs [`SESSIONS`] sessions over `clients`, each changing its own pods
/// until [`ACKS_AFTER`] of the ops it sent after the fault are acknowledged
/// (or its stream fails); `fault` strikes once [`ACKS_BEFORE`] acks have
/// come. Returns the logs, and when the fault struck.
async fn writes_through_a_fault(
    clients: &[PodServiceClient<tonic::transport::Channel>],
    fault: impl Future<Output = ()>,
) -> (Vec<SessionLog>, Instant) {
    let load = Load::new();
    let struck = Arc::new(OnceLock::<Instant>::new());
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let struck = Arc::clone(&struck);
            let next = move |log: &SessionLog| {
                let after = struck.get().map_or(0, |at| {
                    let sent_after = log.ops.iter().filter(|sent| sent.at > *at);
                    sent_after
                        .filter(|sent| matches!(sent.outcome, Outcome::Acked(_)))
                        .count()
                });
                (after < ACKS_AFTER).then(|| own_apply(s, log.ops.len(), OWN_PODS))
            };
            let depth = if s % 2 == 0 { 1 } else { PIPELINE_DEPTH };
            let client = clients[s % clients.len()].clone();
            tokio::spawn(drive(client, s, depth, Arc::clone(&load), next))
        })
        .collect();
    load.await_acks(ACKS_BEFORE).await;
    fault.await;
    let at = Instant::now();
    struck.set(at).expect("one fault");
    let mut logs = Vec::new();
    for session in sessions {
        logs.push(session.await.expect("a session"));
    }
    (logs, at)
}

/// Each session's first ack of an op sent after the fault came within
/// [`RECOVERY`] of it; returns the slowest session's wait.
fn assert_writes_went_on(logs: &[SessionLog], fault: Instant, what: &str) -> Duration {
    let mut slowest = Duration::ZERO;
    for log in logs {
        let first = log.ops.iter().find_map(|sent| match sent.outcome {
            Outcome::Acked(_) if sent.at > fault => sent.answered,
            _ => None,
        });
        let first = first.unwrap_or_else(|| panic!("session {}: no ack after {what}", log.session));
        let waited = first - fault;
        assert!(
            waited <= RECOVERY,
            "session {}: its first ack after {what} took {waited:?}",
            log.session
        );
        slowest = slowest.max(waited);
    }
    slowest
}

/// Asserts that no op came of anything but an ack or UNAVAILABLE.
fn assert_acked_or_unconfirmed(logs: &[SessionLog]) {
    for log in logs {
        for (i, sent) in log.ops.iter().enumerate() {
            assert!(
                matches!(sent.outcome, Outcome::Acked(_) | Outcome::Unconfirmed(_)),
                "session {}'s op {i}: {:?}",
                log.session,
                sent.outcome
            );
        }
    }
}

async fn clients_of(servers: &[TestServer]) -> Vec<PodServiceClient<tonic::transport::Channel>> {
    let mut clients = Vec::new();
    for server in servers {
        clients.push(server.client().await);
    }
    clients
}

/// The pods as every replica lists them, each checked against the logs.
async fn assert_every_replica_keeps_every_ack(
    servers: &[TestServer],
    logs: &[SessionLog],
    what: &str,
) {
    for (r, server) in servers.iter().enumerate() {
        let (pods, _) = list(&mut server.client().await, NAMESPACE).await;
        assert_nothing_acknowledged_lost(logs, &pods, &format!("replica {r}, after {what}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_etcd_leader_under_64_sessions_loses_no_ack_and_writes_go_on() {
    let cluster = EtcdCluster::start(3).await;
    let servers = replicas(&cluster, &unique_prefix(), 3).await;
    let clients = clients_of(&servers).await;
    let leader = cluster.leader().await;
    let (logs, killed) = writes_through_a_fault(&clients, async { cluster.kill(leader) }).await;
    assert_acked_or_unconfirmed(&logs);
    let slowest = assert_writes_went_on(&logs, killed, "the leader was killed");
    eprintln!("every session had an ack within {slowest:?} of the leader's kill");
    assert_every_replica_keeps_every_ack(&servers, &logs, "the leader was killed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_stopped_under_64_sessions_holds_up_no_write_and_loses_no_ack() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = unique_prefix();
    // The replicas start on the first endpoint they are given: a follower,
    // the member most replicas use in the report.
    let leader = cluster.leader().await;
    let stopped = (leader + 1) % cluster.len();
    let mut endpoints = cluster.endpoints();
    endpoints.rotate_left(stopped);
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(replica_on(endpoints.clone(), &prefix).await);
    }
    let clients = clients_of(&servers).await;
    let stop = async { cluster.pause(stopped) };
    let (logs, paused) = writes_through_a_fault(&clients, stop).await;
    assert_acked_or_unconfirmed(&logs);
    let what = format!("member {stopped} (a follower; {leader} led) was stopped");
    let slowest = assert_writes_went_on(&logs, paused, &what);
    eprintln!("every session had an ack within {slowest:?} of the stop");
    cluster.resume(stopped);
    settle(&cluster, stopped).await;
    assert_every_replica_keeps_every_ack(&servers, &logs, &what).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_with_writes_in_flight_leaves_exactly_its_unacknowledged_ops_unconfirmed()
{
    let cluster = EtcdCluster::shared();
    let prefix = unique_prefix();
    let victim =
        ServerProcess::start_replica(&cluster.endpoints_arg(), &prefix, "127.0.0.1:0", &[]).await;
    let survivor = replicas(cluster, &prefix, 1).await;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS / 8 {
        clients.push(
            PodServiceClient::connect(victim.url())
                .await
                .expect("connect"),
        );
    }
    let (logs, _) = writes_through_a_fault(&clients, victim.kill()).await;
    let mut unconfirmed = 0;
    for log in &logs {
        assert!(
            log.failed.is_some(),
            "session {}'s stream ended without an error",
            log.session
        );
        let acked = log
            .ops
            .iter()
            .take_while(|sent| matches!(sent.outcome, Outcome::Acked(_)));
        let acked = acked.count();
        for (i, sent) in log.ops.iter().enumerate().skip(acked) {
            assert!(
                matches!(sent.outcome, Outcome::Unconfirmed(_)),
                "session {}: op {i}, after its first unacknowledged op, is {:?}",
                log.session,
                sent.outcome
            );
            unconfirmed += 1;
        }
    }
    assert!(unconfirmed > 0, "the kill found no write in flight");
    assert_every_replica_keeps_every_ack(&survivor, &logs, "the replica was killed").await;
}
