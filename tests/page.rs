//! The page's JavaScript unit tests (`src/server/dashboard/page/test/`):
//! the protobuf codec, the gRPC-Web frame reader and calls, the backoff, and
//! the view in the URL. They run under node's own test runner
//! (`node --test`, `node:test` and `node:assert`; no npm, no build step),
//! and this test runs them so that `cargo test` does. The page's behaviour
//! in a real browser is `tests/browser.rs`'s.
//!
//! Node is found or installed like the other tools (see `common/tools.rs`):
//! a missing or too old node fails this test, naming how to install it; it
//! never skips.

#[path = "common/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Longer than the tests take by far: only a test that never ends hits it.
const LIMIT: Duration = Duration::from_secs(120);

/// The oldest node that runs the tests: the page's modules are `.js` files
/// with no `package.json` to say they are modules, and node 20 tells them
/// from scripts by their syntax from 20.19 on (they also use
/// `AbortSignal.any`, from 20.3).
const OLDEST_NODE: (u32, u32) = (20, 19);

#[tokio::test]
async fn the_pages_javascript_unit_tests_pass() {
    let node = tools::require("node", "nodejs");
    check_version(&node);
    let page = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/server/dashboard/page");
    let mut files: Vec<PathBuf> = std::fs::read_dir(page.join("test"))
        .expect("the page's test directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(".test.js"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.test.js in {}", page.display());
    // Files rather than the directory: since node 21 an argument is a glob,
    // and a directory's name matches the directory, not the tests in it.
    let run = tokio::process::Command::new(&node)
        .arg("--test")
        .args(&files)
        .current_dir(&page)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(LIMIT, run)
        .await
        .unwrap_or_else(|_| panic!("node --test ran past {LIMIT:?}: a test that never ends?"))
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // The runner's summary: every file ran tests, and none failed.
    let count = |name: &str| -> u32 {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# {name} ")))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `# {name}` in node's summary:\n{stdout}"))
    };
    assert_eq!(count("fail"), 0, "{stdout}");
    assert!(
        count("pass") >= files.len() as u32,
        "fewer tests than files:\n{stdout}"
    );
    println!(
        "node --test: {} tests passed in {} files",
        count("pass"),
        files.len()
    );
}

/// Fails, naming how to get a newer node, when `node` is older than [`OLDEST_NODE`].
fn check_version(node: &Path) {
    let output = Command::new(node)
        .arg("--version")
        .output()
        .expect("run node --version");
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let mut numbers = version
        .trim_start_matches('v')
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let found = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    assert!(
        found >= OLDEST_NODE,
        "the page's unit tests need node {}.{} or newer, and {} is {version:?}: \
         install a newer one (`apt-get install nodejs` on Debian 13; on Debian 12, \
         whose nodejs is 18, NodeSource's)",
        OLDEST_NODE.0,
        OLDEST_NODE.1,
        node.display()
    );
}
