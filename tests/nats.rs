//! Logs on NATS JetStream across stateless replicas (`--nats-url`), on real
//! clusters: the pods in the shared 3-member etcd cluster, the logs on a
//! 3-node NATS cluster (the test binary's shared one, or a test's own for
//! faults). The log contract itself, on every store and on NATS, is
//! tests/logs.rs. Its modules, in the same test binary (one build and link):
//! `cluster` the test harness's own cluster, and `power_cut` what a power cut of every
//! node loses (a measurement, opt-in).

#[path = "nats/cluster.rs"]
mod cluster;
mod common;
#[path = "nats/power_cut.rs"]
mod power_cut;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::etcd::{EtcdCluster, unique_prefix};
use common::nats::{NatsCluster, unique_stream};
use common::process::{ClientProcess, ServerProcess};
use common::{Session, TestServer, etcd_registry, open, pod, within};
use pod_service::contract::{GetLogsRequest, LogChunk, PodServiceClient};
use pod_service::server::ServerConfig;
use pod_service::store::{NatsConfig, Storage, StoreConfig};
use tonic::Code;
use tonic::transport::Channel;

/// `n` in-process replicas of one registry (a fresh etcd prefix), their
/// logs in one stream of `nats`.
async fn replicas(nats: &NatsCluster, n: usize) -> Vec<TestServer> {
    let prefix = unique_prefix();
    let stream = unique_stream();
    let mut servers = Vec::new();
    for _ in 0..n {
        let nats = NatsConfig {
            stream: stream.clone(),
            replicas: Some(3),
            ..NatsConfig::new(nats.urls())
        };
        let storage = Storage::Etcd {
            etcd: etcd_registry(&prefix),
            nats: Some(nats),
        };
        let registry = open(storage, StoreConfig::default()).await;
        servers.push(TestServer::start_on(Arc::new(registry), ServerConfig::default()).await);
    }
    servers
}

fn chunk(pod: &str, lines: Vec<String>) -> LogChunk {
    LogChunk {
        namespace: "default".into(),
        pod: pod.into(),
        lines,
        first_line: 0,
    }
}

fn request(pod: &str, follow: bool) -> GetLogsRequest {
    GetLogsRequest {
        namespace: "default".into(),
        pod: pod.into(),
        follow,
        ..GetLogsRequest::default()
    }
}

/// Every stored line of the pod, with its number.
async fn numbered_log(client: &mut PodServiceClient<Channel>, pod: &str) -> Vec<(u64, String)> {
    let mut stream = client
        .get_logs(request(pod, false))
        .await
        .unwrap()
        .into_inner();
    let mut lines = Vec::new();
    while let Some(chunk) = within("log lines", stream.message()).await.unwrap() {
        lines.extend((chunk.first_line..).zip(chunk.lines));
    }
    lines
}

/// Upload through A while B and C follow: each follower gets every line
/// once, in order, numbered from 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_through_one_replica_is_followed_on_the_others() {
    let servers = replicas(NatsCluster::shared(), 3).await;
    servers[0].apply("default", "web", "Running", 1).await;
    let mut followers = Vec::new();
    for server in &servers[1..] {
        let mut client = server.client().await;
        followers.push(
            client
                .get_logs(request("web", true))
                .await
                .unwrap()
                .into_inner(),
        );
    }
    let sent: Vec<String> = (1..=5_000).map(|i| format!("line {i}")).collect();
    let mut uploader = servers[0].client().await;
    let chunks: Vec<LogChunk> = sent.chunks(100).map(|c| chunk("web", c.to_vec())).collect();
    let summary = uploader
        .upload_logs(tokio_stream::iter(chunks))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.lines, 5_000);
    for follower in &mut followers {
        let mut got: Vec<(u64, String)> = Vec::new();
        while got.len() < sent.len() {
            let chunk = within("followed lines", follower.message())
                .await
                .unwrap()
                .expect("the follow goes on");
            got.extend((chunk.first_line..).zip(chunk.lines));
        }
        let expected: Vec<(u64, String)> = (1..).zip(sent.clone()).collect();
        assert_eq!(got, expected);
    }
    // The delete through A ends the follows on B and C.
    servers[0].delete("default", "web").await;
    for follower in &mut followers {
        let end = within("the follow to end", follower.message()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
    }
}

/// Two replicas uploading to one pod at once never give two lines one
/// number: the log holds every line once, numbered 1..N without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_to_one_pod_through_two_replicas_are_numbered_once() {
    let servers = replicas(NatsCluster::shared(), 2).await;
    servers[0].apply("default", "web", "Running", 1).await;
    let mut tasks = Vec::new();
    for (which, server) in servers.iter().enumerate() {
        let mut client = server.client().await;
        tasks.push(tokio::spawn(async move {
            for round in 0..50 {
                let lines = (0..10).map(|i| format!("{which}-{round}-{i}")).collect();
                client
                    .upload_logs(tokio_stream::iter([chunk("web", lines)]))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut client = servers[1].client().await;
    let log = numbered_log(&mut client, "web").await;
    let numbers: Vec<u64> = log.iter().map(|(n, _)| *n).collect();
    assert_eq!(numbers, (1..=1_000).collect::<Vec<_>>());
    let distinct: HashSet<&String> = log.iter().map(|(_, line)| line).collect();
    assert_eq!(distinct.len(), 1_000, "every line once");
    // Each upload's lines are consecutive: a chunk is one message.
    for run in log.chunks(10) {
        let prefix = |line: &str| line.rsplit_once('-').map(|(p, _)| p.to_owned());
        assert!(
            run.iter().all(|(_, l)| prefix(l) == prefix(&run[0].1)),
            "{run:?}"
        );
    }
}

/// `pod-logs --follow --addr A,B,C` goes on after a `kill -9` of the
/// replica it reads from: every line printed once, none missed, checked
/// by number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_logs_follow_rides_through_a_killed_replica() {
    let nats = NatsCluster::shared();
    let endpoints = EtcdCluster::shared().endpoints_arg();
    let prefix = unique_prefix();
    let stream = unique_stream();
    let urls = nats.urls_arg();
    let args = [
        "--nats-url",
        urls.as_str(),
        "--nats-stream",
        stream.as_str(),
    ];
    let mut processes = Vec::new();
    for _ in 0..3 {
        processes
            .push(ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &args).await);
    }
    let addrs: Vec<String> = processes.iter().map(ServerProcess::url).collect();
    let mut uploader = PodServiceClient::connect(addrs[2].clone()).await.unwrap();
    let ack = Session::open(&mut uploader)
        .await
        .apply(pod("production", "web", "Running", 1))
        .await;
    assert!(ack.pod.is_some(), "{ack:?}");
    let upload = async |uploader: &mut PodServiceClient<Channel>, from: u64, to: u64| {
        let lines = (from..to).map(|i| format!("line {i}")).collect();
        uploader
            .upload_logs(tokio_stream::iter([LogChunk {
                namespace: "production".into(),
                pod: "web".into(),
                lines,
                first_line: 0,
            }]))
            .await
            .unwrap();
    };
    upload(&mut uploader, 1, 101).await;
    let mut follow = ClientProcess::of(
        "pod-logs",
        &[
            "--addr",
            &addrs.join(","),
            "-n",
            "production",
            "--pod",
            "web",
            "--follow",
            "--numbers",
        ],
    );
    let mut printed = Vec::new();
    let next = async |printed: &mut Vec<u64>, follow: &mut ClientProcess| {
        let (number, text) = follow.next_numbered_line().await;
        assert_eq!(text, format!("line {number}"));
        printed.push(number);
    };
    while printed.len() < 100 {
        next(&mut printed, &mut follow).await;
    }
    // pod-logs reads from the first address: kill it, mid-upload.
    processes.remove(0).kill().await;
    for start in (101..1_001).step_by(100) {
        upload(&mut uploader, start, start + 100).await;
    }
    while printed.len() < 1_000 {
        next(&mut printed, &mut follow).await;
    }
    assert_eq!(
        printed,
        (1..=1_000).collect::<Vec<_>>(),
        "every line once, in order"
    );
}

/// One NATS node killed while 4 streams upload: uploads go on meanwhile,
/// and every acknowledged upload is in its log, whole and once, after the
/// node is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nats_node_loses_no_acknowledged_upload() {
    let nats = NatsCluster::start(3).await;
    let servers = replicas(&nats, 1).await;
    let server = &servers[0];
    for i in 0..4 {
        server
            .apply("default", &format!("web-{i}"), "Running", 1)
            .await;
    }
    let killed = Arc::new(AtomicBool::new(false));
    // A permit per stream once it has 5 uploads acknowledged.
    let going = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for i in 0..4 {
        let mut client = server.client().await;
        let killed = Arc::clone(&killed);
        let going = Arc::clone(&going);
        tasks.push(tokio::spawn(async move {
            let pod = format!("web-{i}");
            let (mut acknowledged, mut failed, mut after_kill) = (Vec::new(), 0, 0);
            let mut round = 0;
            // Until 20 uploads were acknowledged after the kill.
            while after_kill < 20 {
                let lines: Vec<String> = (0..20).map(|n| format!("{pod} {round} {n}")).collect();
                let chunks = lines
                    .chunks(5)
                    .map(|c| chunk(&pod, c.to_vec()))
                    .collect::<Vec<_>>();
                let was_killed = killed.load(Ordering::SeqCst);
                match within("an upload", client.upload_logs(tokio_stream::iter(chunks))).await {
                    Ok(_) => {
                        acknowledged.push(lines);
                        after_kill += usize::from(was_killed);
                        if acknowledged.len() == 5 {
                            going.add_permits(1);
                        }
                    }
                    Err(status) => {
                        assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
                        failed += 1;
                    }
                }
                round += 1;
            }
            (pod, acknowledged, failed)
        }));
    }
    // Once every stream has uploads acknowledged, a node goes.
    let permits = within("uploads before the kill", going.acquire_many(4)).await;
    drop(permits);
    nats.kill(0);
    killed.store(true, Ordering::SeqCst);
    let mut results = Vec::new();
    for task in tasks {
        results.push(within("the uploads to go on", task).await.unwrap());
    }
    nats.restart(0).await;
    let mut client = server.client().await;
    for (pod, acknowledged, failed) in results {
        let log: Vec<String> = numbered_log(&mut client, &pod)
            .await
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        let distinct: HashSet<&String> = log.iter().collect();
        assert_eq!(distinct.len(), log.len(), "{pod}: no line twice");
        for lines in &acknowledged {
            let at = log
                .iter()
                .position(|line| *line == lines[0])
                .unwrap_or_else(|| panic!("{pod}: acknowledged upload {:?} is missing", lines[0]));
            assert_eq!(&log[at..at + lines.len()], lines.as_slice(), "{pod}: whole");
        }
        eprintln!(
            "{pod}: {} uploads acknowledged, {failed} failed",
            acknowledged.len()
        );
    }
}

/// With two of three NATS nodes gone, uploads fail with a clear
/// UNAVAILABLE, and the stored lines can still be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_uploads_fail_and_reads_go_on() {
    let nats = NatsCluster::start(3).await;
    let servers = replicas(&nats, 1).await;
    let server = &servers[0];
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    let lines: Vec<String> = (1..=50).map(|i| format!("line {i}")).collect();
    client
        .upload_logs(tokio_stream::iter([chunk("web", lines.clone())]))
        .await
        .unwrap();
    nats.kill(1);
    nats.kill(2);
    let status = within(
        "the upload to fail",
        client.upload_logs(tokio_stream::iter([chunk("web", vec!["lost".into()])])),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(
        status.message().contains("NATS JetStream")
            && status
                .message()
                .contains("0 lines stored before this error"),
        "{}",
        status.message()
    );
    let log = numbered_log(&mut client, "web").await;
    let expected: Vec<(u64, String)> = (1..).zip(lines).collect();
    assert_eq!(log, expected, "the stored lines, read without a quorum");
}
