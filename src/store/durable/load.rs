//! Loading a database into a watch cache, checking as it goes that every record
//! is one the store could have written and that they agree with each other.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable};

use super::committer::DiskLog;
use super::error::Corruption;
use super::records;
use super::schema::{HISTORY, LOGS, PODS, stored_version};
use crate::contract::Pod;
use crate::domain::PodKey;
use crate::store::cache::{Restored, WatchCache};
use crate::store::config::StoreConfig;
use crate::store::pod_log::line_cost;

/// Reads everything into a watch cache, with the on-disk layout of each log.
pub(super) fn load(
    db: &impl ReadableDatabase,
    config: StoreConfig,
) -> Result<(WatchCache, HashMap<PodKey, DiskLog>), Corruption> {
    let version = stored_version(db)?;
    let tx = db.begin_read()?;

    let mut pods = Vec::new();
    for row in tx.open_table(PODS)?.iter()? {
        let (key, value) = row?;
        let pod = records::decode_pod(value.value())?;
        let (ns, name) = key.value();
        if (ns, name) != (pod.namespace.as_str(), pod.name.as_str())
            || pod.deleted
            || pod.resource_version > version
        {
            return Err(Corruption::MisplacedPod(PodKey::new(ns, name)));
        }
        pods.push(pod);
    }

    // This store's versions are consecutive, so its history is too.
    let mut history: Vec<Pod> = Vec::new();
    for row in tx.open_table(HISTORY)?.iter()? {
        let (key, value) = row?;
        let pod = records::decode_pod(value.value())?;
        let expected = history.last().map(|p| p.resource_version + 1);
        if pod.resource_version != key.value() || expected.is_some_and(|v| v != key.value()) {
            return Err(Corruption::HistoryOutOfSequence(key.value()));
        }
        history.push(pod);
    }
    if let Some(last) = history.last()
        && last.resource_version != version
    {
        return Err(Corruption::HistoryEnd {
            last: last.resource_version,
            version,
        });
    }
    // A smaller limit than last time keeps only the newest changes.
    let excess = history.len().saturating_sub(config.history);
    history.drain(..excess);
    let continues_from = history
        .first()
        .map_or(version, |oldest| oldest.resource_version - 1);

    let cache = WatchCache::restore(
        config,
        Restored {
            pods,
            version,
            history,
            continues_from,
        },
    );
    let mut disk_logs: HashMap<PodKey, DiskLog> = HashMap::new();
    for row in tx.open_table(LOGS)?.iter()? {
        let (key, value) = row?;
        let (ns, name, first_line) = key.value();
        let key = PodKey::new(ns, name);
        let lines = records::decode_lines(value.value())?;
        let log = cache
            .log(&key)
            .map_err(|_| Corruption::OrphanLog(key.clone()))?;
        let bytes = lines.iter().map(|line| line_cost(line)).sum();
        disk_logs
            .entry(key)
            .or_default()
            .loaded(first_line, lines.len() as u64, bytes);
        // The key counts the pod's lines before the chunk.
        log.restore(first_line + 1, lines);
    }
    Ok((cache, disk_logs))
}
