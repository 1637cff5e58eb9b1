//! A real headless Chromium, driven over WebDriver (`chromedriver` and the
//! `fantoccini` crate), for the dashboard's tests.
//!
//! Debian's `chromium` and `chromium-driver` are installed when missing
//! (see `tools`): a browser test never skips. Each [`Browser`] has its own
//! driver on a free loopback port and a fresh profile, started with the
//! flags that keep Chromium off the network (this machine's network is
//! closed, and its background connections would only fail). Browser tests
//! run one at a time ([`Browser::start`] holds a lock): two Chromiums at
//! once on two cores only make each other slow.

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{Mutex, MutexGuard};

use super::{PATIENCE, tools, within};

/// One browser test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// The flags of every Chromium the tests start.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,860",
];

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Browser {
    /// Starts chromedriver and a Chromium session, once the browser tests
    /// before this one are done.
    pub async fn start() -> Self {
        tools::require("chromium", "chromium");
        tools::require("chromedriver", "chromium-driver");
        let turn = ONE_AT_A_TIME.lock().await;
        let (driver, port) = within("chromedriver to start", start_driver()).await;
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|flag| flag.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = within(
            "a Chromium session",
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .expect("a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
            _turn: turn,
        }
    }

    pub async fn open(&self, url: &str) {
        within("the page to load", self.client.goto(url))
            .await
            .expect("open the page");
    }

    /// Runs `script` (a function body: `return ...`) in the page.
    pub async fn eval(&self, script: &str) -> Value {
        within(
            "a script in the page",
            self.client.execute(script, Vec::new()),
        )
        .await
        .unwrap_or_else(|err| panic!("the script failed: {err}\n{script}"))
    }

    /// Waits until `script` returns `true`: some event in the page (a
    /// message received, a row drawn) makes it so.
    pub async fn wait_for(&self, what: &str, script: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if self.eval(script).await == Value::Bool(true) {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let state = self.eval(DIAGNOSIS).await;
                panic!("timed out waiting for {what}; the page: {state}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The keys (`namespace/name`) of the rows shown, not fading out.
    pub async fn rows(&self) -> Vec<String> {
        let keys = self
            .eval(
                "return [...document.querySelectorAll('#pods tr[data-key]')]
                   .filter(row => !row.classList.contains('deleted') && !row.hidden)
                   .map(row => row.dataset.key)",
            )
            .await;
        serde_json::from_value(keys).expect("a list of keys")
    }

    /// The text of an element.
    pub async fn text(&self, selector: &str) -> String {
        let script = format!("return document.querySelector({selector:?})?.textContent ?? null");
        match self.eval(&script).await {
            Value::String(text) => text,
            other => panic!("no {selector} in the page: {other}"),
        }
    }

    /// Sets an input's value as typing would (firing `input`).
    pub async fn set_value(&self, selector: &str, value: &str) {
        let script = format!(
            "const input = document.querySelector({selector:?});
             input.value = {value:?};
             input.dispatchEvent(new Event('input', {{ bubbles: true }}));
             input.dispatchEvent(new Event('change', {{ bubbles: true }}));
             return true"
        );
        self.eval(&script).await;
    }

    pub async fn click(&self, selector: &str) {
        let element = within(
            "an element",
            self.client.find(fantoccini::Locator::Css(selector)),
        )
        .await
        .unwrap_or_else(|err| panic!("no {selector}: {err}"));
        within("a click", element.click())
            .await
            .unwrap_or_else(|err| panic!("cannot click {selector}: {err}"));
    }

    pub async fn screenshot(&self) -> Vec<u8> {
        within("a screenshot", self.client.screenshot())
            .await
            .expect("a screenshot")
    }

    /// Ends the session (Chromium exits), then the driver.
    pub async fn close(mut self) {
        let _ = within("Chromium to close", self.client.clone().close()).await;
        let _ = self.driver.start_kill();
        let _ = self.driver.wait().await;
    }
}

/// What a failed wait prints about the page.
const DIAGNOSIS: &str = "return {
    connection: document.querySelector('#connection')?.dataset.state,
    states: window.podDashboard?.states,
    rows: document.querySelectorAll('#pods tr[data-key]').length,
    write: document.querySelector('#write-result')?.textContent,
    readOnly: document.querySelector('#write-access')?.hidden === false,
    log: document.querySelector('#log-status')?.textContent,
}";

/// Starts chromedriver on a free port and waits until it says it listens.
async fn start_driver() -> (Child, u16) {
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut driver = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn chromedriver");
        let mut lines = BufReader::new(driver.stdout.take().expect("stdout")).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("started successfully") {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                return (driver, port);
            }
        }
        // The port was taken between the probe and the driver: again.
        let _ = driver.wait().await;
    }
}

/// Debian's browser itself, under /usr/lib: `/usr/bin/chromium` is a
/// launcher script, and the driver should own the browser's process.
fn chromium_binary() -> &'static str {
    const DEBIAN: &str = "/usr/lib/chromium/chromium";
    if std::path::Path::new(DEBIAN).exists() {
        DEBIAN
    } else {
        "chromium"
    }
}
