//! A write that a replica reported unconfirmed ("may or may not have
//! happened") never takes effect after a later acknowledged write to the
//! same pod: the scenario of issue 24, on a real 3-member etcd cluster,
//! round after round with a new value in every attempt.
//!
//! In each round, the etcd member that some replicas write through is
//! stopped (SIGSTOP). [`CLIENTS`] clients at once each send an apply
//! through such a replica and get `UNAVAILABLE` (the replica gave up after
//! its call timeout; the stopped member still holds the request in its
//! socket), then retry with a new value until it is acknowledged, in the
//! same session or from a new session on another replica (as a client that
//! reconnected). Then the member runs again (SIGCONT) and deals with what
//! it held: the test waits until it answers, has finished every `Txn` call
//! it read, and has committed a write sent through it afterwards
//! (tests/common/replicas.rs, `settle`). The pod must then be the last
//! acknowledged value, at its version, on every replica and in etcd
//! itself. At the end, the pod's whole history (a watch) must show no
//! unconfirmed value at a version after that of a write acknowledged and
//! sent after it, which also catches one that lands late. Rounds stop the
//! leader as well as followers; messages say which it was.
//!
//! (A stopped member lands a held request only some of the time: its
//! caller's cancellation, read in the same breath, races with the
//! proposal. Several held requests per round make today's defect show in
//! almost every run.)

use crate::common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use common::etcd::{EtcdCluster, unique_prefix};
use common::replicas::{list, replica_on, settle, stored_pod};
use common::{Session, TestServer, list_request, pod, within};
use pod_service::contract::PodServiceClient;
use tonic::Code;
use tonic::transport::Channel;

/// Rounds, alternating between retries in the same session and from a new
/// session on another replica; two stop a follower, two the leader, and
/// so on.
const ROUNDS: usize = 10;
/// Clients in each round, each with writes of its own held by the stopped
/// member.
const CLIENTS: usize = 3;
/// Applies a client sends until one is answered `UNAVAILABLE` (a replica
/// that spreads its writes over the members may send some elsewhere).
const ATTEMPTS: usize = 5;
/// Retries until one is acknowledged.
const RETRIES: usize = 10;

const NAMESPACE: &str = "dev";
const POD: &str = "web";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    InTheSameSession,
    FromANewSessionOnAnotherReplica,
}

/// An apply of the test: its value, when it was sent, in which round, and
/// its outcome: acknowledged at a version, or answered `UNAVAILABLE`.
struct Attempt {
    value: i32,
    round: usize,
    sent: Instant,
    outcome: Result<u64, String>,
}

/// Every apply of the test, by every client, and the last value given.
#[derive(Default)]
struct Attempts {
    made: Mutex<Vec<Attempt>>,
    last_value: AtomicI32,
}

impl Attempts {
    /// Applies a new value through `session`: whether it was acknowledged.
    async fn apply(&self, session: &mut Session, round: usize) -> bool {
        let value = self.last_value.fetch_add(1, Ordering::Relaxed) + 1;
        let sent = Instant::now();
        let ack = session.apply(pod(NAMESPACE, POD, "Running", value)).await;
        let outcome = match ack.code {
            0 => Ok(ack.pod.expect("the stored pod").resource_version),
            code => {
                assert_eq!(code, Code::Unavailable as u32, "{}", ack.message);
                Err(ack.message)
            }
        };
        let acked = outcome.is_ok();
        self.lock().push(Attempt {
            value,
            round,
            sent,
            outcome,
        });
        acked
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Attempt>> {
        self.made.lock().expect("attempts")
    }

    /// The newest acknowledged value, at its version.
    fn last_acked(&self) -> (i32, u64) {
        let attempts = self.lock();
        let acked = attempts
            .iter()
            .filter_map(|a| Some((a.outcome.clone().ok()?, a.value)));
        let (version, value) = acked.max().expect("an acknowledged apply");
        (value, version)
    }

    /// How `value` came to be, for a message.
    fn describe(&self, value: i32) -> String {
        match self.lock().iter().find(|a| a.value == value) {
            Some(Attempt {
                round,
                outcome: Err(answer),
                ..
            }) => format!("the value of an apply answered UNAVAILABLE in round {round} ({answer})"),
            Some(Attempt { round, .. }) => format!("a value acknowledged in round {round}"),
            None => "a value no client sent".to_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_write_never_lands_after_a_later_acknowledged_one() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = unique_prefix();
    // Replicas that know only one member each, CLIENTS per member: their
    // writes can go nowhere else.
    let mut alone: Vec<Vec<TestServer>> = Vec::new();
    for i in 0..cluster.len() {
        let mut replicas = Vec::new();
        for _ in 0..CLIENTS {
            replicas.push(replica_on(vec![cluster.endpoint(i)], &prefix).await);
        }
        alone.push(replicas);
    }
    let attempts = Attempts::default();
    let mut first = Session::open(&mut alone[0][0].client().await).await;
    assert!(attempts.apply(&mut first, 0).await, "the first apply");
    let (_, start) = attempts.last_acked();

    for round in 0..ROUNDS {
        let began = Instant::now();
        let retry = if round % 2 == 0 {
            Retry::InTheSameSession
        } else {
            Retry::FromANewSessionOnAnotherReplica
        };
        let leader = cluster.leader().await;
        let (stopped, role) = if round % 4 < 2 {
            ((leader + 1 + round / 4 % 2) % cluster.len(), "a follower")
        } else {
            (leader, "the leader")
        };
        let what = format!("round {round} (member {stopped} stopped, {role}; retry {retry:?})");
        // In the same session: new replicas that know every member and
        // start on the stopped one. From a new session: replicas of the
        // stopped member alone, then of the next member alone.
        let mut both = Vec::new();
        if retry == Retry::InTheSameSession {
            let mut endpoints = cluster.endpoints();
            endpoints.rotate_left(stopped);
            for _ in 0..CLIENTS {
                both.push(replica_on(endpoints.clone(), &prefix).await);
            }
        }
        let mut clients = Vec::new();
        for k in 0..CLIENTS {
            let (first, then) = match retry {
                Retry::InTheSameSession => (both[k].client().await, None),
                Retry::FromANewSessionOnAnotherReplica => (
                    alone[stopped][k].client().await,
                    Some(alone[(stopped + 1) % cluster.len()][k].client().await),
                ),
            };
            clients.push((first, then));
        }
        cluster.pause(stopped);
        let rounds = clients.into_iter().map(|(first, then)| {
            unconfirmed_then_acknowledged(&cluster, &attempts, round, first, then)
        });
        for outcome in futures::future::join_all(rounds).await {
            if let Err(why) = outcome {
                panic!("{what}: {why}");
            }
        }
        cluster.resume(stopped);
        settle(&cluster, stopped).await;

        let mut servers: Vec<&TestServer> = alone.iter().flatten().collect();
        servers.extend(&both);
        if let Err(why) = check(&cluster, stopped, &prefix, &servers, &attempts).await {
            panic!("{what}: {why}");
        }
        for mut server in both {
            server.stop().await;
        }
        eprintln!("{what}: {:?}", began.elapsed());
    }
    assert_history(&alone[0][0], start, &attempts).await;
}

/// One client's part of a round: applies through `first` until one is
/// answered `UNAVAILABLE`, then retries (in the same session, or in a new
/// one on `then`) until one is acknowledged.
async fn unconfirmed_then_acknowledged(
    cluster: &EtcdCluster,
    attempts: &Attempts,
    round: usize,
    mut first: PodServiceClient<Channel>,
    then: Option<PodServiceClient<Channel>>,
) -> Result<(), String> {
    let mut session = Session::open(&mut first).await;
    let mut unconfirmed = false;
    for _ in 0..ATTEMPTS {
        if !attempts.apply(&mut session, round).await {
            unconfirmed = true;
            break;
        }
    }
    if !unconfirmed {
        return Err(format!("{ATTEMPTS} applies, none answered UNAVAILABLE"));
    }
    if let Some(mut then) = then {
        drop(session);
        session = Session::open(&mut then).await;
    }
    for _ in 0..RETRIES {
        if attempts.apply(&mut session, round).await {
            return Ok(());
        }
        // Refused or unconfirmed while the others elect a leader.
        cluster.leader().await;
    }
    Err(format!("{RETRIES} retries, none acknowledged"))
}

/// Whether the pod is the last acknowledged value, at its version, on
/// every replica and in etcd (read through member `i`); if not, what it is.
async fn check(
    cluster: &EtcdCluster,
    i: usize,
    prefix: &str,
    servers: &[&TestServer],
    attempts: &Attempts,
) -> Result<(), String> {
    let last = attempts.last_acked();
    let acked = format!(
        "the last acknowledged value, replicas={}, is at version {}",
        last.0, last.1
    );
    for (r, server) in servers.iter().enumerate() {
        let mut client = server.client().await;
        let (pods, _) = list(&mut client, NAMESPACE).await;
        let found = pods.iter().find(|pod| pod.name == POD);
        let found = found.map(|pod| (pod.replicas, pod.resource_version));
        if found != Some(last) {
            return Err(format!(
                "the pod (replicas, version) on replica {r} is {found:?}, {}; {acked}",
                found.map_or("absent".into(), |(value, _)| attempts.describe(value)),
            ));
        }
    }
    let stored = stored_pod(cluster, i, prefix, NAMESPACE, POD).await;
    let stored = stored.map(|(pod, version)| (pod.replicas, version));
    if stored != Some(last) {
        return Err(format!(
            "etcd holds {stored:?} (replicas, mod_revision), {}; {acked}",
            stored.map_or("absent".into(), |(value, _)| attempts.describe(value)),
        ));
    }
    Ok(())
}

/// The pod's every change after `start` (a watch on `server`, read up to
/// the version a list gives now): no unconfirmed value at a version after
/// that of an acknowledged write sent after it.
async fn assert_history(server: &TestServer, start: u64, attempts: &Attempts) {
    let mut client = server.client().await;
    let (pods, now) = list(&mut client, NAMESPACE).await;
    assert_eq!(pods.len(), 1, "one pod");
    let mut watch = client
        .watch_pods(list_request(NAMESPACE, start))
        .await
        .expect("watch")
        .into_inner();
    let mut history = Vec::new();
    while history.last().is_none_or(|&(version, _)| version < now) {
        let change = within("the pod's history", watch.message()).await;
        let change = change.expect("the watch failed").expect("the watch ended");
        history.push((change.resource_version, change.replicas));
    }
    let attempts = attempts.lock();
    for (version, value) in history {
        let Some(landed) = attempts.iter().find(|a| a.value == value) else {
            panic!("replicas={value} at version {version}: no client sent it");
        };
        let Err(answer) = &landed.outcome else {
            continue;
        };
        let overtaken = attempts.iter().find(|later| {
            later.sent > landed.sent && later.outcome.as_ref().is_ok_and(|acked| *acked < version)
        });
        if let Some(later) = overtaken {
            panic!(
                "replicas={value}, answered UNAVAILABLE in round {} ({answer}), landed at \
                 version {version}, after replicas={}, sent after it in round {} and \
                 acknowledged at version {:?}",
                landed.round, later.value, later.round, later.outcome
            );
        }
    }
}
