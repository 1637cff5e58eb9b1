//! Crash safety: `pod-server` is killed with SIGKILL in the middle of
//! concurrent sync sessions and uploads, again and again. After each
//! restart every acknowledged write is there, versions never go backwards,
//! and no log line is torn, duplicated or out of order.
//!
//! The normal suite runs a few rounds; `cargo test --test crash -- --ignored`
//! runs many more. The same rounds run with power cuts instead of SIGKILL
//! in `power_cut` (one test binary for both: each is a link of the crate).

mod common;
#[path = "crash/durable.rs"]
mod durable;
#[path = "crash/power_cut.rs"]
mod power_cut;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::ServerProcess;
use common::{Session, list_request, pod, within};
use pod_service::contract::{GetLogsRequest, LogChunk, PodServiceClient};
use tonic::transport::Channel;

const WRITERS: usize = 4;
const UPLOADERS: usize = 2;
const LINES_PER_UPLOAD: usize = 300;

/// What clients were told was stored.
#[derive(Default, Clone)]
struct Acked {
    /// Per pod: the version and replicas of its last acknowledged apply.
    pods: BTreeMap<String, (u64, i32)>,
    /// The highest version any ack carried.
    max_version: u64,
    /// Uploads that were started, and those acknowledged.
    started: HashSet<u64>,
    uploaded: HashSet<u64>,
    /// How many acks in this round (to decide when to kill).
    round_acks: usize,
    /// Set as the round's crash begins: from then on a write may fail (a
    /// power cut fails the server's I/O before it is killed).
    crashing: bool,
}

fn snapshot(acked: &Mutex<Acked>) -> Acked {
    acked.lock().unwrap().clone()
}

async fn connect(url: &str) -> Option<PodServiceClient<Channel>> {
    PodServiceClient::connect(url.to_owned()).await.ok()
}

/// Applies pods `w{writer}-{0..9}` one after another until the server dies.
async fn write_until_killed(url: String, writer: usize, acked: Arc<Mutex<Acked>>, mut next: i32) {
    let Some(mut client) = connect(&url).await else {
        return;
    };
    let (requests, outbound) = tokio::sync::mpsc::channel(1);
    let Ok(response) = client
        .sync_pods(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
    else {
        return;
    };
    let mut events = response.into_inner();
    loop {
        next += 1;
        let name = format!("w{writer}-{}", next % 10);
        let op =
            pod_service::contract::sync_request::Op::Apply(pod("crash", &name, "Running", next));
        let request = pod_service::contract::SyncRequest {
            id: next as u64,
            op: Some(op),
        };
        if requests.send(request).await.is_err() {
            return;
        }
        let Ok(Some(event)) = events.message().await else {
            return;
        };
        let Some(pod_service::contract::sync_event::Event::Ack(ack)) = event.event else {
            panic!("unsubscribed sessions get only acks");
        };
        let mut acked = acked.lock().unwrap();
        if ack.code != 0 {
            assert!(acked.crashing, "{}", ack.message);
            return;
        }
        let stored = ack.pod.expect("an ack carries the pod");
        acked
            .pods
            .insert(name, (stored.resource_version, stored.replicas));
        acked.max_version = acked.max_version.max(stored.resource_version);
        acked.round_acks += 1;
    }
}

/// Uploads numbered batches of lines to pod `up-{uploader}` until the server dies.
/// Upload ids are `(round * 100_000 + n) * UPLOADERS + uploader`: unique,
/// and each tells which pod it went to.
async fn upload_until_killed(url: String, round: usize, uploader: usize, acked: Arc<Mutex<Acked>>) {
    let Some(mut client) = connect(&url).await else {
        return;
    };
    for n in 0.. {
        let id = (round as u64 * 100_000 + n) * UPLOADERS as u64 + uploader as u64;
        acked.lock().unwrap().started.insert(id);
        let lines: Vec<String> = (0..LINES_PER_UPLOAD).map(|j| format!("{id}:{j}")).collect();
        let chunks: Vec<LogChunk> = lines
            .chunks(100)
            .map(|lines| LogChunk {
                namespace: "crash".into(),
                pod: format!("up-{uploader}"),
                lines: lines.to_vec(),
                first_line: 0,
            })
            .collect();
        match client.upload_logs(tokio_stream::iter(chunks)).await {
            Ok(response) => {
                assert_eq!(response.into_inner().lines, LINES_PER_UPLOAD as u64);
                let mut acked = acked.lock().unwrap();
                acked.uploaded.insert(id);
                acked.round_acks += 1;
            }
            Err(_) => return,
        }
    }
}

/// Checks the restarted server against everything acknowledged so far.
async fn verify(url: &str, acked: &Acked, last_seen_version: &mut u64) {
    let mut client = PodServiceClient::connect(url.to_owned()).await.unwrap();
    let list = client
        .list_pods(list_request("crash", 0))
        .await
        .unwrap()
        .into_inner();
    assert!(
        list.resource_version >= acked.max_version && list.resource_version >= *last_seen_version,
        "versions went backwards: store at {}, acked up to {}, seen {}",
        list.resource_version,
        acked.max_version,
        last_seen_version
    );
    *last_seen_version = list.resource_version;
    let stored: BTreeMap<&str, (u64, i32)> = list
        .pods
        .iter()
        .map(|p| (p.name.as_str(), (p.resource_version, p.replicas)))
        .collect();
    for (name, &(version, replicas)) in &acked.pods {
        let &(stored_version, stored_replicas) = stored
            .get(name.as_str())
            .unwrap_or_else(|| panic!("acknowledged pod {name} is gone"));
        assert!(
            stored_version >= version,
            "{name} went back from {version} to {stored_version}"
        );
        if stored_version == version {
            assert_eq!(stored_replicas, replicas, "{name} at {version} changed");
        }
    }

    for uploader in 0..UPLOADERS {
        let mut stream = client
            .get_logs(GetLogsRequest {
                namespace: "crash".into(),
                pod: format!("up-{uploader}"),
                follow: false,
                tail_lines: 0,
                from_line: 0,
            })
            .await
            .unwrap()
            .into_inner();
        // The log must be a sequence of runs, one per upload, each a
        // gap-free prefix "id:0", "id:1", ... of that upload's lines.
        let mut runs: Vec<(u64, usize)> = Vec::new();
        while let Some(chunk) = within("log lines", stream.message()).await.unwrap() {
            for line in chunk.lines {
                let (id, j) = line
                    .split_once(':')
                    .and_then(|(id, j)| Some((id.parse::<u64>().ok()?, j.parse::<usize>().ok()?)))
                    .unwrap_or_else(|| panic!("torn line {line:?}"));
                assert!(
                    acked.started.contains(&id),
                    "line {line:?} of an upload never made"
                );
                match runs.last_mut() {
                    Some((run, len)) if *run == id => {
                        assert_eq!(j, *len, "line {line:?} out of order or repeated");
                        *len += 1;
                    }
                    _ => {
                        assert_eq!(j, 0, "upload {id} starts at line {j}");
                        assert!(
                            runs.iter().all(|(run, _)| *run != id),
                            "upload {id} appears twice"
                        );
                        runs.push((id, 1));
                    }
                }
            }
        }
        for (id, len) in &runs {
            assert!(*len <= LINES_PER_UPLOAD);
            if acked.uploaded.contains(id) {
                assert_eq!(
                    *len, LINES_PER_UPLOAD,
                    "acknowledged upload {id} is incomplete"
                );
            }
        }
        let present: HashSet<u64> = runs.iter().map(|(id, _)| *id).collect();
        for id in &acked.uploaded {
            // Only the uploads to this pod: ids are uploader-specific.
            if id % UPLOADERS as u64 == uploader as u64 {
                assert!(present.contains(id), "acknowledged upload {id} is missing");
            }
        }
    }
}

/// Where the server keeps its data, and how a round ends under it.
trait Machine {
    /// The server's data directory.
    fn data_dir(&self) -> PathBuf;
    /// Ends a round in the middle of the work: kills the server, or cuts
    /// the power under it; the next server starts on what is left.
    async fn crash(&mut self, server: ServerProcess);
}

/// SIGKILL: the server dies, the OS and its page cache live on.
struct Sigkill(tempfile::TempDir);

impl Machine for Sigkill {
    fn data_dir(&self) -> PathBuf {
        self.0.path().to_owned()
    }

    async fn crash(&mut self, server: ServerProcess) {
        server.kill().await;
    }
}

/// Runs `rounds` rounds of work ended by `machine`'s crashes, each checked
/// after the restart. Returns each round's cycle time: from its crash to
/// the next server's checks done.
async fn crash_rounds(rounds: usize, machine: &mut impl Machine) -> Vec<Duration> {
    let data = machine.data_dir();
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut last_seen_version = 0;
    let mut cycles = Vec::new();

    // The pods that receive uploads.
    let server = ServerProcess::start(&data, "127.0.0.1:0", &[]).await;
    let mut client = PodServiceClient::connect(server.url()).await.unwrap();
    let mut session = Session::open(&mut client).await;
    for uploader in 0..UPLOADERS {
        let name = format!("up-{uploader}");
        let ack = session.apply(pod("crash", &name, "Running", 1)).await;
        assert_eq!(ack.code, 0, "{}", ack.message);
        let version = ack.pod.expect("an ack carries the pod").resource_version;
        let mut record = acked.lock().unwrap();
        record.pods.insert(name, (version, 1));
        record.max_version = record.max_version.max(version);
    }
    drop((session, client));
    machine.crash(server).await;

    let mut crashed = None;
    for round in 0..rounds {
        let server = ServerProcess::start(&data, "127.0.0.1:0", &[]).await;
        verify(&server.url(), &snapshot(&acked), &mut last_seen_version).await;
        cycles.extend(crashed.map(|at: Instant| at.elapsed()));

        // A different amount of work before each kill, so kills land in
        // different places: mid-batch, mid-upload, between commits.
        let kill_after = 20 + (round * 37) % 150;
        {
            let mut acked = acked.lock().unwrap();
            acked.round_acks = 0;
            acked.crashing = false;
        }
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let start = (round * 1_000_000) as i32;
            tasks.push(tokio::spawn(write_until_killed(
                server.url(),
                writer,
                Arc::clone(&acked),
                start,
            )));
        }
        for uploader in 0..UPLOADERS {
            tasks.push(tokio::spawn(upload_until_killed(
                server.url(),
                round,
                uploader,
                Arc::clone(&acked),
            )));
        }
        common::eventually(
            || acked.lock().unwrap().round_acks >= kill_after,
            "some acks",
        )
        .await;
        crashed = Some(Instant::now());
        acked.lock().unwrap().crashing = true;
        machine.crash(server).await;
        for task in tasks {
            within("the clients to notice", task).await.unwrap();
        }
    }
    let server = ServerProcess::start(&data, "127.0.0.1:0", &[]).await;
    verify(&server.url(), &snapshot(&acked), &mut last_seen_version).await;
    cycles.extend(crashed.map(|at| at.elapsed()));
    server.kill().await;
    let acked = acked.lock().unwrap();
    assert!(
        !acked.pods.is_empty() && !acked.uploaded.is_empty(),
        "the rounds did some work"
    );
    cycles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_repeated_sigkill() {
    crash_rounds(5, &mut Sigkill(tempfile::tempdir().unwrap())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 60 rounds; run with --ignored"]
async fn acknowledged_writes_survive_many_sigkills() {
    crash_rounds(60, &mut Sigkill(tempfile::tempdir().unwrap())).await;
}

fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_owned).collect()
}

/// A `watch-pods` and a subscribed `sync-pods` connected when the server is
/// killed print every change made after its restart exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_ride_through_a_crash() {
    use common::process::ClientProcess;
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0", &[]).await;
    let (url, addr) = (server.url(), server.addr.clone());
    let mut client = PodServiceClient::connect(url.clone()).await.unwrap();
    Session::open(&mut client)
        .await
        .apply(pod("crash", "a", "Running", 1))
        .await; // v1

    let mut watch = ClientProcess::spawn(
        env!("CARGO_BIN_EXE_watch-pods"),
        &["--addr", &url, "-n", "crash"],
    );
    assert_eq!(words(&watch.next_line().await)[0], "EVENT");
    assert_eq!(
        words(&watch.next_line().await),
        ["ADDED", "crash", "a", "Running", "1", "1"]
    );
    let mut sync = ClientProcess::spawn(env!("CARGO_BIN_EXE_sync-pods"), &["--addr", &url]);
    sync.write("watch crash\n").await;
    assert_eq!(sync.next_line().await, "ack 1 OK");
    assert_eq!(
        sync.next_line().await,
        "change ADDED crash/a status=Running replicas=1 v1"
    );

    server.kill().await;
    drop(client);
    let _server = ServerProcess::start(data.path(), &addr, &[]).await;
    let mut client = PodServiceClient::connect(url.clone()).await.unwrap();
    let mut session = Session::open(&mut client).await;
    session.apply(pod("crash", "b", "Running", 2)).await; // v2
    session.apply(pod("crash", "a", "Running", 5)).await; // v3
    session.delete("crash", "b").await; // v4
    session.apply(pod("crash", "c", "Running", 1)).await; // v5

    for expected in [
        ["ADDED", "crash", "b", "Running", "2", "2"],
        ["MODIFIED", "crash", "a", "Running", "5", "3"],
        ["DELETED", "crash", "b", "-", "-", "4"],
        ["ADDED", "crash", "c", "Running", "1", "5"],
    ] {
        assert_eq!(words(&watch.next_line().await), expected);
    }
    for expected in [
        "change ADDED crash/b status=Running replicas=2 v2",
        "change MODIFIED crash/a status=Running replicas=5 v3",
        "change DELETED crash/b deleted v4",
        "change ADDED crash/c status=Running replicas=1 v5",
    ] {
        assert_eq!(sync.next_line().await, expected);
    }
    sync.write("quit\n").await;
    let status = within("sync-pods to exit", sync.child.wait())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_second_server_on_the_same_directory_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let _first = ServerProcess::start(data.path(), "127.0.0.1:0", &[]).await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_pod-server"))
        .args(["--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output();
    let output = within("the second server", second).await.unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: data directory")
            && stderr.contains("in use by another running pod-server"),
        "{stderr}"
    );
}

/// `pod-logs --follow` connected when the server is killed resumes after
/// its restart from the line after the last one it printed: every line
/// once, by number (a durable store keeps the numbers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_follow_rides_through_a_crash() {
    use common::process::ClientProcess;
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), "127.0.0.1:0", &[]).await;
    let (url, addr) = (server.url(), server.addr.clone());
    let mut client = PodServiceClient::connect(url.clone()).await.unwrap();
    Session::open(&mut client)
        .await
        .apply(pod("crash", "web", "Running", 1))
        .await;
    let upload = async |client: &mut PodServiceClient<Channel>, lines: std::ops::Range<u64>| {
        let chunk = LogChunk {
            namespace: "crash".into(),
            pod: "web".into(),
            lines: lines.map(|i| format!("line {i}")).collect(),
            first_line: 0,
        };
        client
            .upload_logs(tokio_stream::iter([chunk]))
            .await
            .unwrap();
    };
    upload(&mut client, 1..101).await;
    let mut follow = ClientProcess::spawn(
        env!("CARGO_BIN_EXE_pod-logs"),
        &[
            "--addr",
            &url,
            "-n",
            "crash",
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

    server.kill().await;
    drop(client);
    let _server = ServerProcess::start(data.path(), &addr, &[]).await;
    let mut client = PodServiceClient::connect(url.clone()).await.unwrap();
    upload(&mut client, 101..201).await;
    while printed.len() < 200 {
        next(&mut printed, &mut follow).await;
    }
    assert_eq!(
        printed,
        (1..=200).collect::<Vec<_>>(),
        "every line once, in order"
    );
}
