//! The system tools some tests need, found or installed: a test that needs
//! one never skips. Where it is missing, it is installed with `apt-get` when
//! that can work here (as root, as in CI); otherwise the test fails naming
//! the one command that installs it.

use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One installation at a time: apt-get holds a lock of its own.
static INSTALLING: Mutex<()> = Mutex::new(());

/// Makes sure `program` is on the PATH, installing Debian `package` if not.
pub fn require(program: &str, package: &str) {
    if found(program) {
        return;
    }
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(|e| e.into_inner());
    if found(program) {
        return;
    }
    let install = format!("apt-get install -y {package}");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !root || !found("apt-get") {
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
    assert!(
        installed && found(program),
        "these tests need {program}, and `{install}` failed: run it by hand"
    );
}

fn found(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}
