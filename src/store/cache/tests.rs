//! The cache on its own: versions, batches, lists, conflicts, the history.

use std::sync::Arc;

use super::*;
use crate::contract::Pod;
use crate::domain::{ApplyPod, PodKey, PodSelector};
use crate::store::config::StoreConfig;
use crate::store::error::StoreError;
use crate::store::list::{ListPosition, PodList};
use crate::store::watcher::WatchEnd;

fn apply(index: &WatchCache, ns: &str, name: &str, replicas: i32) -> Arc<Pod> {
    let mut batch = index.batch();
    let pod = index
        .plan_apply(
            &mut batch,
            ApplyPod {
                key: PodKey::new(ns, name),
                status: "Running".into(),
                replicas,
                expected_version: None,
            },
        )
        .unwrap();
    index.publish_batch(batch);
    pod
}

#[test]
fn versions_increase_by_one_per_change() {
    let index = WatchCache::new(StoreConfig::default());
    assert_eq!(apply(&index, "a", "x", 1).resource_version, 1);
    assert_eq!(apply(&index, "a", "x", 2).resource_version, 2);
    let mut batch = index.batch();
    let gone = index
        .plan_delete(&mut batch, PodKey::new("a", "x"))
        .unwrap();
    index.publish_batch(batch);
    assert_eq!((gone.resource_version, gone.deleted), (3, true));
    assert_eq!(index.version(), 3);
    assert!(index.list(&PodSelector::All).pods.is_empty());
}

#[test]
fn a_batch_sees_its_own_changes_and_nothing_before_publishing() {
    let index = WatchCache::new(StoreConfig::default());
    let mut batch = index.batch();
    let key = PodKey::new("a", "x");
    let created = index
        .plan_apply(
            &mut batch,
            ApplyPod {
                key: key.clone(),
                status: "Running".into(),
                replicas: 1,
                expected_version: None,
            },
        )
        .unwrap();
    let updated = index.plan_apply(
        &mut batch,
        ApplyPod {
            key: key.clone(),
            status: "Running".into(),
            replicas: 2,
            expected_version: Some(created.resource_version),
        },
    );
    assert_eq!(updated.unwrap().resource_version, 2);
    index
        .plan_append(&mut batch, key.clone(), vec!["hello".into()])
        .unwrap();
    assert!(
        index.list(&PodSelector::All).pods.is_empty(),
        "not published yet"
    );
    assert!(index.log(&key).is_err());

    index.publish_batch(batch);
    assert_eq!(index.list(&PodSelector::All).pods[0].replicas, 2);
    assert_eq!(index.log(&key).unwrap().end_cursor(), 1);
}

#[test]
fn list_is_sorted_and_filtered() {
    let index = WatchCache::new(StoreConfig::default());
    for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("ab", "c")] {
        apply(&index, ns, name, 1);
    }
    let names = |list: PodList| {
        list.pods
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(index.list(&PodSelector::All)),
        ["a/y", "ab/c", "b/a", "b/z"]
    );
    assert_eq!(
        names(index.list(&PodSelector::Namespace("b".into()))),
        ["b/a", "b/z"]
    );
    assert_eq!(
        names(index.list(&PodSelector::Namespace("a".into()))),
        ["a/y"]
    );
    let one = |ns: &str, name: &str| PodSelector::Pod(PodKey::new(ns, name));
    assert_eq!(names(index.list(&one("b", "a"))), ["b/a"]);
    assert_eq!(names(index.list(&one("ab", "c"))), ["ab/c"]);
    let missing = index.list(&one("a", "z"));
    assert!(missing.pods.is_empty());
    assert_eq!(missing.version, index.version(), "at the current version");
}

#[tokio::test]
async fn a_watcher_of_one_pod_gets_its_changes_and_the_versions_of_the_rest() {
    let index = WatchCache::new(StoreConfig::default());
    apply(&index, "a", "x", 1); // 1
    apply(&index, "a", "y", 1); // 2
    let x = PodSelector::Pod(PodKey::new("a", "x"));
    let mut snapshot = index.watch(x.clone(), 0).unwrap();
    let mut resumed = index.watch(x, 1).unwrap();
    apply(&index, "a", "y", 2); // 3: another pod of the namespace
    apply(&index, "b", "x", 2); // 4: the same name in another namespace
    delete(&index, "a", "x"); // 5
    apply(&index, "a", "x", 3); // 6: created again
    for (watcher, expected) in [
        (&mut snapshot, &[(1, false), (5, true), (6, false)][..]),
        (&mut resumed, &[(5, true), (6, false)][..]),
    ] {
        for &(version, deleted) in expected {
            let pod = watcher.next().await.unwrap();
            assert_eq!(
                (pod.namespace.as_str(), pod.name.as_str()),
                ("a", "x"),
                "only the pod"
            );
            assert_eq!((pod.resource_version, pod.deleted), (version, deleted));
        }
    }
    apply(&index, "a", "y", 3); // 7: not the pod, but the watch has seen it
    assert!(resumed.try_next_up_to(7).is_none());
    assert_eq!(
        resumed.caught_up(),
        Some(7),
        "a bookmark carries the cache's version"
    );
}

#[test]
fn conflicts_change_nothing() {
    let index = WatchCache::new(StoreConfig::default());
    apply(&index, "a", "x", 1);
    let mut batch = index.batch();
    let err = index
        .plan_apply(
            &mut batch,
            ApplyPod {
                key: PodKey::new("a", "x"),
                status: "Failed".into(),
                replicas: 0,
                expected_version: Some(7),
            },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::Conflict {
            current: Some(1),
            ..
        }
    ));
    assert!(batch.is_empty());
}

#[test]
fn watch_range_follows_the_history() {
    let index = WatchCache::new(StoreConfig {
        history: 3,
        ..StoreConfig::default()
    });
    for replicas in 0..5 {
        apply(&index, "a", "x", replicas);
    }
    // Versions 3, 4 and 5 are retained: continuing from 2..=5 is possible.
    assert!(index.watch(PodSelector::All, 1).is_err());
    assert!(index.watch(PodSelector::All, 2).is_ok());
    assert!(index.watch(PodSelector::All, 5).is_ok());
    assert!(index.watch(PodSelector::All, 6).is_err());
}

#[test]
fn a_time_window_keeps_every_recent_change_beyond_the_count() {
    let index = WatchCache::new(StoreConfig {
        history: 3,
        history_window: std::time::Duration::from_secs(60),
        ..StoreConfig::default()
    });
    for replicas in 0..50 {
        apply(&index, "a", "x", replicas);
    }
    // All 50 were published within the last minute: all are kept, and a
    // watch resumes from the very first version.
    assert!(index.watch(PodSelector::All, 0).is_ok());
    assert_eq!(
        index
            .watch(PodSelector::All, 1)
            .map(|w| w.last_version())
            .ok(),
        Some(1)
    );
    assert_eq!(index.kept_for_window(), Some(1));
    let counted = WatchCache::new(StoreConfig {
        history: 3,
        ..StoreConfig::default()
    });
    assert_eq!(counted.kept_for_window(), None, "no window, no floor");
}

#[test]
fn a_history_with_gaps_between_versions_resumes_by_version() {
    // As a cluster store's would be: versions increase, with gaps.
    let change = |name: &str, version: u64| Pod {
        name: name.into(),
        namespace: "a".into(),
        status: "Running".into(),
        replicas: 1,
        resource_version: version,
        deleted: false,
        bookmark: false,
    };
    let index = WatchCache::restore(
        StoreConfig::default(),
        Restored {
            pods: vec![change("x", 10), change("y", 14), change("z", 20)],
            version: 20,
            history: vec![change("x", 10), change("y", 14), change("z", 20)],
            continues_from: 7,
        },
    );
    let backlog = |from: u64| -> Vec<u64> {
        let mut watcher = index.watch(PodSelector::All, from).unwrap();
        std::iter::from_fn(|| watcher.try_next_up_to(u64::MAX))
            .map(|pod| pod.unwrap().resource_version)
            .collect()
    };
    assert_eq!(backlog(7), [10, 14, 20]);
    assert_eq!(backlog(12), [14, 20]);
    assert_eq!(backlog(14), [20]);
    assert_eq!(backlog(20), Vec::<u64>::new());
    assert!(index.watch(PodSelector::All, 6).is_err());
    assert!(index.watch(PodSelector::All, 21).is_err());
}

fn delete(index: &WatchCache, ns: &str, name: &str) {
    let mut batch = index.batch();
    if index.plan_delete(&mut batch, PodKey::new(ns, name)).is_ok() {
        index.publish_batch(batch);
    }
}

/// Pages through a list, letting `between` write before every page.
fn page_through(
    index: &WatchCache,
    namespace: Option<&str>,
    limit: usize,
    mut between: impl FnMut(),
) -> Result<(Vec<Arc<Pod>>, u64), StoreError> {
    let mut page = index.list_page(namespace, None, limit)?;
    let version = page.version;
    let mut pods = Vec::new();
    loop {
        assert!(page.pods.len() <= limit);
        assert_eq!(
            page.version, version,
            "every page reports the first page's version"
        );
        pods.extend(page.pods);
        let Some(next) = page.next else {
            return Ok((pods, version));
        };
        between();
        page = index.list_page(namespace, Some(&next), limit)?;
    }
}

#[test]
fn pages_are_the_list_at_the_first_pages_version_whatever_is_written_meanwhile() {
    let index = WatchCache::new(StoreConfig::default());
    let mut rng = fastrand::Rng::with_seed(11);
    let namespaces = ["a", "b", "c"];
    let write = |rng: &mut fastrand::Rng| {
        let ns = namespaces[rng.usize(..namespaces.len())];
        let name = format!("p{}", rng.usize(..40));
        if rng.u8(..4) == 0 {
            delete(&index, ns, &name);
        } else {
            apply(&index, ns, &name, rng.i32(0..100));
        }
    };
    for _ in 0..200 {
        write(&mut rng);
    }
    for round in 0..300 {
        let namespace = [None, Some("a"), Some("b"), Some("zz")][round % 4];
        let limit = 1 + round % 7;
        let expected = index.list(&PodSelector::namespace(namespace.map(str::to_owned)));
        let writes = rng.usize(..6);
        let mut writer = rng.clone();
        let (pods, version) = page_through(&index, namespace, limit, || {
            for _ in 0..writes {
                write(&mut writer);
            }
        })
        .unwrap();
        rng.u64(..);
        assert_eq!(version, expected.version);
        assert_eq!(pods, expected.pods, "round {round}");
    }
}

#[test]
fn the_last_page_has_no_next_and_no_page_is_empty() {
    let index = WatchCache::new(StoreConfig::default());
    for name in ["p1", "p2", "p3", "p4"] {
        apply(&index, "a", name, 1);
    }
    let first = index.list_page(None, None, 2).unwrap();
    let next = first.next.expect("a second page");
    let second = index.list_page(None, Some(&next), 2).unwrap();
    assert_eq!(second.pods.len(), 2);
    assert!(
        second.next.is_none(),
        "an exact fit ends without an empty page"
    );
    let whole = index.list_page(None, None, 10).unwrap();
    assert_eq!((whole.pods.len(), whole.next), (4, None));
}

#[test]
fn a_list_expires_when_the_history_moves_past_its_version() {
    let index = WatchCache::new(StoreConfig {
        history: 5,
        ..StoreConfig::default()
    });
    for name in ["p1", "p2", "p3"] {
        apply(&index, "a", name, 1);
    }
    let next = index.list_page(None, None, 1).unwrap().next.unwrap();
    for replicas in 0..5 {
        apply(&index, "a", "p3", replicas);
    }
    // Five changes later the history still holds every change after it.
    let page = index.list_page(None, Some(&next), 1).unwrap();
    assert_eq!(page.pods[0].name, "p2");
    apply(&index, "a", "p3", 9);
    assert_eq!(
        index.list_page(None, Some(&next), 1).unwrap_err(),
        StoreError::ListExpired {
            version: 3,
            oldest: Some(4),
        }
    );
}

#[test]
fn a_list_of_another_life_or_from_the_future_is_not_continued() {
    let index = WatchCache::new(StoreConfig::default());
    apply(&index, "a", "p1", 1);
    apply(&index, "a", "p2", 1);
    let next = index.list_page(None, None, 1).unwrap().next.unwrap();
    let other = WatchCache::new(StoreConfig::default());
    apply(&other, "a", "p1", 1);
    apply(&other, "a", "p2", 1);
    let expired = StoreError::ListExpired {
        version: 2,
        oldest: None,
    };
    assert_eq!(other.list_page(None, Some(&next), 1).unwrap_err(), expired);
    let future = ListPosition {
        version: 3,
        ..next.clone()
    };
    assert_eq!(
        index.list_page(None, Some(&future), 1).unwrap_err(),
        StoreError::ListExpired {
            version: 3,
            oldest: None,
        }
    );
    assert!(index.list_page(None, Some(&next), 1).is_ok());
}

#[test]
fn a_restored_index_continues_lists_only_from_its_restored_version() {
    let pod = |name: &str, version| Pod {
        name: name.into(),
        namespace: "a".into(),
        status: "Running".into(),
        replicas: 1,
        resource_version: version,
        deleted: false,
        bookmark: false,
    };
    let index = WatchCache::restore(
        StoreConfig::default(),
        Restored {
            pods: vec![pod("p1", 1), pod("p2", 2)],
            version: 2,
            history: vec![pod("p1", 1), pod("p2", 2)],
            continues_from: 0,
        },
    );
    let next = index.list_page(None, None, 1).unwrap().next.unwrap();
    apply(&index, "a", "p2", 5);
    let page = index.list_page(None, Some(&next), 1).unwrap();
    assert_eq!(
        page.pods[0].resource_version, 2,
        "p2 as it was at version 2"
    );
    let before = ListPosition { version: 1, ..next };
    assert_eq!(
        index.list_page(None, Some(&before), 1).unwrap_err(),
        StoreError::ListExpired {
            version: 1,
            oldest: Some(2),
        }
    );
}

#[tokio::test]
async fn a_reset_ends_watchers_as_a_start_over_not_a_shutdown() {
    let index = WatchCache::new(StoreConfig::default());
    apply(&index, "a", "x", 1);
    let mut watcher = index.watch(PodSelector::All, 1).unwrap();
    let kept = Pod {
        name: "x".into(),
        namespace: "a".into(),
        resource_version: 7,
        ..Pod::default()
    };
    index.observe(Observed::StartOver {
        pods: vec![(kept, 7)],
        version: 9,
    });
    assert_eq!(
        watcher.next().await,
        Err(WatchEnd::StartedOver {
            last_version: 1,
            at: 9
        })
    );
    // A watcher of the new state is not ended by that start-over.
    let mut later = index.watch(PodSelector::All, 0).unwrap();
    assert_eq!(later.next().await.map(|pod| pod.resource_version), Ok(7));
}
