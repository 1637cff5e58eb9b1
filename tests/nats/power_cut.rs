//! A measurement, not a check of this project: what a power cut of every
//! NATS node loses of the log lines `pod-server` acknowledged. Debian's
//! nats-server 2.9.10 fsyncs a stream's blocks on a 2-minute timer and its
//! Raft logs on a 5-minute one, not before acknowledging, and has no option
//! to do otherwise (2.10's `sync_interval` is absent); an acknowledged line
//! is then on a quorum's page cache, which a power cut of the whole
//! cluster drops. Each node's storage directory is on its own
//! `common::power_fs` mount; the three are cut together.
//!
//! `cargo test --test nats -- --ignored --nocapture power_cut` prints the
//! figures.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;

use pod_service::contract::{LogChunk, PodServiceClient};

use crate::common::cluster::json;
use crate::common::etcd::{EtcdCluster, unique_prefix};
use crate::common::nats::{Health, MONITOR, NatsCluster, unique_stream};
use crate::common::power_fs::{Figures, PowerFs};
use crate::common::process::ServerProcess;
use crate::common::{PATIENCE, Session, pod, within};
use crate::numbered_log;

const UPLOADS: usize = 40;
const LINES_PER_UPLOAD: usize = 250;

/// Waits until every node has applied the JetStream meta group's entries
/// so far: a stream is made, and every node must list it (a node applies
/// the meta log in order). A node killed before it applied the entries
/// that added its peers comes back waiting for a meta group "of 2", for
/// good (seen in about one restart of four of a cluster just formed, on
/// plain directories too).
async fn settle(nats: &NatsCluster) {
    let client = async_nats::connect(nats.url(0)).await.unwrap();
    let jetstream = async_nats::jetstream::new(client);
    let config = async_nats::jetstream::stream::Config {
        name: "settled".into(),
        num_replicas: 3,
        ..Default::default()
    };
    within(
        "a stream on the new cluster",
        jetstream.create_stream(config),
    )
    .await
    .unwrap();
    within("every node to list it", async {
        while messages_per_node(nats, "settled").await.contains(&None) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

/// The nodes' storage directories on power-cut layers: once the cluster
/// has settled, one node at a time (the others keep the quorum) is killed,
/// its directory moved to a backing directory beside it, a layer mounted
/// over that in its place, and the node started again. What the nodes
/// wrote until then is on the backing directories: a cluster that had run
/// for long, and synced its beginnings.
async fn onto_layers(nats: &NatsCluster) -> Vec<PowerFs> {
    settle(nats).await;
    let mut layers = Vec::new();
    for i in 0..nats.len() {
        nats.kill(i);
        let dir = &nats.member(i).data_dir;
        let backing = dir.with_extension("disk");
        std::fs::rename(dir, &backing).unwrap();
        std::fs::create_dir(dir).unwrap();
        layers.push(PowerFs::mount(&backing, dir));
        nats.restart(i).await;
    }
    layers
}

/// Starts every (killed) node at once: a node alone has no quorum, so
/// none is ready before the others run.
async fn restart_all(nats: &NatsCluster) {
    futures::future::join_all((0..nats.len()).map(|i| nats.restart(i))).await;
}

/// Restarts every node after the cut and returns how long until all were
/// ready, waiting up to three times the harness's patience (a node that
/// recovers from what the cut left may take long); or what each node said
/// at the end.
async fn restart_after_cut(nats: &NatsCluster) -> Result<Duration, String> {
    let started = Instant::now();
    if attempt(restart_all(nats)).await.is_ok() {
        return Ok(started.elapsed());
    }
    loop {
        let health = futures::future::join_all((0..nats.len()).map(|i| nats.health(i))).await;
        if health.iter().all(|health| *health == Health::Ready) {
            return Ok(started.elapsed());
        }
        if started.elapsed() > 3 * PATIENCE {
            return Err(format!(
                "not ready after {:?}: {health:?}",
                started.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `future`, turning a panic (a harness's wait that ran out, a
/// server that would not start) into its message: a measurement reports
/// what happened rather than stop at it.
async fn attempt<T>(future: impl Future<Output = T>) -> Result<T, String> {
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
}

/// Messages of `stream` on each node, from its monitoring endpoint (none
/// if the node does not have the stream, or does not answer).
async fn messages_per_node(nats: &NatsCluster, stream: &str) -> Vec<Option<u64>> {
    let mut counts = Vec::new();
    for i in 0..nats.len() {
        let port = nats.member(i).ports[MONITOR];
        let jsz = json(port, "GET", "/jsz?accounts=true&streams=true", "")
            .await
            .unwrap_or_default();
        let count = jsz["account_details"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
            .find(|detail| detail["name"] == stream)
            .and_then(|detail| detail["state"]["messages"].as_u64());
        counts.push(count);
    }
    counts
}

/// One measurement: uploads every line through `pod-server`, waits
/// `settle` after the last acknowledgement, pauses the three nodes, cuts
/// their power, kills them, and counts what the restarted cluster has.
async fn measure(settle: Duration) {
    let nats = NatsCluster::start(3).await;
    let mut layers = onto_layers(&nats).await;
    let endpoints = EtcdCluster::shared().endpoints_arg();
    let prefix = unique_prefix();
    let stream = unique_stream();
    let urls = nats.urls_arg();
    let args = ["--nats-url", &urls, "--nats-stream", &stream];
    let server = ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &args).await;
    let mut client = PodServiceClient::connect(server.url()).await.unwrap();
    let ack = Session::open(&mut client)
        .await
        .apply(pod("default", "web", "Running", 1))
        .await;
    assert_eq!(ack.code, 0, "{}", ack.message);
    let mut acked = 0;
    for upload in 0..UPLOADS {
        let first = upload * LINES_PER_UPLOAD + 1;
        let lines = (first..first + LINES_PER_UPLOAD)
            .map(|n| format!("line {n}"))
            .collect();
        let chunk = LogChunk {
            namespace: "default".into(),
            pod: "web".into(),
            lines,
            first_line: 0,
        };
        let response = within("an upload", client.upload_logs(tokio_stream::iter([chunk])))
            .await
            .expect("every upload is acknowledged before the cut");
        acked += response.into_inner().lines as usize;
    }
    assert_eq!(acked, UPLOADS * LINES_PER_UPLOAD);
    let before = messages_per_node(&nats, &stream).await;
    tokio::time::sleep(settle).await; // the measured wait, not a synchronisation

    // The power fails everywhere at once: the nodes are stopped first, so
    // that none writes between two cuts.
    for i in 0..nats.len() {
        nats.pause(i);
    }
    let cuts: Vec<Figures> = layers.iter().map(PowerFs::cut).collect();
    for i in 0..nats.len() {
        nats.kill(i);
    }
    server.kill().await;
    for (i, layer) in std::mem::take(&mut layers).into_iter().enumerate() {
        layer.unmount();
        let dir = &nats.member(i).data_dir;
        layers.push(PowerFs::mount(&dir.with_extension("disk"), dir));
    }
    let recovery = restart_after_cut(&nats).await;

    let after = messages_per_node(&nats, &stream).await;
    let settled = messages_per_node(&nats, "settled").await;
    if recovery.is_ok() {
        // What was on the backing directories before the layers came back.
        assert_eq!(
            settled,
            [Some(0); 3],
            "the cluster came back with its synced state"
        );
    }
    let read = attempt(async {
        let server = ServerProcess::start_replica(&endpoints, &prefix, "127.0.0.1:0", &args).await;
        let mut client = PodServiceClient::connect(server.url()).await.unwrap();
        // A lost stream is made again, empty, by the server.
        let log = numbered_log(&mut client, "web").await;
        server.kill().await;
        log
    })
    .await;
    let kept: Vec<u64> = match &read {
        Ok(log) => {
            for (n, line) in log {
                assert_eq!(line, &format!("line {n}"), "a line as uploaded");
            }
            log.iter().map(|(n, _)| *n).collect()
        }
        Err(_) => Vec::new(),
    };
    assert!(kept.len() <= acked, "no line more than acknowledged");
    eprintln!(
        "NATS power cut {settle:?} after the last ack: {}; cluster back {recovery:?}; \
         stream messages per node before {before:?}, after {after:?} (settled stream {settled:?}); \
         per node fsyncs applied {:?}, KiB synced {:?}, unsynced pages dropped {:?}",
        match (&read, kept.first(), kept.last()) {
            (Err(why), ..) => format!("the log could not be read: {why}"),
            (Ok(_), Some(first), Some(last)) => format!(
                "{} of {acked} acknowledged lines lost ({} kept, lines {first} to {last})",
                acked - kept.len(),
                kept.len()
            ),
            (Ok(_), ..) => format!("{acked} of {acked} acknowledged lines lost"),
        },
        cuts.iter().map(|f| f.syncs).collect::<Vec<_>>(),
        cuts.iter()
            .map(|f| f.synced_bytes / 1024)
            .collect::<Vec<_>>(),
        cuts.iter().map(|f| f.dropped_pages).collect::<Vec<_>>(),
    );
    for i in 0..nats.len() {
        nats.kill(i);
    }
    for layer in layers {
        layer.unmount();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of nats-server, about 30 s: run with --ignored --nocapture"]
async fn power_cut_of_every_nats_node_right_after_the_acks() {
    measure(Duration::ZERO).await;
}

/// Past the streams' 2-minute sync timer (not the Raft logs' 5 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement of nats-server, about 3 min: run with --ignored --nocapture"]
async fn power_cut_of_every_nats_node_130_s_after_the_acks() {
    measure(Duration::from_secs(130)).await;
}
