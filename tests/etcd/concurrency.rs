//! Many writers at once over three replicas of one etcd registry keep every
//! promise of the contract, however the replicas schedule their
//! transactions:
//!
//! - each of 64 `SyncPods` sessions (half sending one op at a time, half
//!   several ahead of their acks) gets its acks in op order, with strictly
//!   increasing versions, while all of them create, change, delete and
//!   create again their own pods and pods they share;
//! - watchers on every replica, from 0 and from a version acknowledged
//!   during the load, see every change exactly once, in version order, as
//!   it was made;
//! - lists taken on every replica during the load are exactly the registry
//!   at their version, which is at least that of every ack that came
//!   before the list began;
//! - conditional applies racing on one pod from sessions on every replica
//!   have exactly one winner per version (the others get `ABORTED`), and
//!   the winners' versions form one chain.
//!
//! The replicas are in-process servers over the test binary's shared
//! 3-member etcd cluster, under a prefix of their own (tests/common/load.rs
//! drives and checks the sessions).

use crate::common;

use std::sync::Arc;

use common::etcd::{EtcdCluster, unique_prefix};
use common::load::{History, Load, NAMESPACE, SessionLog, drive, mixed_ops};
use common::replicas::{list, replicas};
use common::{Session, list_request, pod, within};
use pod_service::contract::{Pod, PodServiceClient};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

/// Sessions of the load, spread over the three replicas.
const SESSIONS: usize = 64;
/// Ops each session sends.
const OPS_PER_SESSION: usize = 24;
/// How many ops every other session sends ahead of their acks.
const PIPELINE_DEPTH: usize = 8;
/// Pods each session has to itself, and pods every session writes.
const OWN_PODS: usize = 3;
const SHARED_PODS: usize = 4;
/// Lists taken on each replica during the load.
const LISTS_PER_REPLICA: usize = 30;
/// Sessions racing on one pod on each replica, and their attempts each.
const RACERS_PER_REPLICA: usize = 4;
const ATTEMPTS_PER_RACER: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_sessions_over_three_replicas_keep_every_promise() {
    let servers = replicas(EtcdCluster::shared(), &unique_prefix(), 3).await;
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(server.client().await);
    }
    let load = Load::new();
    let (newest, last) = watch::channel(None);

    // Watchers from 0 on the registry while it is empty: every change.
    let mut watchers = Vec::new();
    for (r, client) in clients.iter().enumerate() {
        let watcher = watch_until(client.clone(), 0, last.clone()).await;
        watchers.push((format!("the watcher from 0 on replica {r}"), 0, watcher));
    }

    let sessions: Vec<_> = (0..SESSIONS)
        .map(|s| {
            let depth = if s % 2 == 0 { 1 } else { PIPELINE_DEPTH };
            let mut ops = mixed_ops(s, OPS_PER_SESSION, OWN_PODS, SHARED_PODS).into_iter();
            let client = clients[s % clients.len()].clone();
            tokio::spawn(drive(client, s, depth, Arc::clone(&load), move |_| {
                ops.next()
            }))
        })
        .collect();

    // Each lister waits for its share of the acks, then lists.
    let total = SESSIONS * OPS_PER_SESSION;
    let listers: Vec<_> = clients
        .iter()
        .map(|client| {
            let (mut client, load) = (client.clone(), Arc::clone(&load));
            tokio::spawn(async move {
                let mut lists = Vec::new();
                for k in 1..=LISTS_PER_REPLICA {
                    load.await_acks(k * total / (LISTS_PER_REPLICA + 2)).await;
                    let floor = load.newest();
                    let (pods, version) = list(&mut client, NAMESPACE).await;
                    lists.push((floor, version, pods));
                }
                lists
            })
        })
        .collect();

    // Watchers from a version acknowledged a third of the way in, which
    // a replica may not have reached yet.
    load.await_acks(total / 3).await;
    let from = load.newest();
    for (r, client) in clients.iter().enumerate() {
        let watcher = watch_until(client.clone(), from, last.clone()).await;
        watchers.push((
            format!("the watcher from {from} on replica {r}"),
            from,
            watcher,
        ));
    }

    let mut logs: Vec<SessionLog> = Vec::new();
    for session in sessions {
        logs.push(session.await.expect("a session"));
    }
    for log in &logs {
        for (i, sent) in log.ops.iter().enumerate() {
            let shared_delete = sent.op.pod.starts_with("shared-") && sent.op.value.is_none();
            match &sent.outcome {
                common::load::Outcome::Acked(_) => {}
                common::load::Outcome::Refused(Code::NotFound, _) if shared_delete => {}
                other => panic!("session {}'s op {i} {:?}: {other:?}", log.session, sent.op),
            }
        }
    }
    let history = History::of(&logs);
    newest.send_replace(Some(history.newest()));

    for (who, from, watcher) in watchers {
        let seen = watcher.await.expect("a watcher");
        history.assert_watched(&seen, from, &who);
    }
    for (r, lister) in listers.into_iter().enumerate() {
        for (floor, version, pods) in lister.await.expect("a lister") {
            history.assert_list(floor, version, &pods, &format!("replica {r}"));
        }
    }
}

/// A watch of the load's namespace from `from`, open when this returns,
/// then read as it comes (a watcher that stops reading is dropped) until
/// it yields the version that `last` will name.
async fn watch_until(
    mut client: PodServiceClient<Channel>,
    from: u64,
    mut last: watch::Receiver<Option<u64>>,
) -> tokio::task::JoinHandle<Vec<Pod>> {
    let mut stream = client
        .watch_pods(list_request(NAMESPACE, from))
        .await
        .expect("watch")
        .into_inner();
    tokio::spawn(async move {
        let mut seen: Vec<Pod> = Vec::new();
        loop {
            let newest = seen.last().map(|pod| pod.resource_version);
            let known = *last.borrow_and_update();
            if known.is_some_and(|last| newest >= Some(last)) {
                return seen;
            }
            tokio::select! {
                change = within("a watched change", stream.message()) => {
                    seen.push(change.expect("the watch failed").expect("the watch ended"));
                }
                _ = last.changed(), if known.is_none() => {}
            }
        }
    })
}

/// Racers on every replica apply one pod only at the version they last
/// listed, again and again: exactly one wins at each version, and every
/// loser lost to a winner from the version it expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_applies_racing_on_one_pod_have_one_winner_per_version() {
    let servers = replicas(EtcdCluster::shared(), &unique_prefix(), 3).await;
    let mut first = Session::open(&mut servers[0].client().await).await;
    let ack = first.apply(pod(NAMESPACE, "contended", "Running", 0)).await;
    assert_eq!(ack.code, 0, "{}", ack.message);
    let start = ack.pod.expect("the pod").resource_version;

    let mut racers = Vec::new();
    for racer in 0..RACERS_PER_REPLICA * servers.len() {
        let mut client = servers[racer % servers.len()].client().await;
        racers.push(tokio::spawn(async move {
            let mut session = Session::open(&mut client).await;
            let mut attempts = Vec::new();
            for attempt in 0..ATTEMPTS_PER_RACER {
                let (pods, _) = list(&mut client, NAMESPACE).await;
                let expected = pods[0].resource_version;
                let value = common::load::value(racer, attempt);
                let mut edit = pod(NAMESPACE, "contended", "Running", value);
                edit.resource_version = expected;
                let ack = session.apply(edit).await;
                attempts.push((racer, expected, value, ack));
            }
            attempts
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for racer in racers {
        for (racer, expected, value, ack) in racer.await.expect("a racer") {
            if ack.code == 0 {
                let stored = ack.pod.expect("the stored pod");
                assert_eq!(stored.replicas, value);
                winners.push((stored.resource_version, expected, racer));
            } else {
                assert_eq!(ack.code, Code::Aborted as u32, "{}", ack.message);
                losers.push((expected, racer));
            }
        }
    }
    winners.sort_unstable();
    let mut previous = start;
    for (version, expected, racer) in &winners {
        assert_eq!(
            *expected, previous,
            "racer {racer} won at {version} from {expected}, but the pod was at {previous}: \
             the winners do not form a chain: {winners:?}"
        );
        previous = *version;
    }
    for (expected, racer) in &losers {
        assert!(
            winners.iter().any(|(_, from, _)| from == expected),
            "racer {racer} lost at {expected}, which no winner moved the pod from"
        );
    }
    assert!(!losers.is_empty(), "the racers never collided");
    for server in &servers {
        let (pods, _) = list(&mut server.client().await, NAMESPACE).await;
        assert_eq!(
            pods[0].resource_version, previous,
            "the last winner's change"
        );
    }
    eprintln!("{} winners, {} losers", winners.len(), losers.len());
}
