//! Real NATS JetStream clusters on loopback, for the tests of the logs on
//! JetStream.
//!
//! The tests run against the real thing: Debian's `nats-server` 2.9
//! (package `nats-server`, installed by [`super::tools::require`] when
//! missing), never a fake. Two ways to get a cluster, as with etcd
//! (`super::etcd`):
//!
//! - [`NatsCluster::shared`]: one 3-node cluster per test binary, started by
//!   the first test that asks and shared by every test that only needs
//!   streams of its own. Such a test works on a [`unique_stream`] and must
//!   not inject faults (the fault controls panic on it).
//! - [`NatsCluster::start`]: a cluster of the test's own, killed when it is
//!   dropped, for tests that kill or restart nodes ([`NatsCluster::kill`],
//!   [`restart`](NatsCluster::restart)) or ask which node leads the
//!   JetStream meta group ([`NatsCluster::meta_leader`]).
//!
//! Nodes are numbered from 0 and named `n0`, `n1`, ... in NATS. Each
//! listens on three free loopback ports (clients, routes, HTTP monitoring;
//! a port taken between choosing and binding makes the whole start retry
//! on new ports), keeps its JetStream data under a temporary directory
//! (`-sd <root>/n<i>`: the server stores in its `jetstream` subdirectory)
//! and its log (the server's stdout and stderr) next to it, appended to
//! across restarts. A cluster of one node runs without cluster flags.
//!
//! Every wait is by event and bounded by [`PATIENCE`]: a node is ready
//! when its monitoring endpoint says so, a tiny HTTP/1.0 request so that no
//! HTTP client is needed. `GET /healthz` answers `200 {"status":"ok"}` once
//! JetStream is up and (in a cluster) current with the meta leader, and
//! `503 {"status":"unavailable","error":"..."}` before; in a cluster, the
//! node's `GET /jsz` must also show a `meta_cluster` with a `leader` (the
//! leader's server name) and a `cluster_size` of every node. A hang becomes
//! a panic that quotes the nodes' logs. (`/jsz` is asked first: each
//! failed `/healthz` is a warning in the node's log.)
//!
//! No server outlives the test process, exactly as with etcd: a cluster
//! kills its nodes when dropped, and every node runs under `setpriv
//! --pdeathsig KILL`, started from a thread that lives as long as the
//! process (see [`spawn`]), so that the kernel kills it when the process
//! ends, however it ends. `setpriv` execs the server: the child's pid is
//! the server's. Directories left by a process that was killed are removed
//! by the next test process that starts a cluster.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, mpsc};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::PATIENCE;

/// How long one monitoring request may take: a node that has not answered
/// by then is stuck or gone.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a wait polls.
const POLL: Duration = Duration::from_millis(20);

/// Starts on ports that another process took in the meantime, at most.
const START_ATTEMPTS: usize = 5;

/// Lines of a node's log quoted when it fails.
const LOG_TAIL_LINES: usize = 25;

/// A running NATS JetStream cluster on loopback (see the module
/// documentation).
pub struct NatsCluster {
    nodes: Mutex<Vec<Node>>,
    /// Client ports, by node (fixed for the cluster's life).
    client_ports: Vec<u16>,
    /// HTTP monitoring ports, by node.
    monitor_ports: Vec<u16>,
    /// `--routes`: every node's cluster URL, comma-joined (unused with one
    /// node).
    routes: String,
    /// `--cluster_name`, unique to this cluster.
    name: String,
    /// The shared cluster takes no faults.
    shared: bool,
    /// The `nats-server` binary (in `/usr/sbin` on Debian, which a user's
    /// PATH may lack).
    program: PathBuf,
    /// Holds the nodes' data directories and logs; removed last.
    root: tempfile::TempDir,
}

struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    /// None once killed.
    child: Option<Child>,
}

/// What a node's monitoring endpoint said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// `GET /healthz` said `{"status":"ok"}` and, in a cluster, `GET /jsz`
    /// names a meta leader of a meta group of every node.
    Ready,
    /// It answered, but is not ready (JetStream starting, no meta leader
    /// yet, not current with it): what it said.
    NotReady(String),
    /// No answer within the request timeout, or no connection (killed).
    NoAnswer(String),
}

/// Why a start did not come up.
enum StartError {
    /// A node could not bind a port chosen for it: start over.
    PortTaken,
}

impl NatsCluster {
    /// Starts a cluster of `nodes` nodes of the test's own and waits until
    /// every node is ready and (in a cluster) names a meta leader. Panics
    /// (with the nodes' logs) if it does not come up within [`PATIENCE`].
    pub async fn start(nodes: usize) -> NatsCluster {
        assert!(nodes > 0, "a cluster has at least one node");
        let program = super::tools::require("nats-server", "nats-server");
        super::tools::require("setpriv", "util-linux");
        remove_stale_directories();
        for _ in 0..START_ATTEMPTS {
            let cluster = NatsCluster::launch(&program, nodes);
            match cluster.await_nodes((0..nodes).collect()).await {
                Ok(()) => return cluster,
                // Dropping the cluster kills the nodes that did start.
                Err(StartError::PortTaken) => drop(cluster),
            }
        }
        panic!("nats-server: {START_ATTEMPTS} starts in a row found a chosen port taken");
    }

    /// Like [`start`](Self::start), for code outside any runtime: the wait
    /// runs on a runtime of its own, in a thread of its own (so that it may
    /// be called from inside another runtime too). The cluster does not
    /// depend on that runtime: its nodes are plain child processes.
    pub fn start_blocking(nodes: usize) -> NatsCluster {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to start nats-server")
                .block_on(NatsCluster::start(nodes))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The 3-node cluster of this test binary, started by the first call
    /// (which blocks until it is ready, about a second) and alive until the
    /// process exits. Use it on a [`unique_stream`], without faults.
    pub fn shared() -> &'static NatsCluster {
        static SHARED: OnceLock<NatsCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut cluster = NatsCluster::start_blocking(3);
            cluster.shared = true;
            cluster
        })
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.client_ports.len()
    }

    /// Node `i`'s client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.client_ports[i])
    }

    /// Every node's client URL, in node order.
    pub fn urls(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.url(i)).collect()
    }

    /// The client URLs comma-joined, as `--nats-url` takes them.
    pub fn urls_arg(&self) -> String {
        self.urls().join(",")
    }

    /// Node `i`'s HTTP monitoring URL, `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.monitor_ports[i])
    }

    /// Node `i`'s process id, unless it was killed.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.lock()[i].child.as_ref().map(Child::id)
    }

    /// The last lines of node `i`'s log (across restarts).
    pub fn log_tail(&self, i: usize) -> String {
        log_tail(&self.log_path(i))
    }

    /// The file of node `i`'s log: the server's stdout and stderr, appended
    /// to across restarts.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.lock()[i].log.clone()
    }

    /// Kills node `i` with SIGKILL and waits until it has exited. Its data
    /// directory stays, for [`restart`](Self::restart).
    pub fn kill(&self, i: usize) {
        self.no_faults_on_shared("kill");
        let mut nodes = self.lock();
        let mut child = nodes[i]
            .child
            .take()
            .unwrap_or_else(|| panic!("nats node {i} is already killed"));
        // Fails only if it has already exited, which the wait then reaps.
        let _ = child.kill();
        child.wait().expect("wait for the killed nats node");
    }

    /// Starts killed node `i` again on its ports and data directory and
    /// waits until it is ready (JetStream up, current with a meta leader).
    pub async fn restart(&self, i: usize) {
        self.no_faults_on_shared("restart");
        {
            let mut nodes = self.lock();
            assert!(
                nodes[i].child.is_none(),
                "nats node {i} is running: kill it before restarting it"
            );
            let child = self.spawn_node(&nodes[i]);
            nodes[i].child = Some(child);
        }
        if self.await_nodes(vec![i]).await.is_err() {
            panic!(
                "nats node {i} could not bind its ports (client {}) again:\n{}",
                self.client_ports[i],
                self.log_tail(i)
            );
        }
    }

    /// Asks node `i` once whether it is ready (at most two requests, each
    /// bounded by a short timeout).
    pub async fn health(&self, i: usize) -> Health {
        let clustered = self.len() > 1;
        health(self.monitor_ports[i], clustered.then_some(self.len())).await
    }

    /// Waits until node `i` is ready; panics with its log after
    /// [`PATIENCE`].
    pub async fn await_ready(&self, i: usize) {
        if self.await_nodes(vec![i]).await.is_err() {
            unreachable!("a port taken is only reported for a node just started");
        }
    }

    /// The node that leads the JetStream meta group: the running node that
    /// names itself the leader in its `GET /jsz` and that a majority of all
    /// nodes name as theirs. Waits (by polling, up to [`PATIENCE`]) until
    /// there is one, so that after killing the leader this names the next
    /// one. A single node leads itself once ready. Panics if no leader is
    /// elected in time (e.g. a majority is down).
    pub async fn meta_leader(&self) -> usize {
        if self.len() == 1 {
            self.await_ready(0).await;
            return 0;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let asked: Vec<(usize, u16)> = self
                .lock()
                .iter()
                .enumerate()
                .filter(|(_, node)| node.child.is_some())
                .map(|(i, node)| (i, node.monitor_port))
                .collect();
            let answers =
                futures::future::join_all(asked.iter().map(|&(_, port)| request(port, "/jsz")))
                    .await;
            // (node, the name of the leader it knows), per answer.
            let mut views = Vec::new();
            let mut seen = String::new();
            for (&(i, _), answer) in asked.iter().zip(answers) {
                let _ = write!(seen, "\n  node {i}: ");
                match answer {
                    Ok((_, body)) => {
                        let leader = serde_json::from_str::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|jsz| {
                                jsz["meta_cluster"]["leader"].as_str().map(str::to_owned)
                            });
                        let _ = write!(seen, "leader {leader:?}");
                        views.push((i, leader));
                    }
                    Err(error) => seen.push_str(&error),
                }
            }
            let majority = self.len() / 2 + 1;
            let leader = views.iter().find(|(i, leader)| {
                leader.as_deref() == Some(&node_name(*i))
                    && views.iter().filter(|(_, other)| other == leader).count() >= majority
            });
            if let Some(&(i, _)) = leader {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for a JetStream meta leader; the nodes said:{seen}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Node>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn no_faults_on_shared(&self, what: &str) {
        assert!(
            !self.shared,
            "the shared nats cluster takes no faults ({what}): start one of the test's own \
             with NatsCluster::start"
        );
    }

    /// Chooses ports and directories and starts every node, not waiting.
    fn launch(program: &Path, count: usize) -> NatsCluster {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let root = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(base_directory())
            .expect("a temporary directory for nats-server");
        let ports = free_ports(3 * count);
        let (client_ports, rest) = ports.split_at(count);
        let (cluster_ports, monitor_ports) = rest.split_at(count);
        let nodes: Vec<Node> = (0..count)
            .map(|i| Node {
                name: node_name(i),
                client_port: client_ports[i],
                cluster_port: cluster_ports[i],
                monitor_port: monitor_ports[i],
                data_dir: root.path().join(node_name(i)),
                log: root.path().join(format!("{}.log", node_name(i))),
                child: None,
            })
            .collect();
        let routes = nodes
            .iter()
            .map(|node| format!("nats://127.0.0.1:{}", node.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let cluster = NatsCluster {
            client_ports: client_ports.to_vec(),
            monitor_ports: monitor_ports.to_vec(),
            routes,
            name: format!(
                "test-{}-{}-{:08x}",
                std::process::id(),
                CLUSTERS.fetch_add(1, Ordering::Relaxed),
                fastrand::u32(..)
            ),
            shared: false,
            program: program.to_owned(),
            nodes: Mutex::new(nodes),
            root,
        };
        {
            let mut nodes = cluster.lock();
            for node in nodes.iter_mut() {
                let child = cluster.spawn_node(node);
                node.child = Some(child);
            }
        }
        cluster
    }

    fn spawn_node(&self, node: &Node) -> Child {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("open the nats node's log");
        let stdout = log.try_clone().expect("share the nats node's log");
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--"])
            .arg(&self.program)
            .args(["-js", "-sd"])
            .arg(&node.data_dir)
            .args(["-a", "127.0.0.1", "-p", &node.client_port.to_string()])
            .args(["-m", &node.monitor_port.to_string(), "-n", &node.name]);
        if self.len() > 1 {
            command
                .args(["--cluster_name", &self.name])
                .args([
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", node.cluster_port),
                ])
                .args(["--routes", &self.routes]);
        }
        command
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        spawn(command).unwrap_or_else(|e| panic!("start nats-server (through setpriv): {e}"))
    }

    /// Waits until each listed node is ready. A node that exits because a
    /// port is taken makes this return [`StartError::PortTaken`]; one that
    /// exits otherwise, or a wait beyond [`PATIENCE`], panics with the logs.
    async fn await_nodes(&self, mut pending: Vec<usize>) -> Result<(), StartError> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = vec![Health::NoAnswer("not asked yet".into()); self.len()];
        loop {
            for &i in &pending {
                if let Some(status) = self.exit_status(i) {
                    let tail = self.log_tail(i);
                    if tail.contains("address already in use") {
                        return Err(StartError::PortTaken);
                    }
                    panic!("nats node {i} exited ({status}) before it was ready:\n{tail}");
                }
            }
            let answers = futures::future::join_all(pending.iter().map(|&i| self.health(i))).await;
            for (&i, answer) in pending.iter().zip(answers) {
                last[i] = answer;
            }
            pending.retain(|&i| last[i] != Health::Ready);
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for &i in &pending {
                    let _ = write!(
                        report,
                        "\n--- node {i} ({}, monitor {}), last health {:?}:\n{}",
                        self.url(i),
                        self.monitor_url(i),
                        last[i],
                        self.log_tail(i)
                    );
                }
                panic!("timed out waiting for nats nodes {pending:?} to be ready:{report}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How node `i` exited, if its process has.
    fn exit_status(&self, i: usize) -> Option<String> {
        let mut nodes = self.lock();
        let child = nodes[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                nodes[i].child = None;
                Some(status.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        let nodes = self.nodes.get_mut().unwrap_or_else(|e| e.into_inner());
        for node in nodes.iter_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // `root` (data directories and logs) is removed after this.
    }
}

/// A JetStream stream name of its own, `logs-<pid>-<n>`, for a test on the
/// shared cluster: lowercase letters, digits and `-` only, so that it is
/// also a valid subject token.
pub fn unique_stream() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "logs-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Node `i`'s server name (`-n`), which `GET /jsz` names the leader by.
fn node_name(i: usize) -> String {
    format!("n{i}")
}

/// Starts `command` from a thread that lives as long as the process, so
/// that the child's parent-death signal (`setpriv --pdeathsig`, which
/// fires when the *thread* that forked it exits) fires only when the test
/// process ends.
fn spawn(command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let jobs = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("nats-spawner".into())
            .spawn(move || {
                // The sender lives in the static: this never ends.
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the nats spawner thread");
        Mutex::new(jobs)
    });
    let (reply, answer) = mpsc::channel();
    jobs.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .expect("the nats spawner thread is gone");
    answer.recv().expect("the nats spawner thread is gone")
}

/// `n` distinct free loopback ports: each bound to port 0 (all held at once,
/// so that none repeats) and released. Another process may take one before
/// the server binds it; the start then retries.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}

/// Where clusters keep their directories, one `<pid>-<random>` each.
fn base_directory() -> PathBuf {
    let base = std::env::temp_dir().join("pod-service-nats");
    std::fs::create_dir_all(&base).expect("create the nats test directory");
    base
}

/// Removes the directories of test processes that are gone (killed before
/// they could clean up, or a shared cluster's, which is never dropped).
/// Once per process.
fn remove_stale_directories() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let Ok(entries) = std::fs::read_dir(base_directory()) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.split('-').next()) else {
                continue;
            };
            if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
}

fn log_tail(log: &Path) -> String {
    let text = match std::fs::read(log) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("(no log at {}: {e})", log.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// One readiness check of the node monitored on `port`: for a node of a
/// cluster of `cluster_size`, `GET /jsz` must name a meta leader of every
/// node; then `GET /healthz` must say ok. `/jsz` comes first because every
/// failed `/healthz` is a warning in the server's log, which would crowd
/// out the lines a failure quotes.
async fn health(port: u16, cluster_size: Option<usize>) -> Health {
    if let Some(size) = cluster_size {
        let body = match request(port, "/jsz").await {
            Err(error) => return Health::NoAnswer(error),
            Ok((_, body)) => body,
        };
        let meta = serde_json::from_str::<serde_json::Value>(&body)
            .map(|jsz| jsz["meta_cluster"].clone())
            .unwrap_or_default();
        let led = meta["leader"]
            .as_str()
            .is_some_and(|leader| !leader.is_empty());
        if !led || meta["cluster_size"].as_u64() != Some(size as u64) {
            return Health::NotReady(format!(
                "JetStream meta group of {size} not led yet: {meta}"
            ));
        }
    }
    match request(port, "/healthz").await {
        Err(error) => Health::NoAnswer(error),
        Ok((_, body)) => {
            let ok = serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|json| json["status"] == "ok");
            if ok {
                Health::Ready
            } else {
                Health::NotReady(body)
            }
        }
    }
}

/// One HTTP/1.0 `GET` to `127.0.0.1:port` (the server then closes the
/// connection after its response, which has no chunked encoding), bounded
/// by [`REQUEST_TIMEOUT`]. Returns the status code and the body.
async fn request(port: u16, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let head = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {REQUEST_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    Ok((status, body.to_owned()))
}
