//! The binaries run as real processes: `pod-server`, to be stopped or
//! killed; the clients, read line by line as they run, or run to completion;
//! and daemons tied to the test process (the members of `super::cluster`),
//! which die with it however it ends.
//!
//! A tied daemon runs under `setpriv --pdeathsig KILL` (util-linux, on
//! every Debian system), so the kernel kills it when the thread that
//! started it exits. That thread is one that lives as long as the process
//! (see [`spawn_tied`]): a test thread or a runtime's worker would end
//! before a cluster shared by the whole test binary should, which is not
//! dropped (statics never are) but dies with the process. `setpriv` was
//! chosen over a `pre_exec` hook calling `prctl` because `libc` is not one
//! of the crate's dependencies, and over a watchdog wrapper because
//! `setpriv` execs the daemon: the child's pid is the daemon's, for
//! [`signal`] and for killing it.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock, mpsc};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

use super::within;

pub struct ServerProcess {
    pub child: Child,
    pub addr: String,
    /// Where it serves its metrics (`--metrics-addr`), if it does.
    pub metrics_addr: Option<String>,
}

impl ServerProcess {
    /// Starts `pod-server` on `addr` (port 0: any) with a data directory and
    /// waits until it listens. A port that is briefly taken after a previous
    /// incarnation died is retried.
    pub async fn start(data_dir: &Path, addr: &str, extra: &[&str]) -> Self {
        let store = [OsStr::new("--data-dir"), data_dir.as_os_str()];
        Self::start_on_store(&store, addr, extra).await
    }

    /// Starts a `pod-server` replica of the registry under `prefix` in the
    /// etcd cluster at `endpoints` (comma-separated), and waits until it listens.
    pub async fn start_replica(endpoints: &str, prefix: &str, addr: &str, extra: &[&str]) -> Self {
        Self::start_replica_with_env(endpoints, prefix, addr, extra, &[]).await
    }

    /// [`start_replica`](Self::start_replica), with the environment
    /// variables `env` set (secrets that no flag should carry).
    pub async fn start_replica_with_env(
        endpoints: &str,
        prefix: &str,
        addr: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let store = [
            OsStr::new("--etcd-endpoints"),
            OsStr::new(endpoints),
            OsStr::new("--etcd-prefix"),
            OsStr::new(prefix),
        ];
        Self::start_on_store_with_env(&store, addr, extra, env).await
    }

    async fn start_on_store(store: &[&OsStr], addr: &str, extra: &[&str]) -> Self {
        Self::start_on_store_with_env(store, addr, extra, &[]).await
    }

    async fn start_on_store_with_env(
        store: &[&OsStr],
        addr: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        within("the server to listen", async {
            loop {
                let mut command = Command::new(env!("CARGO_BIN_EXE_pod-server"));
                command.envs(env.iter().copied());
                match Self::try_start_command(command, store, addr, extra).await {
                    Ok(server) => return server,
                    Err(line) if line.contains("cannot listen") => {
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await
                    }
                    Err(line) => panic!("pod-server failed: {line}"),
                }
            }
        })
        .await
    }

    /// Starts `pod-server` whose files cannot grow beyond `max_file_kib`, as
    /// on a full disk: writing past it fails with EFBIG (SIGXFSZ, which
    /// would kill the process instead, is ignored).
    pub async fn start_with_full_disk(data_dir: &Path, max_file_kib: u64) -> Self {
        let limited = format!("trap '' XFSZ; ulimit -f {max_file_kib}; exec \"$0\" \"$@\"");
        let mut command = Command::new("bash");
        command.args(["-c", &limited, env!("CARGO_BIN_EXE_pod-server")]);
        within(
            "the server to listen",
            Self::try_start_command(
                command,
                &[OsStr::new("--data-dir"), data_dir.as_os_str()],
                "127.0.0.1:0",
                &[],
            ),
        )
        .await
        .unwrap_or_else(|line| panic!("pod-server failed: {line}"))
    }

    async fn try_start_command(
        mut command: Command,
        store: &[&OsStr],
        addr: &str,
        extra: &[&str],
    ) -> Result<Self, String> {
        let mut child = command
            .args(["--addr", addr, "--no-sample"])
            .args(store)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pod-server");
        let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut metrics_addr = None;
        loop {
            let Some(line) = log.next_line().await.expect("read stderr") else {
                return Err("exited without a word".into());
            };
            if line.starts_with("error:") {
                return Err(line);
            }
            if let Some(rest) = line.split("metrics at http://").nth(1) {
                metrics_addr = rest.split('/').next().map(str::to_owned);
            }
            if line.contains("pod-server listening")
                && let Some(rest) = line.split("addr=").nth(1)
            {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                // Keep draining the log so the server never blocks on it.
                tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
                return Ok(ServerProcess {
                    child,
                    addr,
                    metrics_addr,
                });
            }
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill");
        self.child.wait().await.expect("wait");
    }
}

/// A long-running client binary whose stdout is read line by line.
pub struct ClientProcess {
    pub child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl ClientProcess {
    /// Starts the client at the path `program`. Its stderr is discarded, as
    /// with [`ClientProcess::of`].
    pub fn spawn(program: &str, args: &[&str]) -> Self {
        let mut command = Command::new(program);
        command.env_remove("POD_SERVICE_ADDR").kill_on_drop(true);
        Self::start(command, args, Stdio::null())
    }

    /// Starts the client binary `name` (as [`bin`] names them). Its stderr
    /// is discarded: a pipe nobody reads would fill and block the client.
    pub fn of(name: &str, args: &[&str]) -> Self {
        Self::start(bin(name), args, Stdio::null())
    }

    /// [`ClientProcess::of`], with stderr kept for [`ClientProcess::kill`]
    /// to return; for clients that write little to it.
    pub fn of_keeping_stderr(name: &str, args: &[&str]) -> Self {
        Self::start(bin(name), args, Stdio::piped())
    }

    fn start(mut command: Command, args: &[&str], stderr: Stdio) -> Self {
        let mut child = command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn the client");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        ClientProcess { child, lines }
    }

    pub async fn next_line(&mut self) -> String {
        within("a line of output", self.lines.next_line())
            .await
            .expect("read stdout")
            .expect("output ended")
    }

    /// The next line of `pod-logs --numbers`, as its number and its text.
    pub async fn next_numbered_line(&mut self) -> (u64, String) {
        let line = self.next_line().await;
        let (number, text) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("not a numbered line: {line:?}"));
        let number = number
            .parse()
            .unwrap_or_else(|_| panic!("not a line number: {line:?}"));
        (number, text.to_owned())
    }

    /// The next line, in words: tables pad their columns.
    pub async fn next_words(&mut self) -> Vec<String> {
        let line = self.next_line().await;
        line.split_whitespace().map(str::to_owned).collect()
    }

    pub async fn write(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(text.as_bytes()).await.expect("write stdin");
    }

    /// Kills it and returns all it wrote to stderr (the pipe ends as it
    /// dies). Only for a client started by
    /// [`ClientProcess::of_keeping_stderr`].
    pub async fn kill(mut self) -> String {
        self.child.start_kill().expect("kill");
        let mut pipe = self
            .child
            .stderr
            .take()
            .expect("stderr kept: start it with ClientProcess::of_keeping_stderr");
        let mut stderr = String::new();
        within("stderr to end", pipe.read_to_string(&mut stderr))
            .await
            .expect("read stderr");
        stderr
    }
}

/// A client binary (or `pod-server`, or the tour) by name, with the
/// default-address variable cleared, killed if the test drops it.
pub fn bin(name: &str) -> Command {
    let path = match name {
        "pod-server" => env!("CARGO_BIN_EXE_pod-server"),
        "list-pods" => env!("CARGO_BIN_EXE_list-pods"),
        "watch-pods" => env!("CARGO_BIN_EXE_watch-pods"),
        "upload-logs" => env!("CARGO_BIN_EXE_upload-logs"),
        "pod-logs" => env!("CARGO_BIN_EXE_pod-logs"),
        "sync-pods" => env!("CARGO_BIN_EXE_sync-pods"),
        "tour" => env!("CARGO_BIN_EXE_tour"),
        other => panic!("no binary {other}"),
    };
    let mut command = Command::new(path);
    command.env_remove("POD_SERVICE_ADDR").kill_on_drop(true);
    command
}

/// What a binary run to completion printed, and its exit status.
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn of(output: std::process::Output) -> Self {
        Output {
            code: output.status.code(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Asserts that the binary failed as the binaries fail: one line on
    /// stderr, starting with "error: " and holding `contains`, and exit
    /// code 1.
    pub fn assert_one_line_error(&self, contains: &str) {
        assert_eq!(self.code, Some(1), "stderr: {}", self.stderr);
        assert_eq!(self.stderr.lines().count(), 1, "{}", self.stderr);
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        assert!(self.stderr.contains(contains), "{}", self.stderr);
    }
}

/// Runs a binary to completion, with no input.
pub async fn run(mut command: Command, what: &str) -> Output {
    let output = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output();
    Output::of(within(what, output).await.unwrap())
}

/// Runs a binary to completion with `input` as its stdin.
pub async fn run_with_input(mut command: Command, what: &str, input: &str) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    Output::of(within(what, child.wait_with_output()).await.unwrap())
}

/// A command that runs `program` tied to the test process, for
/// [`spawn_tied`]; the daemon's arguments are added to it.
pub fn tied(program: &Path) -> std::process::Command {
    let mut command = std::process::Command::new("setpriv");
    command.args(["--pdeathsig", "KILL", "--"]).arg(program);
    command
}

/// Starts a [`tied`] command from a thread that lives as long as the
/// process, so that the child's parent-death signal (which fires when the
/// *thread* that forked it exits) fires only when the test process ends.
pub fn spawn_tied(command: std::process::Command) -> std::io::Result<std::process::Child> {
    type Job = (
        std::process::Command,
        mpsc::Sender<std::io::Result<std::process::Child>>,
    );
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let jobs = SPAWNER.get_or_init(|| {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tied-spawner".into())
            .spawn(move || {
                // The sender lives in the static: this never ends.
                for (mut command, reply) in queue {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the spawner thread");
        Mutex::new(jobs)
    });
    let (reply, answer) = mpsc::channel();
    jobs.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command, reply))
        .expect("the spawner thread is gone");
    answer.recv().expect("the spawner thread is gone")
}

/// Sends signal `name` (`STOP`, `CONT`, ...) to `pid`, with the shell's
/// `kill` (the crate has no `libc`; `/bin/kill` is not on every system,
/// `sh` is).
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -s \"$0\" \"$1\"", name, &pid.to_string()])
        .status()
        .expect("run sh");
    assert!(status.success(), "kill -s {name} {pid} failed");
}

/// `n` distinct free loopback ports: each bound to port 0 (all held at once,
/// so that none repeats) and released. Another process may take one before
/// it is bound again: a caller retries on new ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local address").port())
        .collect()
}
