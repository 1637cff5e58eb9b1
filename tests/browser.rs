//! The dashboard in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, installed when missing) loads the page from a real
//! server and is watched through WebDriver, while real gRPC clients and the
//! real binaries change the pods.
//!
//! The page's tests hooks are `window.podDashboard.states` (every state the
//! connection indicator has shown, so that a brief `reconnecting` is not
//! missed) and the DOM itself: rows carry `data-key="namespace/name"`.

mod common;
// The page with a read-only token (one test binary: each is a link of the
// whole crate).
#[path = "browser/read_only.rs"]
mod read_only;

use common::browser::Browser;
use common::{Backend, Session, TestServer, pod};
use pod_service::contract::{ListPodsRequest, Token};
use pod_service::domain::PodKey;
use pod_service::sample;
use pod_service::server::ServerConfig;

fn sample_keys() -> Vec<String> {
    let mut keys: Vec<String> = sample::SAMPLE_PODS
        .iter()
        .map(|(namespace, name, ..)| format!("{namespace}/{name}"))
        .collect();
    keys.sort();
    keys
}

/// A script that is true once the rows are exactly `keys`, in order.
fn rows_are(keys: &[String]) -> String {
    format!(
        "return JSON.stringify([...document.querySelectorAll('#pods tr[data-key]')]
           .filter(row => !row.classList.contains('deleted') && !row.hidden)
           .map(row => row.dataset.key)) === {:?}",
        serde_json::to_string(keys).unwrap()
    )
}

fn connection_is(state: &str) -> String {
    format!("return document.querySelector('#connection')?.dataset.state === {state:?}")
}

fn has_row(key: &str) -> String {
    format!("return !!document.querySelector('#pods tr[data-key={key:?}]:not(.deleted)')")
}

fn has_no_row(key: &str) -> String {
    format!("return !document.querySelector('#pods tr[data-key={key:?}]')")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_shows_the_pods_and_follows_other_clients() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser
        .wait_for("the sample pods", &rows_are(&sample_keys()))
        .await;
    browser
        .wait_for("the watch to be live", &connection_is("live"))
        .await;
    // Statuses are coloured by kind and counted.
    let status = browser
        .eval(
            "return document.querySelector('#pods tr[data-key=\"dev/scratchpad\"]').dataset.status",
        )
        .await;
    assert_eq!(status, "CrashLoopBackOff");
    let counts = browser.text("#counts").await;
    assert!(
        counts.contains("Running 5") && counts.contains("CrashLoopBackOff 1"),
        "{counts}"
    );

    // Another client creates a pod, then deletes one.
    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    assert_eq!(
        session
            .apply(pod("dev", "new-one", "Pending", 1))
            .await
            .code,
        0
    );
    browser
        .wait_for("the new pod's row", &has_row("dev/new-one"))
        .await;
    assert_eq!(session.delete("dev", "scratchpad").await.code, 0);
    browser
        .wait_for("the deleted pod's row to go", &has_no_row("dev/scratchpad"))
        .await;

    // The view lives in the URL: one namespace, reloaded as linked.
    browser
        .open(&format!("{}/?namespace=production", server.url()))
        .await;
    let production = ["production/api", "production/postgres", "production/web"].map(String::from);
    browser
        .wait_for("production's pods only", &rows_are(&production))
        .await;
    let picked = browser
        .eval("return document.querySelector('#namespace').value")
        .await;
    assert_eq!(picked, "production");

    // The README's screenshot: all namespaces, a pod's log open.
    let lines = ["GET /healthz 200 0.4ms", "GET /api/pods 200 3.1ms"].map(String::from);
    server
        .store
        .fresh(0)
        .await
        .unwrap()
        .append_log(PodKey::new("production", "web"), lines.to_vec())
        .await
        .expect("logs");
    browser
        .open(&format!("{}/?namespace=production&pod=web", server.url()))
        .await;
    browser
        .wait_for(
            "the log",
            "return document.querySelectorAll('#log-lines .line').length === 2",
        )
        .await;
    let shot = browser.screenshot().await;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, shot).expect("write the screenshot");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_page_is_live_again_with_every_change() {
    let mut server = TestServer::with_sample(Backend::Durable, ServerConfig::default()).await;
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser
        .wait_for("the watch to be live", &connection_is("live"))
        .await;
    browser
        .wait_for("the sample pods", &rows_are(&sample_keys()))
        .await;

    server.stop().await;
    browser
        .wait_for(
            "the indicator to show the drop",
            &connection_is("reconnecting"),
        )
        .await;
    // Changes the page cannot see while the server is down.
    server.apply("staging", "while-down", "Running", 1).await;
    server.delete("production", "api").await;
    server.restart().await;
    browser
        .wait_for("the watch to be live again", &connection_is("live"))
        .await;
    let mut expected: Vec<String> = sample_keys()
        .into_iter()
        .filter(|key| key != "production/api")
        .chain(["staging/while-down".to_owned()])
        .collect();
    expected.sort();
    browser
        .wait_for("every change made meanwhile", &rows_are(&expected))
        .await;
    let states = browser.eval("return window.podDashboard.states").await;
    let states: Vec<String> = serde_json::from_value(states).unwrap();
    let live_again = states.iter().rposition(|state| state == "live").unwrap();
    let reconnecting = states.iter().position(|state| state == "reconnecting");
    assert!(reconnecting.is_some_and(|at| at < live_again), "{states:?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_log_shows_lines_from_upload_logs() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let browser = Browser::start().await;
    browser
        .open(&format!("{}/?namespace=dev&pod=scratchpad", server.url()))
        .await;
    browser
        .wait_for(
            "the log viewer",
            "return document.querySelector('#log')?.hidden === false",
        )
        .await;
    assert_eq!(browser.text("#log-title").await, "dev/scratchpad");
    let follow = browser
        .eval("return document.querySelector('#follow').checked")
        .await;
    assert_eq!(follow, true);
    // The log is followed: lines uploaded now appear. One is markup, which
    // must show as text.
    let input = "starting up\n<b>not bold</b>\nready on :8080\n";
    let mut upload = tokio::process::Command::new(env!("CARGO_BIN_EXE_upload-logs"))
        .args([
            "--addr",
            &server.url(),
            "--namespace",
            "dev",
            "--pod",
            "scratchpad",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn upload-logs");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = upload.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
    }
    assert!(upload.wait().await.unwrap().success());
    browser
        .wait_for(
            "the uploaded lines",
            "return document.querySelectorAll('#log-lines .line').length === 3",
        )
        .await;
    let lines = browser
        .eval("return [...document.querySelectorAll('#log-lines .line')].map(line => line.textContent)")
        .await;
    assert_eq!(
        lines,
        serde_json::json!(["starting up", "<b>not bold</b>", "ready on :8080"])
    );
    let bold = browser
        .eval("return document.querySelectorAll('#log-lines b').length")
        .await;
    assert_eq!(bold, 0, "a log line is text, never HTML");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_from_the_page_reaches_a_watch_and_a_refusal_shows_why() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let mut client = server.client().await;
    let mut watch = client
        .watch_pods(ListPodsRequest {
            namespace: "staging".into(),
            resource_version: server.store.version(),
            ..ListPodsRequest::default()
        })
        .await
        .expect("a watch")
        .into_inner();
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser
        .wait_for("the watch to be live", &connection_is("live"))
        .await;
    browser.set_value("#apply-namespace", "staging").await;
    browser.set_value("#apply-name", "from-the-page").await;
    browser
        .set_value("#apply-status", "ContainerCreating")
        .await;
    browser.set_value("#apply-replicas", "3").await;
    browser.click("#apply-submit").await;
    let change = common::within("the watch to see the apply", watch.message())
        .await
        .expect("the watch")
        .expect("a change");
    assert_eq!(
        (
            change.name.as_str(),
            change.status.as_str(),
            change.replicas
        ),
        ("from-the-page", "ContainerCreating", 3)
    );
    browser
        .wait_for(
            "the outcome",
            "return document.querySelector('#write-result')?.dataset.outcome === 'ok'",
        )
        .await;
    browser
        .wait_for("the page's own row", &has_row("staging/from-the-page"))
        .await;

    // Refused: the server's message, verbatim.
    browser.set_value("#apply-name", "Not_A_Name").await;
    browser.click("#apply-submit").await;
    browser
        .wait_for(
            "the refusal",
            "return document.querySelector('#write-result')?.dataset.outcome === 'error'",
        )
        .await;
    let expected =
        pod_service::server::validate::apply(pod("staging", "Not_A_Name", "ContainerCreating", 3))
            .unwrap_err()
            .to_string();
    assert_eq!(browser.text("#write-result").await, expected);
    // Delete from the page.
    browser.set_value("#apply-name", "from-the-page").await;
    browser.click("#delete-submit").await;
    let tombstone = common::within("the watch to see the delete", watch.message())
        .await
        .expect("the watch")
        .expect("a change");
    assert!(tombstone.deleted && tombstone.name == "from-the-page");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_the_page_works_once_it_is_entered() {
    let token = Token::new("browser-t0ken").unwrap();
    let config = ServerConfig {
        token: Some(token.clone()),
        ..ServerConfig::default()
    };
    let server = TestServer::with_sample(Backend::Memory, config).await;
    let browser = Browser::start().await;
    browser.open(&server.url()).await;
    browser
        .wait_for(
            "the token prompt",
            "return document.querySelector('#token-form')?.hidden === false",
        )
        .await;
    assert_eq!(
        browser
            .eval("return document.querySelector('#connection').dataset.state")
            .await,
        "unauthenticated"
    );
    assert!(browser.rows().await.is_empty(), "no pods before the token");
    browser.set_value("#token-input", "wrong").await;
    browser.click("#token-submit").await;
    browser
        .wait_for(
            "the prompt again",
            "return document.querySelector('#token-form')?.hidden === false",
        )
        .await;
    assert!(browser.rows().await.is_empty());
    browser.set_value("#token-input", "browser-t0ken").await;
    browser.click("#token-submit").await;
    browser
        .wait_for("the sample pods", &rows_are(&sample_keys()))
        .await;
    browser
        .wait_for("the watch to be live", &connection_is("live"))
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_tab_frees_its_watcher() {
    let server = TestServer::with_sample(Backend::Memory, ServerConfig::default()).await;
    let browser = Browser::start().await;
    let first = browser.client.window().await.expect("the first tab");
    let tab = browser.client.new_window(true).await.expect("a new tab");
    browser
        .client
        .switch_to_window(tab.handle)
        .await
        .expect("the new tab");
    browser.open(&server.url()).await;
    browser
        .wait_for("the watch to be live", &connection_is("live"))
        .await;
    server.await_watchers(1).await;
    browser.client.close_window().await.expect("close the tab");
    server.await_watchers(0).await;
    browser
        .client
        .switch_to_window(first)
        .await
        .expect("the first tab");
    browser.close().await;
}

/// BENCHMARKS.md's dashboard figures: 10,000 pods, 100 changes a second.
/// Run with `cargo test --release --test browser -- --ignored --nocapture`.
///
/// - Time to first render: from navigation start to the first frame with
///   the whole list in the table (the page's `firstRenderMs`), median of
///   five loads.
/// - Change to row drawn: a SyncPods client applies 100 changes a second,
///   each to a different pod, noting the wall-clock time before sending;
///   the page (with `?measure=1`) notes the wall-clock time of the frame
///   that drew each version. Both clocks are this machine's.
/// - Responsiveness: the long tasks (over 50 ms) Chromium reports while the
///   changes stream in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: cargo test --release --test browser -- --ignored --nocapture"]
async fn figures_with_10000_pods_and_100_changes_a_second() {
    const PODS: usize = 10_000;
    const CHANGES: usize = 2_000;
    const RATE: u64 = 100;
    let server = TestServer::start(Backend::Memory).await;
    server.store.load(sample::numbered(PODS)).await.unwrap();
    let browser = Browser::start().await;
    let url = format!("{}/?measure=1", server.url());
    let mut first_renders = Vec::new();
    for _ in 0..5 {
        browser.open(&url).await;
        browser
            .wait_for(
                "the first render",
                "return window.podDashboard.firstRenderMs !== null",
            )
            .await;
        let rows = browser
            .eval("return document.querySelectorAll('#pods tr[data-key]').length")
            .await;
        assert_eq!(rows, PODS);
        let ms = browser
            .eval("return window.podDashboard.firstRenderMs")
            .await;
        first_renders.push(ms.as_f64().unwrap());
    }
    browser
        .wait_for("the watch to be live", &connection_is("live"))
        .await;
    browser
        .eval(
            "window.longTasks = [];
             new PerformanceObserver(list => {
                 for (const task of list.getEntries()) window.longTasks.push(task.duration);
             }).observe({ type: 'longtask' });
             return true",
        )
        .await;

    let mut client = server.client().await;
    let mut session = Session::open(&mut client).await;
    let mut sent = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(std::time::Duration::from_micros(1_000_000 / RATE));
    let (namespaces, started) = (sample::NUMBERED_NAMESPACES, std::time::Instant::now());
    for i in 0..CHANGES {
        tick.tick().await;
        // A different pod each time: one frame draws one version of a row.
        let name = format!("pod-{}", i * (PODS / CHANGES));
        let namespace = namespaces[(i * (PODS / CHANGES)) % namespaces.len()];
        let at = epoch_ms();
        let ack = session
            .apply(pod(namespace, &name, "Running", 5 + (i % 7) as i32))
            .await;
        let version = ack.pod.expect("the stored pod").resource_version;
        sent.insert((format!("{namespace}/{name}"), version), at);
    }
    let rate = CHANGES as f64 / started.elapsed().as_secs_f64();
    let last = server.store.version();
    browser
        .wait_for(
            "the last change drawn",
            &format!(
                "return window.podDashboard.drawLog.some(([, version]) => version === {last})"
            ),
        )
        .await;
    let drawn = browser.eval("return window.podDashboard.drawLog").await;
    let drawn: Vec<(String, u64, f64)> = serde_json::from_value(drawn).unwrap();
    let mut latencies: Vec<f64> = drawn
        .iter()
        .filter_map(|(key, version, at)| sent.get(&(key.clone(), *version)).map(|sent| at - sent))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let long_tasks = browser.eval("return window.longTasks").await;
    let long_tasks: Vec<f64> = serde_json::from_value(long_tasks).unwrap();
    first_renders.sort_by(f64::total_cmp);
    let quantile = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!("dashboard, {PODS} pods, {CHANGES} changes at {rate:.0}/s:");
    println!(
        "  first render (median of 5): {:.0} ms (all: {first_renders:.0?})",
        first_renders[2]
    );
    println!(
        "  change to row drawn: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} of {CHANGES} drawn)",
        quantile(0.5),
        quantile(0.99),
        latencies[latencies.len() - 1],
        latencies.len()
    );
    println!(
        "  long tasks while changing: {} (longest {:.0} ms)",
        long_tasks.len(),
        long_tasks.iter().copied().fold(0.0, f64::max)
    );
    assert_eq!(latencies.len(), CHANGES, "every change was drawn");
    browser.close().await;
}

fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}
