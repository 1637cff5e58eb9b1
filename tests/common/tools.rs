//! The system tools some tests need, found or installed: a test that needs
//! one never skips. Where it is missing, it is installed with `apt-get` when
//! that can work here (as root, as in CI); otherwise the test fails naming
//! the one command that installs it.
//!
//! A tool is found on the PATH, or else in the `sbin` directories, which a
//! user's PATH often lacks: Debian installs some daemons there (package
//! `nats-server` puts `nats-server` in `/usr/sbin`), and a harness runs
//! such a tool by the path [`require`] returns.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One installation at a time: apt-get holds a lock of its own.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Where the harnesses look for a program that is not on the PATH.
const SBIN: [&str; 3] = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Makes sure `program` is installed, installing Debian `package` if not,
/// and returns its path (see [`locate`]).
pub fn require(program: &str, package: &str) -> PathBuf {
    if let Some(path) = locate(program) {
        return path;
    }
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = locate(program) {
        return path;
    }
    let install = format!("apt-get install -y {package}");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !root || locate("apt-get").is_none() {
        panic!("these tests need {program}: install it with `sudo {install}`");
    }
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let installed = apt(&["install", "-y", "--no-install-recommends", package])
        || (apt(&["update"]) && apt(&["install", "-y", "--no-install-recommends", package]));
    match locate(program) {
        Some(path) if installed => path,
        _ => panic!("these tests need {program}, and `{install}` failed: run it by hand"),
    }
}

/// The path of `program`: where the shell's `command -v` finds it on the
/// PATH, or else in one of the [`SBIN`] directories.
pub fn locate(program: &str) -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", "command -v \"$0\"", program])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    on_path.or_else(|| {
        SBIN.iter()
            .map(|dir| PathBuf::from(dir).join(program))
            .find(|path| executable(path))
    })
}

fn executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}
