//! A write that a replica reported unconfirmed ("may or may not have
//! happened") never takes effect after a later acknowledged write to the
//! same pod: the scenario of issue 24, on a real 3-member etcd cluster,
//! round after round with a new value in every attempt.
//!
//! In each round, the etcd member a replica writes through is stopped
//! (SIGSTOP); an apply through that replica is answered `UNAVAILABLE` (the
//! replica gave up after its call timeout, and the stopped member still
//! holds the request in its socket); the client retries with a new value
//! until it is acknowledged, in the same session or from a new session on
//! another replica (as a client that reconnected). Then the member runs
//! again (SIGCONT) and deals with what it held: the test waits until it
//! answers, has finished every `Txn` call it read, and has committed a
//! write sent through it afterwards (tests/common/replicas.rs, `settle`).
//! The pod must then be the acknowledged retry's, at its version, on every
//! replica and in etcd itself. Rounds stop the leader as well as
//! followers; messages say which it was.

mod common;

use std::time::Instant;

use common::etcd::{EtcdCluster, unique_prefix};
use common::replicas::{list, replica_on, settle, stored_pod};
use common::{Session, TestServer, pod};
use pod_service::contract::PodServiceClient;
use tonic::Code;
use tonic::transport::Channel;

/// Rounds, alternating between a retry in the same session and one from a
/// new session on another replica, and stopping each member in turn.
const ROUNDS: usize = 10;
/// Applies sent in a round until one is answered `UNAVAILABLE` (a replica
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

/// What the client knows of the pod: values answered `UNAVAILABLE` (with
/// the answer), and the last value acknowledged, at its version.
struct Known {
    unconfirmed: Vec<(i32, String)>,
    acked: (i32, u64),
    next_value: i32,
}

impl Known {
    /// Applies a new value through `session`: whether it was acknowledged.
    async fn apply(&mut self, session: &mut Session) -> bool {
        self.next_value += 1;
        let value = self.next_value;
        let ack = session.apply(pod(NAMESPACE, POD, "Running", value)).await;
        if ack.code == 0 {
            self.acked = (value, ack.pod.expect("the stored pod").resource_version);
            return true;
        }
        assert_eq!(ack.code, Code::Unavailable as u32, "{}", ack.message);
        self.unconfirmed.push((value, ack.message));
        false
    }

    /// How `value` came to be, for a message.
    fn describe(&self, value: i32) -> String {
        match self.unconfirmed.iter().find(|(v, _)| *v == value) {
            Some((_, answer)) => format!("the value of an apply answered UNAVAILABLE ({answer})"),
            None => "no value the client sent before the acknowledged one".to_owned(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_write_never_lands_after_a_later_acknowledged_one() {
    let cluster = EtcdCluster::start(3).await;
    let prefix = unique_prefix();
    // A replica per member that knows only that member: its writes can go
    // nowhere else.
    let mut alone = Vec::new();
    for i in 0..cluster.len() {
        alone.push(replica_on(vec![cluster.endpoint(i)], &prefix).await);
    }
    let mut known = Known {
        unconfirmed: Vec::new(),
        acked: (0, 0),
        next_value: 0,
    };
    let mut first = Session::open(&mut alone[0].client().await).await;
    assert!(known.apply(&mut first).await, "the first apply");

    for round in 0..ROUNDS {
        let began = Instant::now();
        let retry = if round % 2 == 0 {
            Retry::InTheSameSession
        } else {
            Retry::FromANewSessionOnAnotherReplica
        };
        // Two rounds stopping a follower, then two the leader, and so on;
        // the followers in turn.
        let leader = cluster.leader().await;
        let (stopped, role) = if round % 4 < 2 {
            ((leader + 1 + round / 4 % 2) % cluster.len(), "a follower")
        } else {
            (leader, "the leader")
        };
        // In the same session: a new replica that knows every member and
        // starts on the stopped one. From a new session: the stopped
        // member's own replica, then the next member's.
        let both = match retry {
            Retry::InTheSameSession => {
                let mut endpoints = cluster.endpoints();
                endpoints.rotate_left(stopped);
                Some(replica_on(endpoints, &prefix).await)
            }
            Retry::FromANewSessionOnAnotherReplica => None,
        };
        let mut client = match &both {
            Some(both) => both.client().await,
            None => alone[stopped].client().await,
        };
        cluster.pause(stopped);

        let mut session = Session::open(&mut client).await;
        let held = known.unconfirmed.len();
        for _ in 0..ATTEMPTS {
            if !known.apply(&mut session).await {
                break;
            }
        }
        let what = format!("round {round} (member {stopped} stopped, {role}; retry {retry:?})");
        assert!(
            known.unconfirmed.len() > held,
            "{what}: {ATTEMPTS} applies, none answered UNAVAILABLE"
        );
        let mut session = match retry {
            Retry::InTheSameSession => session,
            Retry::FromANewSessionOnAnotherReplica => {
                drop(session);
                let next = &alone[(stopped + 1) % cluster.len()];
                Session::open(&mut next.client().await).await
            }
        };
        let mut retries = 0;
        while !known.apply(&mut session).await {
            retries += 1;
            assert!(
                retries < RETRIES,
                "{what}: {RETRIES} retries unacknowledged"
            );
            // Refused or unconfirmed while the others elect a leader.
            cluster.leader().await;
        }
        cluster.resume(stopped);
        settle(&cluster, stopped).await;

        let mut servers: Vec<&TestServer> = alone.iter().collect();
        servers.extend(&both);
        if let Err(why) = check(&cluster, stopped, &prefix, &servers, &known).await {
            panic!("{what}: {why}");
        }
        if let Some(mut both) = both {
            both.stop().await;
        }
        eprintln!("{what}: {:?}", began.elapsed());
    }
}

/// Whether the pod is the last acknowledged value, at its version, on
/// every replica and in etcd (read through member `i`); if not, what it is.
async fn check(
    cluster: &EtcdCluster,
    i: usize,
    prefix: &str,
    servers: &[&TestServer],
    known: &Known,
) -> Result<(), String> {
    let (value, version) = known.acked;
    let acked = format!("the retry's replicas={value} was acknowledged at version {version}");
    for (r, server) in servers.iter().enumerate() {
        let found = listed(server.client().await).await;
        if found != Some(known.acked) {
            return Err(format!(
                "the pod (replicas, version) on replica {r} is {found:?}, {}; {acked}",
                found.map_or("absent".into(), |(value, _)| known.describe(value)),
            ));
        }
    }
    let stored = stored_pod(cluster, i, prefix, NAMESPACE, POD).await;
    let stored = stored.map(|(pod, version)| (pod.replicas, version));
    if stored != Some(known.acked) {
        return Err(format!(
            "etcd holds {stored:?} (replicas, mod_revision), {}; {acked}",
            stored.map_or("absent".into(), |(value, _)| known.describe(value)),
        ));
    }
    Ok(())
}

/// The pod as a replica lists it: (replicas, version).
async fn listed(mut client: PodServiceClient<Channel>) -> Option<(i32, u64)> {
    let (pods, _) = list(&mut client, NAMESPACE).await;
    let found = pods.into_iter().find(|pod| pod.name == POD);
    found.map(|pod| (pod.replicas, pod.resource_version))
}
