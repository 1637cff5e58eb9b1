//! Many `SyncPods` sessions writing at once, and what their acks promise,
//! for tests/etcd/concurrency.rs and tests/etcd/load_faults.rs.
//!
//! A session ([`drive`]) sends its ops one at a time or several ahead of
//! their acks, and checks as it goes that the acks come in op order with
//! strictly increasing versions. Its [`SessionLog`] keeps what came of each
//! op. Every op writes a value (`replicas`) of its own, so a stored value
//! names the op that wrote it. From the logs of a load without faults,
//! [`History`] knows every change of every pod, so a list or a watch is
//! checked exactly; after faults, when some ops are unconfirmed,
//! [`assert_nothing_acknowledged_lost`] checks what the pods may be.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pod_service::contract::{Pod, PodRef, PodServiceClient, sync_event, sync_request};
use tokio::sync::watch;
use tonic::Code;
use tonic::transport::Channel;

use super::replicas::assert_once_in_order;
use super::{Session, pod, within};

/// The namespace the sessions write in.
pub const NAMESPACE: &str = "load";

/// An op: an apply of `pod` with `replicas = value`, or a delete (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub pod: String,
    pub value: Option<i32>,
}

#[derive(Debug, Clone)]
pub enum Outcome {
    /// Sent, not answered yet (only while the session runs).
    Waiting,
    Acked(u64),
    /// Refused with this code: nothing changed.
    Refused(Code, String),
    /// Answered UNAVAILABLE, or never answered because the stream ended:
    /// it may or may not have happened.
    Unconfirmed(String),
}

/// An op a session sent, when, and what came of it (and when).
#[derive(Debug)]
pub struct Sent {
    pub op: Op,
    pub at: Instant,
    pub outcome: Outcome,
    pub answered: Option<Instant>,
}

#[derive(Debug)]
pub struct SessionLog {
    pub session: usize,
    pub ops: Vec<Sent>,
    /// The error that ended the stream, if one did.
    pub failed: Option<tonic::Status>,
}

/// What the sessions of one load share: how many acks have come, and the
/// newest version acknowledged (a list begun now must reflect it).
pub struct Load {
    acks: watch::Sender<usize>,
    newest: AtomicU64,
}

impl Load {
    pub fn new() -> Arc<Self> {
        Arc::new(Load {
            acks: watch::channel(0).0,
            newest: AtomicU64::new(0),
        })
    }

    /// The newest version acknowledged so far.
    pub fn newest(&self) -> u64 {
        self.newest.load(Ordering::SeqCst)
    }

    /// Waits until `n` ops have been acknowledged in all.
    pub async fn await_acks(&self, n: usize) {
        let mut acks = self.acks.subscribe();
        within("acks", acks.wait_for(|acked| *acked >= n))
            .await
            .expect("the load is alive");
    }

    fn acked(&self, version: u64) {
        self.newest.fetch_max(version, Ordering::SeqCst);
        self.acks.send_modify(|acked| *acked += 1);
    }
}

/// Runs one session on `client`: sends the ops `next` gives (it sees the
/// log so far; `None`: send no more), at most `depth` of them unanswered,
/// and returns the log once every op sent is answered or the stream ended.
/// Panics if an ack comes out of op order or a version does not increase.
pub async fn drive(
    mut client: PodServiceClient<Channel>,
    session: usize,
    depth: usize,
    load: Arc<Load>,
    mut next: impl FnMut(&SessionLog) -> Option<Op>,
) -> SessionLog {
    let mut stream = Session::open(&mut client).await;
    let mut log = SessionLog {
        session,
        ops: Vec::new(),
        failed: None,
    };
    // (ack id, index in the log) of the ops sent and not answered.
    let mut waiting = VecDeque::new();
    let mut newest = 0;
    let mut sending = true;
    loop {
        while sending && waiting.len() < depth {
            let Some(op) = next(&log) else {
                sending = false;
                break;
            };
            let id = stream.try_send(request(&op)).await;
            sending = id.is_some();
            waiting.push_back((id, log.ops.len()));
            log.ops.push(Sent {
                op,
                at: Instant::now(),
                outcome: Outcome::Waiting,
                answered: None,
            });
        }
        let Some(&(id, index)) = waiting.front() else {
            return log;
        };
        let ack = match within("an ack", stream.events.message()).await {
            Ok(Some(event)) => match event.event {
                Some(sync_event::Event::Ack(ack)) => ack,
                other => panic!("session {session}: expected an ack, got {other:?}"),
            },
            end => {
                let why = match &end {
                    Err(status) => format!("the stream failed: {status}"),
                    _ => "the stream ended".to_owned(),
                };
                for (_, index) in waiting {
                    log.ops[index].outcome = Outcome::Unconfirmed(why.clone());
                }
                log.failed = end.err();
                return log;
            }
        };
        assert_eq!(Some(ack.id), id, "session {session}: acks come in op order");
        waiting.pop_front();
        let sent = &mut log.ops[index];
        sent.answered = Some(Instant::now());
        sent.outcome = match Code::from(ack.code as i32) {
            Code::Ok => {
                let stored = ack.pod.expect("an acknowledged op's pod");
                let made = (
                    stored.name.as_str(),
                    (!stored.deleted).then_some(stored.replicas),
                );
                assert_eq!(
                    made,
                    (sent.op.pod.as_str(), sent.op.value),
                    "session {session}: op {index}'s ack"
                );
                let version = stored.resource_version;
                assert!(
                    version > newest,
                    "session {session}: op {index} acknowledged at {version}, after {newest}"
                );
                newest = version;
                load.acked(version);
                Outcome::Acked(version)
            }
            Code::Unavailable => Outcome::Unconfirmed(ack.message),
            code => Outcome::Refused(code, ack.message),
        };
    }
}

fn request(op: &Op) -> sync_request::Op {
    match op.value {
        Some(value) => sync_request::Op::Apply(pod(NAMESPACE, &op.pod, "Running", value)),
        None => sync_request::Op::Delete(PodRef {
            namespace: NAMESPACE.into(),
            name: op.pod.clone(),
        }),
    }
}

/// A value no other op of the load writes: op `i` of `session`.
pub fn value(session: usize, i: usize) -> i32 {
    i32::try_from(session * 100_000 + i + 1).expect("a small load")
}

/// Op `i` of `session` when it changes its own `pods` pods in turn.
pub fn own_apply(session: usize, i: usize, pods: usize) -> Op {
    Op {
        pod: format!("s{session}-{}", i % pods),
        value: Some(value(session, i)),
    }
}

/// `count` ops of `session`: it creates, changes, deletes and creates
/// again its own `own` pods, and changes and deletes `shared` pods that
/// every session writes (such a delete may find no pod: NOT_FOUND).
pub fn mixed_ops(session: usize, count: usize, own: usize, shared: usize) -> Vec<Op> {
    let mut rng = fastrand::Rng::with_seed(session as u64);
    let mut exists = vec![false; own];
    (0..count)
        .map(|i| {
            let value = Some(value(session, i));
            if rng.u8(..10) < 4 {
                let pod = format!("shared-{}", rng.usize(..shared));
                let value = if rng.u8(..10) < 3 { None } else { value };
                return Op { pod, value };
            }
            let k = rng.usize(..own);
            let delete = exists[k] && rng.u8(..10) < 3;
            exists[k] = !delete;
            Op {
                pod: format!("s{session}-{k}"),
                value: if delete { None } else { value },
            }
        })
        .collect()
}

/// Every acknowledged change of every pod of a load without faults, where
/// every op was answered: so the whole history of the registry.
pub struct History {
    /// Per pod: (version, value or deleted), in version order.
    pods: BTreeMap<String, Vec<(u64, Option<i32>)>>,
}

impl History {
    /// Panics if two acks carry one version: each op is a transaction of
    /// its own.
    pub fn of(logs: &[SessionLog]) -> Self {
        let mut pods: BTreeMap<String, Vec<(u64, Option<i32>)>> = BTreeMap::new();
        let mut versions = BTreeSet::new();
        for sent in logs.iter().flat_map(|log| &log.ops) {
            if let Outcome::Acked(version) = sent.outcome {
                assert!(versions.insert(version), "two acks at version {version}");
                let changes = pods.entry(sent.op.pod.clone()).or_default();
                changes.push((version, sent.op.value));
            }
        }
        for changes in pods.values_mut() {
            changes.sort_unstable();
        }
        History { pods }
    }

    /// The newest version acknowledged.
    pub fn newest(&self) -> u64 {
        let last = self.pods.values().filter_map(|changes| changes.last());
        last.map(|(version, _)| *version).max().unwrap_or(0)
    }

    /// Every change after `from`: (version, pod, value or deleted), in
    /// version order.
    pub fn changes_after(&self, from: u64) -> Vec<(u64, String, Option<i32>)> {
        let mut changes: Vec<_> = self
            .pods
            .iter()
            .flat_map(|(pod, changes)| changes.iter().map(move |(v, value)| (*v, pod, *value)))
            .filter(|(version, _, _)| *version > from)
            .map(|(version, pod, value)| (version, pod.clone(), value))
            .collect();
        changes.sort_unstable();
        changes
    }

    /// A watch from `from` yielded exactly every change after it, once
    /// each, in version order, each as it was made.
    pub fn assert_watched(&self, seen: &[Pod], from: u64, who: &str) {
        let expected = self.changes_after(from);
        let versions: BTreeSet<u64> = expected.iter().map(|(version, _, _)| *version).collect();
        let by_version: Vec<(u64, String)> = seen
            .iter()
            .map(|pod| (pod.resource_version, pod.name.clone()))
            .collect();
        assert_once_in_order(&by_version, &versions, who);
        let seen: Vec<_> = seen.iter().map(change).collect();
        assert_eq!(seen, expected, "{who}: each change as it was made");
    }

    /// A list at `version`, begun after every ack up to `floor`: it
    /// reflects them (`version >= floor`), and it is exactly the registry
    /// at its version, every pod at its last change up to it.
    pub fn assert_list(&self, floor: u64, version: u64, pods: &[Pod], who: &str) {
        assert!(
            version >= floor,
            "{who}: a list at {version} began after an ack at {floor}"
        );
        let listed: BTreeMap<&str, (u64, i32)> = pods
            .iter()
            .map(|pod| (pod.name.as_str(), (pod.resource_version, pod.replicas)))
            .collect();
        for name in listed.keys() {
            assert!(
                self.pods.contains_key(*name),
                "{who}: {name} was never written"
            );
        }
        for (name, changes) in &self.pods {
            let at = changes.iter().rev().find(|(v, _)| *v <= version);
            let expected = at.and_then(|(v, value)| Some((*v, (*value)?)));
            assert_eq!(
                listed.get(name.as_str()).copied(),
                expected,
                "{who}: {name} in a list at {version} (begun after an ack at {floor}); \
                 its changes: {changes:?}"
            );
        }
    }
}

/// A watched change as (version, pod, value or deleted).
fn change(pod: &Pod) -> (u64, String, Option<i32>) {
    let value = (!pod.deleted).then_some(pod.replicas);
    (pod.resource_version, pod.name.clone(), value)
}

/// After faults, the pods in `pods` (a list) against the ops of the
/// sessions that wrote them, each pod written by one session: a pod is as
/// its last acknowledged op left it (at that op's version), or as an op
/// sent after that one and not confirmed left it (at a later version).
/// Never as an earlier op left it: an acknowledged write is not lost, not
/// even to an unconfirmed write sent before it.
pub fn assert_nothing_acknowledged_lost(logs: &[SessionLog], pods: &[Pod], who: &str) {
    let mut listed: BTreeMap<&str, &Pod> = pods.iter().map(|p| (p.name.as_str(), p)).collect();
    for log in logs {
        let mut by_pod: BTreeMap<&str, Vec<(usize, &Sent)>> = BTreeMap::new();
        for (i, sent) in log.ops.iter().enumerate() {
            by_pod
                .entry(sent.op.pod.as_str())
                .or_default()
                .push((i, sent));
        }
        for (name, ops) in by_pod {
            let found = listed.remove(name);
            let acked = ops
                .iter()
                .rposition(|(_, s)| matches!(s.outcome, Outcome::Acked(_)));
            let (floor, allowed) = match acked {
                Some(last) => {
                    let (_, sent) = ops[last];
                    let Outcome::Acked(version) = sent.outcome else {
                        unreachable!()
                    };
                    (version, &ops[last..])
                }
                None => (0, &ops[..]),
            };
            let state =
                found.map(|pod| (pod.resource_version, (!pod.deleted).then_some(pod.replicas)));
            let explained = match state {
                // Absent: nothing acknowledged, or deleted by the last
                // acknowledged op or an unconfirmed one after it.
                None => {
                    acked.is_none()
                        || allowed.iter().any(|(_, sent)| {
                            sent.op.value.is_none()
                                && matches!(
                                    sent.outcome,
                                    Outcome::Acked(_) | Outcome::Unconfirmed(_)
                                )
                        })
                }
                Some((version, value)) => allowed.iter().any(|(_, sent)| {
                    sent.op.value == value
                        && match sent.outcome {
                            Outcome::Acked(acked) => version == acked,
                            Outcome::Unconfirmed(_) => version > floor,
                            _ => false,
                        }
                }),
            };
            if !explained {
                let earlier = ops
                    .iter()
                    .find(|(_, s)| state.is_some_and(|(_, value)| s.op.value == value));
                panic!(
                    "{who}: session {}'s pod {name} is {state:?} (version, value); its ops \
                     from the last acknowledged one on: {:?}; the op that wrote it: {earlier:?}",
                    log.session,
                    allowed
                        .iter()
                        .map(|(i, s)| (i, &s.op.value, &s.outcome))
                        .collect::<Vec<_>>()
                );
            }
        }
    }
    let strays: Vec<&&str> = listed.keys().collect();
    assert!(
        strays.is_empty(),
        "{who}: pods no session wrote: {strays:?}"
    );
}
