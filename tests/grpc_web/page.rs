//! The page as a browser gets it, and its JavaScript unit tests.
//!
//! Served: `GET /` and every file the page names or its modules import,
//! with their types and security headers; a foreign `Host` (DNS rebinding),
//! another `Origin` and a preflight refused, changing nothing;
//! `--no-dashboard`. (Its behaviour in a real browser is `tests/browser.rs`'s,
//! and its codec against the contract `tests/grpc_web.rs`'s.)
//!
//! Unit tests (`src/server/dashboard/page/test/`): the protobuf codec, the
//! gRPC-Web frame reader and calls, the backoff, the view in the URL, and
//! the writes greyed out once the server refused them as PERMISSION_DENIED.
//! They run under node's own test runner (`node --test`, `node:test` and
//! `node:assert`; no npm, no build step), and this file runs them so that
//! `cargo test` does. Node is found or installed like the other tools (see
//! `common/tools.rs`): a missing or too old node fails the test, naming how
//! to install it; it never skips.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::grpc_web::{Frames, call, get, header, send};
use common::{Backend, TestServer, tools};
use http_body_util::Full;
use pod_service::contract::{ListPodsRequest, ListPodsResponse, POD_SERVICE};
use pod_service::sample;
use pod_service::server::ServerConfig;

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
    // The runner's summary: none failed, and the files held tests (a file
    // that fails to load is a failure of its own).
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_its_security_headers() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let (head, page) = get(&server, "/?namespace=dev&pod=scratchpad", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&head, "content-security-policy"),
        Some(pod_service::server::dashboard::CONTENT_SECURITY_POLICY)
    );
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&head, "x-frame-options"), Some("DENY"));
    assert!(
        head.headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-"))
    );
    // Every file the page names, and every module its scripts import, is
    // served, with a type the CSP and `nosniff` accept; none comes from
    // elsewhere.
    let page = String::from_utf8(page.to_vec()).unwrap();
    let mut names: Vec<String> = page
        .split(['"', '\''])
        .filter(|part| part.starts_with('/') && part.contains('.'))
        .map(str::to_owned)
        .collect();
    assert!(
        names.iter().any(|name| name == "/app.js") && names.iter().any(|name| name == "/style.css"),
        "{names:?}"
    );
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page loads only its own files"
    );
    let mut served = std::collections::BTreeSet::new();
    while let Some(name) = names.pop() {
        if !served.insert(name.clone()) {
            continue;
        }
        let (head, body) = get(&server, &name, &[]).await;
        assert_eq!(head.status, 200, "{name}");
        assert!(!body.is_empty(), "{name}");
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected file type {other:?} in {name}"),
        };
        assert_eq!(header(&head, "content-type"), Some(expected), "{name}");
        if expected.starts_with("text/javascript") {
            names.extend(imports(&String::from_utf8_lossy(&body)));
        }
    }
    assert!(
        served.contains("/grpc-web.js") && served.contains("/protobuf.js"),
        "the modules app.js imports, directly or not: {served:?}"
    );
    let (head, body) = get(&server, "/etc/passwd", &[]).await;
    assert_eq!(head.status, 404);
    assert_eq!(body, "not found: the dashboard is at /");
}

/// The modules a script imports (`import ... from "./NAME.js"`), as paths
/// of the page: every one is beside it, at the root.
fn imports(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("import "))
        .map(|import| {
            let (_, from) = import
                .rsplit_once(" from ")
                .unwrap_or_else(|| panic!("an import the test cannot read: {import}"));
            let name = from.trim_end_matches(';').trim_matches('"');
            let name = name
                .strip_prefix("./")
                .unwrap_or_else(|| panic!("a module from elsewhere than beside the page: {name}"));
            format!("/{name}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_hosts_other_origins_and_preflights_are_refused() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let port = server.addr.port();
    let list = ListPodsRequest::default();
    // DNS rebinding: a site that points its name at 127.0.0.1.
    let rebound = format!("pods.evil.example:{port}");
    let (head, body) = get(&server, "/", &[("host", &rebound)]).await;
    assert_eq!(head.status, 403);
    assert!(
        String::from_utf8_lossy(&body).contains("loopback"),
        "{body:?}"
    );
    let (head, _) = call(&server, "ListPods", &list, &[("host", &rebound)]).await;
    assert_eq!(
        head.status, 403,
        "the API is refused too, not just the page"
    );
    // Loopback names are this machine's, whichever is used.
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let (head, _) = call(&server, "ListPods", &list, &[("host", &host)]).await;
        assert_eq!(
            (head.status.as_u16(), header(&head, "grpc-status")),
            (200, None),
            "{host}"
        );
    }
    // Another site's page calling the API.
    let (head, _) = call(
        &server,
        "ListPods",
        &list,
        &[("origin", "http://evil.example")],
    )
    .await;
    assert_eq!(head.status, 403);
    let own = format!("http://{}", server.addr);
    let (head, _) = call(&server, "ListPods", &list, &[("origin", &own)]).await;
    assert_eq!(
        (head.status.as_u16(), header(&head, "grpc-status")),
        (200, None)
    );
    // A CORS preflight: refused, and with no CORS headers.
    let preflight = http::Request::options(format!("/{POD_SERVICE}/SyncPods"))
        .header("host", server.addr.to_string())
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type,x-grpc-web")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (head, _) = send(&server, preflight).await;
    assert_eq!(head.status, 403);
    assert!(
        head.headers
            .keys()
            .all(|name| !name.as_str().starts_with("access-control-"))
    );
    // Nothing reached the store.
    assert_eq!(server.store.version(), sample::SAMPLE_PODS.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_dashboard_turns_the_page_off_and_keeps_grpc_web() {
    let config = ServerConfig {
        dashboard: false,
        ..ServerConfig::default()
    };
    let server = TestServer::with_sample(Backend::Memory, config).await;
    let (head, body) = get(&server, "/", &[]).await;
    assert_eq!(head.status, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("--no-dashboard"),
        "{body:?}"
    );
    let (head, body) = call(&server, "ListPods", &ListPodsRequest::default(), &[]).await;
    assert_eq!(head.status, 200);
    let list: ListPodsResponse = Frames::new(body).message().await;
    assert_eq!(list.pods.len(), sample::SAMPLE_PODS.len());
}
