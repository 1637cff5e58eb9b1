//! Clusters of real daemon processes on loopback, written once for every
//! daemon the tests run (etcd members in `super::etcd`, NATS nodes in
//! `super::nats`): free ports, data directories, logs, start, kill, pause,
//! restart and kill-on-drop here; the waits for readiness and for a leader
//! in [`wait`]. A [`Daemon`] says only what is its own: its command line,
//! how to ask a member whether it is ready, and whom a member names as its
//! leader.
//!
//! Members are numbered from 0 and named by their daemon. Each listens on
//! [`Daemon::PORTS`] free loopback ports (a port taken between choosing and
//! binding makes the whole start retry on new ports) and keeps its data in
//! a directory of its own, `<root>/<name>`, with its log (stdout and
//! stderr) next to it, `<root>/<name>.log`, appended to across restarts.
//!
//! Two ways to get a cluster: [`Cluster::start`], one of the test's own,
//! killed when dropped, for tests that inject faults ([`Cluster::kill`],
//! [`Cluster::restart`], [`Cluster::pause`], [`Cluster::resume`]); and one
//! 3-member cluster per test binary, which each daemon's `shared()` keeps
//! through [`Cluster::share`], for tests that only need keys or streams of
//! their own. The shared one takes no faults: the fault controls panic on
//! it.
//!
//! No daemon outlives the test process: a cluster kills its members when
//! dropped, and each member is tied to the test process
//! ([`super::process::tied`]), so that the kernel kills it when the process
//! ends, however it ends. Directories left by a process that was killed
//! are removed by the next test process that starts a cluster of the same
//! daemon.

pub mod wait;

use std::fs::OpenOptions;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::process::{free_ports, signal, spawn_tied, tied};
pub use wait::{Health, View, json, probe};

/// Starts on ports that another process took in the meantime, at most.
const START_ATTEMPTS: usize = 5;

/// Lines of a member's log quoted when it fails.
const LOG_TAIL_LINES: usize = 25;

/// What is particular to one daemon; a value of it holds the settings
/// every member of one cluster shares (its name, its peers' addresses).
pub trait Daemon: Sized + Send + Sync + 'static {
    /// Its short name, in messages and in the directory of its clusters.
    const NAME: &'static str;
    /// What one of its processes is called in messages.
    const MEMBER: &'static str;
    /// The program, and the Debian package that installs it.
    const PROGRAM: &'static str;
    const PACKAGE: &'static str;
    /// How many ports each member listens on.
    const PORTS: usize;

    /// Member `i`'s name, which its directory and log are named after.
    fn member_name(i: usize) -> String;
    /// The settings of a cluster of `members`, whose ports are chosen;
    /// `tag` is unique to the cluster (for a cluster name or token).
    fn settings(tag: String, members: &[Member]) -> Self;
    /// Adds `member`'s arguments to `command`; `rejoining` when it starts
    /// again on its data after a kill.
    fn args(&self, command: &mut Command, member: &Member, rejoining: bool);
    /// Asks member `i` once whether it is ready (bounded by a short
    /// timeout, as [`probe`] and [`json`] are).
    fn check(cluster: &Cluster<Self>, i: usize) -> impl Future<Output = Health> + Send;
    /// Asks member `i` once whom it names as its leader.
    fn view(cluster: &Cluster<Self>, i: usize)
    -> impl Future<Output = Result<View, String>> + Send;
}

/// Where a member lives, fixed for the cluster's life.
pub struct Member {
    pub name: String,
    /// Its ports, in the order its daemon uses them.
    pub ports: Vec<u16>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

/// A member's process: None once killed.
#[derive(Default)]
struct Process {
    child: Option<Child>,
    paused: bool,
}

/// A running cluster of daemon `D` on loopback (see the module
/// documentation).
pub struct Cluster<D: Daemon> {
    daemon: D,
    program: PathBuf,
    members: Vec<Member>,
    processes: Mutex<Vec<Process>>,
    /// The shared cluster takes no faults.
    shared: bool,
    /// Holds the members' data directories and logs; removed last.
    root: tempfile::TempDir,
}

impl<D: Daemon> Cluster<D> {
    /// Starts a cluster of `count` members of the test's own and waits
    /// until every member is ready. Panics (with the members' logs) if it
    /// does not come up within [`super::PATIENCE`].
    pub async fn start(count: usize) -> Self {
        assert!(count > 0, "a cluster has at least one {}", D::MEMBER);
        let program = super::tools::require(D::PROGRAM, D::PACKAGE);
        super::tools::require("setpriv", "util-linux");
        remove_stale_directories(&base_directory::<D>());
        for _ in 0..START_ATTEMPTS {
            let cluster = Self::launch(&program, count);
            match cluster.await_members((0..count).collect()).await {
                Ok(()) => return cluster,
                // Dropping the cluster kills the members that did start.
                Err(wait::PortTaken) => drop(cluster),
            }
        }
        panic!(
            "{}: {START_ATTEMPTS} starts in a row found a chosen port taken",
            D::NAME
        );
    }

    /// Like [`start`](Self::start), for code outside any runtime: the wait
    /// runs on a runtime of its own, in a thread of its own (so that it may
    /// be called from inside another runtime too). The cluster does not
    /// depend on that runtime: its members are plain child processes.
    pub fn start_blocking(count: usize) -> Self {
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to start a cluster")
                .block_on(Self::start(count))
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The 3-member cluster kept in `slot`, started by the first call
    /// (which blocks until it is ready, a few seconds) and alive until the
    /// process exits. It takes no faults.
    pub fn share(slot: &'static OnceLock<Self>) -> &'static Self {
        slot.get_or_init(|| {
            let mut cluster = Self::start_blocking(3);
            cluster.shared = true;
            cluster
        })
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Where member `i` lives.
    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// Member `i`'s process id, unless it was killed.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.lock()[i].child.as_ref().map(Child::id)
    }

    /// The file of member `i`'s log: its stdout and stderr, appended to
    /// across restarts.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.members[i].log.clone()
    }

    /// The last lines of member `i`'s log.
    pub fn log_tail(&self, i: usize) -> String {
        let log = &self.members[i].log;
        let text = match std::fs::read(log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => return format!("(no log at {}: {e})", log.display()),
        };
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Kills member `i` with SIGKILL (paused or not) and waits until it has
    /// exited. Its data directory stays, for [`restart`](Self::restart).
    pub fn kill(&self, i: usize) {
        self.no_faults_on_shared("kill");
        let mut processes = self.lock();
        let process = &mut processes[i];
        let mut child = process
            .child
            .take()
            .unwrap_or_else(|| panic!("{} is already killed", self.who(i)));
        // Fails only if it has already exited, which the wait then reaps.
        let _ = child.kill();
        child
            .wait()
            .unwrap_or_else(|e| panic!("wait for the killed {}: {e}", self.who(i)));
        process.paused = false;
    }

    /// Starts killed member `i` again on its ports and data directory and
    /// waits until it is ready.
    pub async fn restart(&self, i: usize) {
        self.no_faults_on_shared("restart");
        {
            let mut processes = self.lock();
            assert!(
                processes[i].child.is_none(),
                "{} is running: kill it before restarting it",
                self.who(i)
            );
            processes[i].child = Some(self.spawn_member(i, true));
        }
        if self.await_members(vec![i]).await.is_err() {
            panic!(
                "{} could not bind its ports {:?} again:\n{}",
                self.who(i),
                self.members[i].ports,
                self.log_tail(i)
            );
        }
    }

    /// Stops member `i` with SIGSTOP: it holds its connections and answers
    /// nothing, as a hung or partitioned machine would.
    pub fn pause(&self, i: usize) {
        self.freeze(i, "pause", true);
    }

    /// Continues paused member `i` with SIGCONT. It catches up on its own;
    /// [`await_ready`](Self::await_ready) waits until it has.
    pub fn resume(&self, i: usize) {
        self.freeze(i, "resume", false);
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Process>> {
        self.processes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `etcd member 2`, `nats node 0`: member `i` in messages.
    fn who(&self, i: usize) -> String {
        format!("{} {} {i}", D::NAME, D::MEMBER)
    }

    fn no_faults_on_shared(&self, what: &str) {
        assert!(
            !self.shared,
            "the shared {} cluster takes no faults ({what}): start one of the test's own",
            D::NAME
        );
    }

    /// Sends member `i` SIGSTOP (`frozen`) or SIGCONT, for `what`.
    fn freeze(&self, i: usize, what: &str, frozen: bool) {
        self.no_faults_on_shared(what);
        let mut processes = self.lock();
        let pid = processes[i]
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("{} is killed: it cannot {what}", self.who(i)))
            .id();
        signal(pid, if frozen { "STOP" } else { "CONT" });
        processes[i].paused = frozen;
    }

    /// Chooses ports and directories and starts every member, not waiting.
    fn launch(program: &Path, count: usize) -> Self {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let root = tempfile::Builder::new()
            .prefix(&format!("{}-", std::process::id()))
            .tempdir_in(base_directory::<D>())
            .unwrap_or_else(|e| panic!("a temporary directory for {}: {e}", D::NAME));
        let members: Vec<Member> = free_ports(D::PORTS * count)
            .chunks(D::PORTS)
            .enumerate()
            .map(|(i, ports)| Member {
                name: D::member_name(i),
                ports: ports.to_vec(),
                data_dir: root.path().join(D::member_name(i)),
                log: root.path().join(format!("{}.log", D::member_name(i))),
            })
            .collect();
        let tag = format!(
            "test-{}-{}-{:08x}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        let cluster = Cluster {
            daemon: D::settings(tag, &members),
            program: program.to_owned(),
            processes: Mutex::new((0..count).map(|_| Process::default()).collect()),
            members,
            shared: false,
            root,
        };
        for i in 0..count {
            let child = cluster.spawn_member(i, false);
            cluster.lock()[i].child = Some(child);
        }
        cluster
    }

    fn spawn_member(&self, i: usize, rejoining: bool) -> Child {
        let member = &self.members[i];
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&member.log)
            .unwrap_or_else(|e| panic!("open the log of {}: {e}", self.who(i)));
        let stdout = log
            .try_clone()
            .unwrap_or_else(|e| panic!("share the log of {}: {e}", self.who(i)));
        let mut command = tied(&self.program);
        self.daemon.args(&mut command, member, rejoining);
        command
            .current_dir(self.root.path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(log);
        spawn_tied(command).unwrap_or_else(|e| {
            let program = self.program.display();
            panic!("start {program} (through setpriv): {e}")
        })
    }

    /// How member `i` exited, if its process has.
    fn exit_status(&self, i: usize) -> Option<String> {
        let mut processes = self.lock();
        let child = processes[i].child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                processes[i].child = None;
                Some(status.to_string())
            }
            Ok(None) => None,
            Err(e) => Some(format!("cannot wait for it: {e}")),
        }
    }

    /// The members that run and are not paused: those that can answer.
    fn answering(&self) -> Vec<usize> {
        let processes = self.lock();
        (0..self.len())
            .filter(|&i| processes[i].child.is_some() && !processes[i].paused)
            .collect()
    }
}

impl<D: Daemon> Drop for Cluster<D> {
    fn drop(&mut self) {
        let processes = self.processes.get_mut().unwrap_or_else(|e| e.into_inner());
        for process in processes.iter_mut() {
            if let Some(mut child) = process.child.take() {
                // SIGKILL ends a paused member too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // `root` (data directories and logs) is removed after this.
    }
}

/// Where the clusters of `D` keep their directories, one `<pid>-<random>`
/// each.
fn base_directory<D: Daemon>() -> PathBuf {
    let base = std::env::temp_dir().join(format!("pod-service-{}", D::NAME));
    std::fs::create_dir_all(&base).unwrap_or_else(|e| panic!("create {}: {e}", base.display()));
    base
}

/// Removes the directories in `base` of test processes that are gone
/// (killed before they could clean up, or a shared cluster's, which is
/// never dropped). Safe at any time: a running process's pid is in /proc.
fn remove_stale_directories(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
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
}
