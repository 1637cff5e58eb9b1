//! Several `pod-server` replicas over one real etcd cluster: one registry,
//! the same contract on every replica, and what survives faults.
//!
//! The semantic suites (list, watch, sync, ...) run on the etcd store too,
//! one replica each; this file is about what only several replicas show,
//! and its modules (one test binary, to build and link once) about the
//! rest: `faults` a cluster in trouble, `load_faults` faults under load,
//! `concurrency` many sessions on several replicas, `unconfirmed` writes
//! whose answer was lost, `rates` the requests a cluster's rates cost,
//! `tls` etcd over TLS with client certificates, and `cluster` the test
//! harness's own cluster. Replicas are in-process servers, each on an etcd
//! store of its own over the same prefix (the same code as `pod-server
//! --etcd-endpoints`), or real `pod-server` processes where a test kills
//! one. Tests that only need a registry of their own share the test
//! binary's cluster under a fresh prefix; tests that hurt etcd start a
//! cluster of their own.

#[path = "etcd/cluster.rs"]
mod cluster;
mod common;
#[path = "etcd/concurrency.rs"]
mod concurrency;
#[path = "etcd/faults.rs"]
mod faults;
#[path = "etcd/load_faults.rs"]
mod load_faults;
#[path = "etcd/rates.rs"]
mod rates;
#[path = "etcd/tls.rs"]
mod tls;
#[path = "etcd/unconfirmed.rs"]
mod unconfirmed;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use common::etcd::{EtcdCluster, unique_prefix};
use common::replicas::{
    AppliedVersion, assert_once_in_order, base64, etcd_watchers, http, list, open_seeded, replicas,
    watch_until,
};
use common::{Session, list_request, pod, within};
use pod_service::contract::PodServiceClient;
use pod_service::domain::PodSelector;
use pod_service::sample;
use pod_service::store::{Opened, StoreConfig};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_two_replicas_reach_watchers_on_the_others_once_in_order() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let (mut a, mut b, mut c) = (
        servers[0].client().await,
        servers[1].client().await,
        servers[2].client().await,
    );
    let (_, from) = list(&mut a, "").await;
    let on_b = b
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    let on_c = c
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();

    const EACH: i32 = 40;
    let write = |mut client: PodServiceClient<Channel>, name: &'static str| async move {
        let mut session = Session::open(&mut client).await;
        let mut versions = Vec::new();
        for i in 0..EACH {
            versions.push(
                session
                    .applied_version(pod("dev", name, "Running", i))
                    .await,
            );
        }
        versions
    };
    let (through_a, through_b) =
        tokio::join!(write(a.clone(), "from-a"), write(b.clone(), "from-b"));
    let expected: BTreeSet<u64> = through_a.iter().chain(&through_b).copied().collect();
    assert_eq!(
        expected.len(),
        2 * EACH as usize,
        "every ack its own version"
    );

    let (seen_b, seen_c) = tokio::join!(watch_until(on_b, &expected), watch_until(on_c, &expected));
    assert_once_in_order(&seen_b, &expected, "the watcher on B");
    assert_once_in_order(&seen_c, &expected, "the watcher on C");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_on_one_replica_right_after_an_ack_on_another_includes_it() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let mut a = servers[0].client().await;
    let mut c = servers[2].client().await;
    let mut session = Session::open(&mut a).await;
    for i in 0..50 {
        let acked = session
            .applied_version(pod("dev", &format!("p{i}"), "Running", i))
            .await;
        let (pods, version) = list(&mut c, "dev").await;
        assert!(
            version >= acked,
            "the list at {version} reflects the ack at {acked}"
        );
        let listed = pods.iter().find(|p| p.name == format!("p{i}"));
        assert_eq!(listed.map(|p| p.resource_version), Some(acked), "p{i} on C");
    }
}

/// A paged list begun on one replica goes on on the others, at the first
/// page's revision, whatever was written meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continue_token_from_one_replica_continues_on_the_others() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    for i in 0..30 {
        servers[0]
            .apply("dev", &format!("p{i:02}"), "Running", 1)
            .await;
    }
    let mut clients = Vec::new();
    for server in &servers {
        clients.push(server.client().await);
    }
    let (whole, _) = list(&mut clients[0], "dev").await;
    let mut token = String::new();
    let mut paged = Vec::new();
    let mut version = None;
    for page in 0.. {
        let answer = clients[page % 3]
            .list_pods(pod_service::contract::ListPodsRequest {
                namespace: "dev".into(),
                limit: 7,
                continue_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("page {page} on replica {}: {status:?}", page % 3))
            .into_inner();
        assert_eq!(
            *version.get_or_insert(answer.resource_version),
            answer.resource_version
        );
        paged.extend(answer.pods);
        // Meanwhile: a change and a new pod, which the pages must not show.
        servers[1]
            .apply("dev", &format!("p{page:02}"), "Failed", 9)
            .await;
        servers[2]
            .apply("dev", &format!("new-{page}"), "Running", 1)
            .await;
        if answer.continue_token.is_empty() {
            break;
        }
        token = answer.continue_token;
    }
    assert_eq!(
        paged, whole,
        "the pages together are the list at the first page's revision"
    );
}

/// Writers and listers on different replicas, concurrently: every list
/// includes every write acknowledged before the list began.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_reflects_every_write_acknowledged_before_it_began() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let clients = [
        servers[0].client().await,
        servers[1].client().await,
        servers[2].client().await,
    ];
    let started = Instant::now();
    // (ack time, pod name, version) for every write.
    let acks = Arc::new(std::sync::Mutex::new(Vec::<(Duration, String, u64)>::new()));
    let mut writers = Vec::new();
    for (w, client) in clients.iter().take(2).enumerate() {
        let (mut client, acks) = (client.clone(), Arc::clone(&acks));
        writers.push(tokio::spawn(async move {
            let mut session = Session::open(&mut client).await;
            for i in 0..60 {
                let name = format!("w{w}-{i}");
                let version = session
                    .applied_version(pod("dev", &name, "Running", 1))
                    .await;
                acks.lock()
                    .unwrap()
                    .push((started.elapsed(), name, version));
            }
        }));
    }
    let mut lists = Vec::new();
    for l in 0..3 {
        let mut client = clients[(l + 1) % 3].clone();
        lists.push(tokio::spawn(async move {
            let mut observed = Vec::new();
            for _ in 0..40 {
                let began = started.elapsed();
                let (pods, _) = list(&mut client, "dev").await;
                let names: HashSet<String> = pods.into_iter().map(|p| p.name).collect();
                observed.push((began, names));
            }
            observed
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    let mut checked = 0;
    for lister in lists {
        for (began, names) in lister.await.unwrap() {
            for (acked, name, version) in &acks {
                if *acked < began {
                    assert!(
                        names.contains(name),
                        "{name} (v{version}) was acknowledged at {acked:?}, before a list \
                         that began at {began:?}, but is not in it"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(
        checked > 100,
        "the lists overlapped the writes ({checked} checks)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_conditional_applies_through_different_replicas_have_one_winner() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 3).await;
    let mut sessions = Vec::new();
    for server in &servers {
        sessions.push(Session::open(&mut server.client().await).await);
    }
    let mut version = sessions[0]
        .applied_version(pod("dev", "contended", "Running", 0))
        .await;
    for round in 1..=20 {
        let attempts = sessions.iter_mut().enumerate().map(|(i, session)| {
            let mut edit = pod("dev", "contended", "Running", round * 10 + i as i32);
            edit.resource_version = version;
            session.apply(edit)
        });
        let acks = futures::future::join_all(attempts).await;
        let winners: Vec<_> = acks.iter().filter(|ack| ack.code == 0).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner: {acks:?}"
        );
        for ack in acks.iter().filter(|ack| ack.code != 0) {
            assert_eq!(ack.code, Code::Aborted as u32, "{}", ack.message);
        }
        let won = winners[0].pod.as_ref().expect("the stored pod");
        assert!(won.resource_version > version);
        version = won.resource_version;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_registry_gets_the_starting_pods_once_however_many_replicas_start_together() {
    let prefix = unique_prefix();
    let cluster = EtcdCluster::shared();
    let opening = (0..4).map(|_| {
        open_seeded(
            cluster,
            &prefix,
            StoreConfig::default(),
            sample::numbered(250).collect(),
        )
    });
    let stores: Vec<Opened> = futures::future::join_all(opening)
        .await
        .into_iter()
        .map(|store| store.expect("open"))
        .collect();
    let loaded: Vec<Option<usize>> = stores.iter().map(|opened| opened.seeded).collect();
    assert_eq!(
        loaded.iter().filter(|l| l.is_some()).count(),
        1,
        "one loader: {loaded:?}"
    );
    assert!(loaded.contains(&Some(250)));
    for opened in &stores {
        let fresh = opened.registry.fresh(0).await.expect("catch up");
        assert_eq!(
            fresh.list(&PodSelector::All).pods.len(),
            250,
            "every replica, every pod, once"
        );
    }
    // Opened again, it is not new.
    let again = open_seeded(
        cluster,
        &prefix,
        StoreConfig::default(),
        sample::sample().collect(),
    )
    .await
    .expect("open");
    assert_eq!(again.seeded, None);
    let fresh = again.registry.fresh(0).await.expect("catch up");
    assert_eq!(fresh.list(&PodSelector::All).pods.len(), 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_moved_to_another_replica_resumes_with_nothing_missed_or_repeated() {
    let prefix = unique_prefix();
    let mut servers = replicas(EtcdCluster::shared(), &prefix, 2).await;
    let mut writer = servers[1].client().await;
    let mut session = Session::open(&mut writer).await;
    let mut acked = BTreeSet::new();
    for i in 0..5 {
        acked.insert(
            session
                .applied_version(pod("dev", "web", "Running", i))
                .await,
        );
    }
    let mut a = servers[0].client().await;
    let (_, from) = list(&mut a, "").await;
    let mut stream = a
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        expected.insert(
            session
                .applied_version(pod("dev", "db", "Running", i))
                .await,
        );
    }
    // Read part of it on A, then lose A.
    let mut last = 0;
    for _ in 0..2 {
        let change = within("a change", stream.message()).await.unwrap().unwrap();
        last = change.resource_version;
    }
    servers[0].stop().await;
    for i in 0..5 {
        expected.insert(
            session
                .applied_version(pod("dev", "api", "Running", i))
                .await,
        );
    }
    let mut b = servers[1].client().await;
    let resumed = b
        .watch_pods(list_request("", last))
        .await
        .unwrap()
        .into_inner();
    let rest: BTreeSet<u64> = expected.iter().copied().filter(|v| *v > last).collect();
    let seen = watch_until(resumed, &rest).await;
    assert_once_in_order(&seen, &rest, "the resumed watch on B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_etcd_lacks_or_has_not_reached_are_out_of_range() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 1).await;
    let mut client = servers[0].client().await;
    let (_, now) = list(&mut client, "").await;
    let beyond = now + 1_000_000;
    let err = client
        .watch_pods(list_request("", beyond))
        .await
        .expect_err("a version from the future is refused");
    assert_eq!(err.code(), Code::OutOfRange, "{}", err.message());
    assert!(
        err.message().contains(&beyond.to_string()),
        "{}",
        err.message()
    );
}

/// A watch from a version just acknowledged on another replica waits for
/// this replica to reach it instead of refusing it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_a_version_acknowledged_elsewhere_is_waited_for() {
    let prefix = unique_prefix();
    let servers = replicas(EtcdCluster::shared(), &prefix, 2).await;
    let mut a = servers[0].client().await;
    let mut b = servers[1].client().await;
    let mut session = Session::open(&mut a).await;
    for i in 0..20 {
        let acked = session
            .applied_version(pod("dev", "web", "Running", i))
            .await;
        let mut stream = b
            .watch_pods(list_request("", acked))
            .await
            .unwrap_or_else(|status| panic!("a watch from {acked} on B: {status:?}"))
            .into_inner();
        let next = session
            .applied_version(pod("dev", "web", "Pending", i))
            .await;
        let change = within("the next change", stream.message())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(change.resource_version, next, "exactly the change after");
    }
}

/// A replica started after the writes replays etcd's history, so it can
/// resume a watch from before it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_started_later_resumes_watches_from_before_it_started() {
    let prefix = unique_prefix();
    let first = replicas(EtcdCluster::shared(), &prefix, 1).await;
    let from = first[0]
        .apply("dev", "web", "Running", 0)
        .await
        .resource_version;
    let mut expected = BTreeSet::new();
    for i in 1..=5 {
        expected.insert(
            first[0]
                .apply("dev", "web", "Running", i)
                .await
                .resource_version,
        );
    }
    expected.insert(first[0].delete("dev", "web").await.resource_version);
    let later = replicas(EtcdCluster::shared(), &prefix, 1).await;
    let mut client = later[0].client().await;
    let stream = client
        .watch_pods(list_request("", from))
        .await
        .unwrap()
        .into_inner();
    let seen = watch_until(stream, &expected).await;
    assert_once_in_order(&seen, &expected, "the later replica");
}

/// A loader that died half-way leaves pods but no registry: the next server
/// starts over, and what the dead one wrote is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_load_is_started_over() {
    let cluster = EtcdCluster::shared();
    let prefix = unique_prefix();
    for key in ["pods/dev,half-loaded", "revision"] {
        let body = format!(
            r#"{{"key":"{}","value":"{}"}}"#,
            base64(format!("{prefix}{key}").as_bytes()),
            base64(b"")
        );
        let put = http(&cluster.endpoint(0), "POST", "/v3/kv/put", &body).await;
        assert!(put.contains("200 OK"), "{put}");
    }
    let store = open_seeded(
        cluster,
        &prefix,
        StoreConfig::default(),
        sample::sample().collect(),
    )
    .await
    .expect("open");
    assert_eq!(store.seeded, Some(sample::SAMPLE_PODS.len()));
    let names: Vec<String> = store
        .registry
        .fresh(0)
        .await
        .expect("fresh")
        .list(&PodSelector::All)
        .pods
        .iter()
        .map(|p| p.name.clone())
        .collect();
    assert_eq!(names.len(), sample::SAMPLE_PODS.len(), "{names:?}");
    assert!(!names.contains(&"half-loaded".to_owned()), "{names:?}");
}

/// One etcd watch per replica, however many clients watch it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_watchers_cost_etcd_one_watch_per_replica() {
    let cluster = EtcdCluster::start(1).await;
    let prefix = unique_prefix();
    let servers = replicas(&cluster, &prefix, 2).await;
    let mut streams = Vec::new();
    for i in 0..1_000 {
        let mut client = servers[i % 2].client().await;
        streams.push(
            client
                .watch_pods(list_request("", 0))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    servers[0].await_watchers(500).await;
    servers[1].await_watchers(500).await;
    assert_eq!(
        etcd_watchers(&cluster).await,
        2,
        "one etcd watch per replica"
    );
}
