//! What must hold when the store is opened again over the disk a power cut
//! left: it opens; every write acknowledged before the cut is there with
//! its version; what it holds is exactly the run's state at some version
//! no older than that (so nothing is invented, reordered or half-applied);
//! the history it kept replays those very changes; every log is an
//! unbroken stretch of the lines appended, ending no earlier than the last
//! acknowledged upload; and the next write takes the next version.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::disk::{Cut, Disk};
use super::run::{self, HISTORY, LOG_BYTES_PER_POD, NAMESPACE, Run};
use crate::domain::{PodKey, PodSelector};
use crate::store::durable::DurableStore;
use crate::store::pod_log::line_cost;
use crate::store::registry::{Fresh, Registry};

/// How much of the run a reopened store held: more than was
/// acknowledged when the disk had written back more than was synced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub version: u64,
    /// The lines of every log, to the newest.
    pub lines: u64,
    /// The acknowledgements, pod writes and uploads, it had to honour.
    pub acknowledged: usize,
}

/// Opens the store over `image`, the disk after `cut` of `run`, and checks
/// it. The error says what is wrong.
pub async fn reopen(run: &Run, cut: &Cut, image: Vec<u8>) -> Result<Found, String> {
    let (store, cache) = DurableStore::open_on(Disk::holding(image), || {}, run::config())
        .map_err(|err| format!("the store did not open: {err}"))?;
    let store = Arc::new(store);
    let registry = Registry::new(cache, store.clone(), store);
    let found = check(run, cut, &registry).await;
    registry
        .close()
        .await
        .map_err(|err| format!("the store did not close: {err}"))?;
    found
}

async fn check(run: &Run, cut: &Cut, registry: &Registry) -> Result<Found, String> {
    let before = |calls: usize| calls <= cut.after;
    let version = registry.version();
    let acked = run
        .pod_acks
        .iter()
        .filter(|(calls, _)| before(*calls))
        .map(|&(_, version)| version)
        .max()
        .unwrap_or(0);
    if version < acked {
        return Err(format!(
            "the store is at version {version}; version {acked} was acknowledged"
        ));
    }
    if version > run.changes.len() as u64 {
        return Err(format!(
            "the store is at version {version}; the run made {}",
            run.changes.len()
        ));
    }
    let mut found = Found {
        version,
        lines: 0,
        acknowledged: run
            .pod_acks
            .iter()
            .filter(|(calls, _)| before(*calls))
            .count()
            + run
                .upload_acks
                .iter()
                .filter(|(calls, ..)| before(*calls))
                .count(),
    };

    // Exactly the run's pods at `version`.
    let mut expected = BTreeMap::new();
    for change in run.changes.range(..=version).map(|(_, pod)| pod) {
        let key = (change.namespace.clone(), change.name.clone());
        if change.deleted {
            expected.remove(&key);
        } else {
            expected.insert(key, (change.resource_version, change.replicas));
        }
    }
    let fresh = registry.fresh(0).await.map_err(|err| err.to_string())?;
    let list = fresh.list(&PodSelector::All);
    let held: BTreeMap<_, _> = list
        .pods
        .iter()
        .map(|pod| {
            (
                (pod.namespace.clone(), pod.name.clone()),
                (pod.resource_version, pod.replicas),
            )
        })
        .collect();
    if held != expected {
        return Err(format!(
            "at version {version} the store holds {held:?}, the run had {expected:?}"
        ));
    }

    // The history kept replays the run's newest changes.
    if version >= 2 {
        let from = version - (HISTORY as u64).min(version - 1);
        let mut watcher = fresh
            .watch(PodSelector::All, from)
            .map_err(|err| format!("a watch from {from} (store at {version}): {err}"))?;
        for expected in run.changes.range(from + 1..=version).map(|(_, pod)| pod) {
            match watcher.try_next_up_to(version) {
                Some(Ok(change)) if change == *expected => {}
                other => {
                    return Err(format!(
                        "the history from {from} gave {other:?} where the run had {expected:?}"
                    ));
                }
            }
        }
    }

    for (key, appended) in &run.lines {
        if expected.contains_key(&(key.namespace.clone(), key.name.clone())) {
            found.lines += check_log(run, cut, &fresh, key, appended)?;
        }
    }

    // Versions go on from where the store is, never back.
    let next = registry
        .apply(run::apply(&PodKey::new(NAMESPACE, "after"), "Running", 1))
        .await
        .map_err(|err| format!("a write after reopening failed: {err}"))?;
    if next.resource_version != version + 1 {
        return Err(format!(
            "the write after reopening at {version} took version {}",
            next.resource_version
        ));
    }
    Ok(found)
}

/// Checks one pod's log; answers the number of its newest line.
fn check_log(
    run: &Run,
    cut: &Cut,
    fresh: &Fresh<'_>,
    key: &PodKey,
    appended: &[String],
) -> Result<u64, String> {
    let log = fresh
        .log(key)
        .map_err(|err| format!("{key:?} has no log: {err}"))?;
    let end = log.end_cursor();
    let mut lines = Vec::new();
    let mut next = 1;
    let mut first = None;
    while next <= end {
        let slice = log.read(next);
        if slice.batch.lines.is_empty() {
            break;
        }
        first.get_or_insert(slice.batch.first_line);
        lines.extend(slice.batch.lines);
        next = slice.next;
    }
    let first = first.unwrap_or(end + 1);
    let numbered = (first..=end).zip(&lines);
    if lines.len() as u64 != end + 1 - first {
        return Err(format!(
            "{key:?}: lines {first}..={end} held as {} lines",
            lines.len()
        ));
    }
    for (number, line) in numbered {
        if appended.get(number as usize - 1) != Some(line) {
            return Err(format!(
                "{key:?}: line {number} is {line:?}; the run appended {:?}",
                appended.get(number as usize - 1)
            ));
        }
    }
    let acked = run
        .upload_acks
        .iter()
        .filter(|(calls, pod, _)| *calls <= cut.after && pod == key)
        .map(|&(_, _, line)| line)
        .max()
        .unwrap_or(0);
    if end < acked {
        return Err(format!(
            "{key:?}: the log ends at line {end}; line {acked} was acknowledged"
        ));
    }
    let bytes: usize = lines.iter().map(|line| line_cost(line)).sum();
    if first > 1 && bytes > LOG_BYTES_PER_POD {
        return Err(format!(
            "{key:?}: {bytes} bytes kept from line {first}, over the limit of {LOG_BYTES_PER_POD}"
        ));
    }
    Ok(end)
}
