//! The index on its own: versions, batches, lists, conflicts, the history.

use super::*;

fn apply(index: &Index, ns: &str, name: &str, replicas: i32) -> Arc<Pod> {
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
    index.publish(batch);
    pod
}

#[test]
fn versions_increase_by_one_per_change() {
    let index = Index::new(StoreConfig::default());
    assert_eq!(apply(&index, "a", "x", 1).resource_version, 1);
    assert_eq!(apply(&index, "a", "x", 2).resource_version, 2);
    let mut batch = index.batch();
    let gone = index
        .plan_delete(&mut batch, PodKey::new("a", "x"))
        .unwrap();
    index.publish(batch);
    assert_eq!((gone.resource_version, gone.deleted), (3, true));
    assert_eq!(index.version(), 3);
    assert!(index.list(None).pods.is_empty());
}

#[test]
fn a_batch_sees_its_own_changes_and_nothing_before_publishing() {
    let index = Index::new(StoreConfig::default());
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
    assert!(index.list(None).pods.is_empty(), "not published yet");
    assert!(index.log(&key).is_err());

    index.publish(batch);
    assert_eq!(index.list(None).pods[0].replicas, 2);
    assert_eq!(index.log(&key).unwrap().end_cursor(), 1);
}

#[test]
fn list_is_sorted_and_filtered() {
    let index = Index::new(StoreConfig::default());
    for (ns, name) in [("b", "z"), ("a", "y"), ("b", "a"), ("ab", "c")] {
        apply(&index, ns, name, 1);
    }
    let names = |list: PodList| {
        list.pods
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(index.list(None)), ["a/y", "ab/c", "b/a", "b/z"]);
    assert_eq!(names(index.list(Some("b"))), ["b/a", "b/z"]);
    assert_eq!(names(index.list(Some("a"))), ["a/y"]);
}

#[test]
fn conflicts_change_nothing() {
    let index = Index::new(StoreConfig::default());
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
    let index = Index::new(StoreConfig {
        history: 3,
        ..StoreConfig::default()
    });
    for replicas in 0..5 {
        apply(&index, "a", "x", replicas);
    }
    // Versions 3, 4 and 5 are retained: continuing from 2..=5 is possible.
    assert!(index.watch(None, 1).is_err());
    assert!(index.watch(None, 2).is_ok());
    assert!(index.watch(None, 5).is_ok());
    assert!(index.watch(None, 6).is_err());
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
    let index = Index::restore(
        StoreConfig::default(),
        Restored {
            pods: vec![change("x", 10), change("y", 14), change("z", 20)],
            version: 20,
            history: vec![change("x", 10), change("y", 14), change("z", 20)],
            continues_from: 7,
        },
    );
    let backlog = |from: u64| -> Vec<u64> {
        let mut watcher = index.watch(None, from).unwrap();
        std::iter::from_fn(|| watcher.try_next_up_to(u64::MAX))
            .map(|pod| pod.unwrap().resource_version)
            .collect()
    };
    assert_eq!(backlog(7), [10, 14, 20]);
    assert_eq!(backlog(12), [14, 20]);
    assert_eq!(backlog(14), [20]);
    assert_eq!(backlog(20), Vec::<u64>::new());
    assert!(index.watch(None, 6).is_err());
    assert!(index.watch(None, 21).is_err());
}
