//! Real etcd clusters on loopback, for the tests of the etcd-backed store.
//!
//! The store's tests run against the real thing: Debian's `etcd` 3.4
//! (package `etcd-server`, installed by [`super::tools::require`] when
//! missing), never a fake. Two ways to get a cluster:
//!
//! - [`EtcdCluster::shared`]: one 3-member cluster per test binary, started
//!   by the first test that asks and shared by every test that only needs
//!   keys of its own. Such a test works under a [`unique_prefix`] and must
//!   not inject faults (the fault controls panic on it).
//! - [`EtcdCluster::start`]: a cluster of the test's own, killed when it is
//!   dropped, for tests that kill, restart, pause or resume members
//!   ([`EtcdCluster::kill`], [`restart`](EtcdCluster::restart),
//!   [`pause`](EtcdCluster::pause), [`resume`](EtcdCluster::resume)) or ask
//!   which member leads ([`EtcdCluster::leader`]).
//!
//! Members are numbered from 0 (named `m1`, `m2`, ... in etcd). Each listens
//! on free loopback ports (a port taken between choosing and binding makes
//! the whole start retry on new ports) and keeps its data in a temporary
//! directory, with its log (etcd's stderr) next to it, appended to across
//! restarts. Every wait is by event (polling the member's `GET /health`, a
//! tiny HTTP/1.0 request, so that `etcdctl` is not needed) and bounded by
//! [`PATIENCE`]: a hang becomes a panic that quotes the members' logs.
//!
//! No etcd outlives the test process. A cluster kills its members when
//! dropped; and every member runs under `setpriv --pdeathsig KILL` (util-
//! linux, on every Debian system), so the kernel kills it when the thread
//! that started it exits. That thread is one that lives as long as the
//! process (see [`spawn`]): a test thread or a runtime's worker would end
//! before the shared cluster should, which is not dropped (statics never
//! are) but dies with the process, however it ends. `setpriv` was chosen
//! over a `pre_exec` hook calling `prctl` because `libc` is not one of the
//! crate's dependencies, and over a watchdog wrapper because `setpriv`
//! execs etcd: the child's pid is etcd's, for `kill`, `pause` and `resume`.
//! Directories left by a process that was killed are removed by the next
//! test process that starts a cluster.

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

/// How long one health or status request may take: a member that has not
/// answered by then is stuck (paused) or gone.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a wait polls.
const POLL: Duration = Duration::from_millis(20);

/// Starts on ports that another process took in the meantime, at most.
const START_ATTEMPTS: usize = 5;

/// Lines of a member's log quoted when it fails.
const LOG_TAIL_LINES: usize = 25;

/// A running etcd cluster on loopback (see the module documentation).
pub struct EtcdCluster {
    members: Mutex<Vec<Member>>,
    /// Client ports, by member (fixed for the cluster's life).
    client_ports: Vec<u16>,
    /// `--initial-cluster`: every member's name and peer URL.
    initial_cluster: String,
    token: String,
    /// The shared cluster takes no faults.
    shared: bool,
    /// Holds the members' data directories and logs; removed last.
    root: tempfile::TempDir,
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    /// None once killed.
    child: Option<Child>,
    paused: bool,
}

/// What a member's `GET /health` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// `{"health":"true"}`: the member has a leader and serves.
    Healthy,
    /// It answered, but not healthy (e.g. `{"health":"false"}`, no leader).
    Unhealthy(String),
    /// No answer within the request timeout, or no connection (killed,
    /// paused).
    NoAnswer(String),
}

/// Why a start did not come up.
enum StartError {
    /// A member could not bind a port chosen for it: start over.
    PortTaken,
}

impl EtcdCluster {
    /// Starts a cluster of `members` members of the test's own and waits
    /// until every member is healthy. Panics (with the members' logs) if it
    /// does not come up within [`PATIENCE`].
    pub async fn start(members: usize) -> EtcdCluster {
        assert!(members > 0, "a cluster has at least one member");
        super::tools::require("etcd", "etcd-server");
        super::tools::require("setpriv", "util-linux");
        remove_stale_directories();
        for _ in 0..START_ATTEMPTS {
            let cluster = EtcdCluster::launch(members);
            match cluster.await_members((0..members).collect()).await {
                Ok(()) => return cluster,
                // Dropping the cluster kills the members that did start.
                Err(StartError::PortTaken) => drop(cluster),
            }
        }
        panic!("etcd: {START_ATTEMPTS} starts in a row found a chosen port taken");
    }

    /// Like [`start`](Self::start), for code outside any runtime: the wait
    /// runs on a runtime of its own, in a thread of its own (so that it may
    /// be called from inside another runtime too). The cluster does not
    /// depend on that runtime: its members are plain child processes.
    pub fn start_blocking(members: usize) -> EtcdCluster {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to start etcd")
                .block_on(EtcdCluster::start(members))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The 3-member cluster of this test binary, started by the first call
    /// (which blocks until it is healthy, a few seconds) and alive until the
    /// process exits. Use it under a [`unique_prefix`], without faults.
    pub fn shared() -> &'static EtcdCluster {
        static SHARED: OnceLock<EtcdCluster> = OnceLock::new();
        SHARED.get_or_init(|| {
            let mut cluster = EtcdCluster::start_blocking(3);
            cluster.shared = true;
            cluster
        })
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.client_ports.len()
    }

    /// Member `i`'s client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.client_ports[i])
    }

    /// Every member's client URL, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.endpoint(i)).collect()
    }

    /// The client URLs comma-joined, as `--etcd-endpoints` takes them.
    pub fn endpoints_arg(&self) -> String {
        self.endpoints().join(",")
    }

    /// Member `i`'s process id, unless it was killed.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.lock()[i].child.as_ref().map(Child::id)
    }

    /// The last lines of member `i`'s log (its stderr, across restarts).
    pub fn log_tail(&self, i: usize) -> String {
        let log = self.lock()[i].log.clone();
        log_tail(&log)
    }

    /// Kills member `i` with SIGKILL (paused or not) and waits until it has
    /// exited. Its data directory stays, for [`restart`](Self::restart).
    pub fn kill(&self, i: usize) {
        self.no_faults_on_shared("kill");
        let mut members = self.lock();
        let member = &mut members[i];
        let mut child = member
            .child
            .take()
            .unwrap_or_else(|| panic!("etcd member {i} is already killed"));
        // Fails only if it has already exited, which the wait then reaps.
        let _ = child.kill();
        child.wait().expect("wait for the killed etcd member");
        member.paused = false;
    }

    /// Starts killed member `i` again on its ports and data directory
    /// (`--initial-cluster-state existing`) and waits until it is healthy.
    pub async fn restart(&self, i: usize) {
        self.no_faults_on_shared("restart");
        {
            let mut members = self.lock();
            assert!(
                members[i].child.is_none(),
                "etcd member {i} is running: kill it before restarting it"
            );
            let child = self.spawn_member(&members[i], "existing");
            members[i].child = Some(child);
        }
        if self.await_members(vec![i]).await.is_err() {
            panic!(
                "etcd member {i} could not bind its port {} again:\n{}",
                self.client_ports[i],
                self.log_tail(i)
            );
        }
    }

    /// Stops member `i` with SIGSTOP: it holds its connections and answers
    /// nothing, as a hung or partitioned machine would.
    pub fn pause(&self, i: usize) {
        self.no_faults_on_shared("pause");
        let mut members = self.lock();
        let pid = members[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("etcd member {i} is killed: it cannot be paused"))
            .id();
        signal(pid, "STOP");
        members[i].paused = true;
    }

    /// Continues paused member `i` with SIGCONT. It catches up on its own;
    /// [`await_healthy`](Self::await_healthy) waits until it has.
    pub fn resume(&self, i: usize) {
        self.no_faults_on_shared("resume");
        let mut members = self.lock();
        let pid = members[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("etcd member {i} is killed: it cannot be resumed"))
            .id();
        signal(pid, "CONT");
        members[i].paused = false;
    }

    /// Asks member `i` for its health once (one request, bounded by a short
    /// timeout).
    pub async fn health(&self, i: usize) -> Health {
        health(self.client_ports[i]).await
    }

    /// Waits until member `i` reports healthy; panics with its log after
    /// [`PATIENCE`].
    pub async fn await_healthy(&self, i: usize) {
        if self.await_members(vec![i]).await.is_err() {
            unreachable!("a port taken is only reported for a member just started");
        }
    }

    /// The member that leads: the running, unpaused member that says it is
    /// the leader and that a majority of all members name as their leader.
    /// Waits (by polling, up to [`PATIENCE`]) until there is one, so that
    /// after killing or pausing the leader this names the next one. Panics
    /// if no leader is elected in time (e.g. a majority is down).
    pub async fn leader(&self) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let asked: Vec<(usize, u16)> = self
                .lock()
                .iter()
                .enumerate()
                .filter(|(_, member)| member.child.is_some() && !member.paused)
                .map(|(i, member)| (i, member.client_port))
                .collect();
            let answers = futures::future::join_all(
                asked
                    .iter()
                    .map(|&(_, port)| request(port, "POST", "/v3/maintenance/status", "{}")),
            )
            .await;
            // (member, its id, the id of the leader it knows), per answer.
            let mut views = Vec::new();
            let mut seen = String::new();
            for (&(i, _), answer) in asked.iter().zip(answers) {
                let _ = write!(seen, "\n  member {i}: ");
                match answer {
                    Ok((_, body)) => {
                        seen.push_str(&body);
                        if let Ok(status) = serde_json::from_str::<serde_json::Value>(&body) {
                            let id = status["header"]["member_id"].as_str().map(str::to_owned);
                            let leader = status["leader"].as_str().map(str::to_owned);
                            views.push((i, id, leader));
                        }
                    }
                    Err(error) => seen.push_str(&error),
                }
            }
            let majority = self.len() / 2 + 1;
            let leader = views.iter().find(|(_, id, leader)| {
                id.is_some()
                    && id == leader
                    && views.iter().filter(|(_, _, other)| other == leader).count() >= majority
            });
            if let Some(&(i, _, _)) = leader {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for an etcd leader; the members said:{seen}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn no_faults_on_shared(&self, what: &str) {
        assert!(
            !self.shared,
            "the shared etcd cluster takes no faults ({what}): start one of the test's own \
             with EtcdCluster::start"
        );
    }

    /// Chooses ports and directories and starts every member, not waiting.
    fn launch(count: usize) -> EtcdCluster {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let root = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(base_directory())
            .expect("a temporary directory for etcd");
        let ports = free_ports(2 * count);
        let (client_ports, peer_ports) = ports.split_at(count);
        let members: Vec<Member> = (0..count)
            .map(|i| Member {
                name: format!("m{}", i + 1),
                client_port: client_ports[i],
                peer_port: peer_ports[i],
                data_dir: root.path().join(format!("m{}", i + 1)),
                log: root.path().join(format!("m{}.log", i + 1)),
                child: None,
                paused: false,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let cluster = EtcdCluster {
            client_ports: client_ports.to_vec(),
            initial_cluster,
            token: format!(
                "test-{}-{}",
                std::process::id(),
                CLUSTERS.fetch_add(1, Ordering::Relaxed)
            ),
            shared: false,
            members: Mutex::new(members),
            root,
        };
        {
            let mut members = cluster.lock();
            for i in 0..count {
                let child = cluster.spawn_member(&members[i], "new");
                members[i].child = Some(child);
            }
        }
        cluster
    }

    fn spawn_member(&self, member: &Member, state: &str) -> Child {
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .expect("open the etcd member's log");
        let mut command = Command::new("setpriv");
        command
            .args(["--pdeathsig", "KILL", "--", "etcd", "--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data_dir)
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--experimental-watch-progress-notify-interval", "1s"])
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        spawn(command).unwrap_or_else(|e| panic!("start etcd (through setpriv): {e}"))
    }

    /// Waits until each listed member is healthy. A member that exits
    /// because its port is taken makes this return [`StartError::PortTaken`];
    /// one that exits otherwise, or a wait beyond [`PATIENCE`], panics with
    /// the logs.
    async fn await_members(&self, mut pending: Vec<usize>) -> Result<(), StartError> {
        let deadline = Instant::now() + PATIENCE;
        let mut last = vec![Health::NoAnswer("not asked yet".into()); self.len()];
        loop {
            for &i in &pending {
                if let Some(status) = self.exit_status(i) {
                    let tail = self.log_tail(i);
                    if tail.contains("address already in use") {
                        return Err(StartError::PortTaken);
                    }
                    panic!("etcd member {i} exited ({status}) before it was healthy:\n{tail}");
                }
            }
            let answers = futures::future::join_all(pending.iter().map(|&i| self.health(i))).await;
            for (&i, answer) in pending.iter().zip(answers) {
                last[i] = answer;
            }
            pending.retain(|&i| last[i] != Health::Healthy);
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for &i in &pending {
                    let _ = write!(
                        report,
                        "\n--- member {i} ({}), last health {:?}:\n{}",
                        self.endpoint(i),
                        last[i],
                        self.log_tail(i)
                    );
                }
                panic!("timed out waiting for etcd members {pending:?} to be healthy:{report}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// How member `i` exited, if its process has.
    fn exit_status(&self, i: usize) -> Option<String> {
        let mut members = self.lock();
        let child = members[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                members[i].child = None;
                Some(status.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        let members = self.members.get_mut().unwrap_or_else(|e| e.into_inner());
        for member in members.iter_mut() {
            if let Some(mut child) = member.child.take() {
                // SIGKILL ends a paused member too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // `root` (data directories and logs) is removed after this.
    }
}

/// A key prefix of its own, `/test-<n>-<random>/`, for a test on the shared
/// cluster.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "/test-{}-{:08x}/",
        NEXT.fetch_add(1, Ordering::Relaxed),
        fastrand::u32(..)
    )
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
            .name("etcd-spawner".into())
            .spawn(move || {
                // The sender lives in the static: this never ends.
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the etcd spawner thread");
        Mutex::new(jobs)
    });
    let (reply, answer) = mpsc::channel();
    jobs.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .expect("the etcd spawner thread is gone");
    answer.recv().expect("the etcd spawner thread is gone")
}

/// `n` distinct free loopback ports: each bound to port 0 (all held at once,
/// so that none repeats) and released. Another process may take one before
/// etcd binds it; the start then retries.
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
    let base = std::env::temp_dir().join("pod-service-etcd");
    std::fs::create_dir_all(&base).expect("create the etcd test directory");
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

/// Sends SIGSTOP or SIGCONT (`name`) to `pid`, with the shell's `kill` (the
/// crate has no `libc`; `/bin/kill` is not on every system, `sh` is).
fn signal(pid: u32, name: &str) {
    let status = Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", name, &pid.to_string()])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -s {name} {pid} failed");
}

fn log_tail(log: &Path) -> String {
    let text = match std::fs::read(log) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return format!("(no log at {}: {e})", log.display()),
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// One `GET /health`.
async fn health(port: u16) -> Health {
    match request(port, "GET", "/health", "").await {
        Err(error) => Health::NoAnswer(error),
        Ok((_, body)) => {
            let healthy = serde_json::from_str::<serde_json::Value>(&body)
                .is_ok_and(|json| json["health"] == "true");
            if healthy {
                Health::Healthy
            } else {
                Health::Unhealthy(body)
            }
        }
    }
}

/// One HTTP/1.0 request to `127.0.0.1:port` (the server then closes the
/// connection after its response, which has no chunked encoding), bounded
/// by [`REQUEST_TIMEOUT`]. Returns the status code and the body.
async fn request(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        let head = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
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
