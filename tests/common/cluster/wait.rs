//! The waits of a [`Cluster`]: until members are ready, and until one
//! leads. Every wait is by event, the answers of the members themselves
//! (the daemon's readiness check and its word on leadership, each a tiny
//! HTTP/1.0 request, see [`http`], so that no HTTP client or daemon tool
//! is needed), and bounded by [`PATIENCE`]: a hang becomes a panic that
//! quotes the members' logs or what they said.

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::super::PATIENCE;
use super::{Cluster, Daemon};

/// How long one request to a member may take: a member that has not
/// answered by then is stuck (paused) or gone.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a wait polls.
const POLL: Duration = Duration::from_millis(20);

/// A member could not bind a port chosen for it: the start begins again.
pub(super) struct PortTaken;

/// What a member said when asked whether it is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Ready: it serves (etcd: it has a leader; NATS: JetStream is up and
    /// current with its meta leader).
    Ready,
    /// It answered, but is not ready: what it said.
    NotReady(String),
    /// No answer within the request timeout, or no connection (killed,
    /// paused).
    NoAnswer(String),
}

/// A member's word on leadership, in its daemon's terms (etcd member ids,
/// NATS server names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Who it is.
    pub me: Option<String>,
    /// Whom it names as the leader.
    pub leader: Option<String>,
}

impl<D: Daemon> Cluster<D> {
    /// Asks member `i` once whether it is ready.
    pub async fn health(&self, i: usize) -> Health {
        D::check(self, i).await
    }

    /// Waits until member `i` is ready; panics with its log after
    /// [`PATIENCE`].
    pub async fn await_ready(&self, i: usize) {
        if self.await_members(vec![i]).await.is_err() {
            unreachable!("a port taken is only reported for a member just started");
        }
    }

    /// The member that leads: the running, unpaused member that names
    /// itself the leader and that a majority of all members name as
    /// theirs. Waits (by polling) until there is one, so that after
    /// killing or pausing the leader this names the next one. Panics,
    /// saying it waited for `what`, if no leader is elected within
    /// [`PATIENCE`] (e.g. a majority is down).
    pub async fn await_leader(&self, what: &str) -> usize {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let asked = self.answering();
            let answers = futures::future::join_all(asked.iter().map(|&i| D::view(self, i))).await;
            let mut views = Vec::new();
            let mut seen = String::new();
            for (&i, answer) in asked.iter().zip(answers) {
                let _ = write!(seen, "\n  {} {i}: ", D::MEMBER);
                match answer {
                    Ok(view) => {
                        let _ = write!(seen, "{view:?}");
                        views.push((i, view));
                    }
                    Err(error) => seen.push_str(&error),
                }
            }
            let majority = self.len() / 2 + 1;
            let named = |leader: &Option<String>| {
                let votes = views.iter().filter(|(_, view)| &view.leader == leader);
                votes.count() >= majority
            };
            let leader = views.iter().find(|(_, view)| {
                view.me.is_some() && view.me == view.leader && named(&view.leader)
            });
            if let Some(&(i, _)) = leader {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; the {}s said:{seen}",
                D::MEMBER
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until each listed member is ready. A member that exits
    /// because its port is taken makes this return [`PortTaken`]; one that
    /// exits otherwise, or a wait beyond [`PATIENCE`], panics with the
    /// logs.
    pub(super) async fn await_members(&self, mut pending: Vec<usize>) -> Result<(), PortTaken> {
        let deadline = Instant::now() + PATIENCE;
        let mut last: Vec<Option<Health>> = vec![None; self.len()];
        loop {
            for &i in &pending {
                if let Some(status) = self.exit_status(i) {
                    let tail = self.log_tail(i);
                    if tail.contains("address already in use") {
                        return Err(PortTaken);
                    }
                    panic!(
                        "{} exited ({status}) before it was ready:\n{tail}",
                        self.who(i)
                    );
                }
            }
            let answers = futures::future::join_all(pending.iter().map(|&i| self.health(i))).await;
            for (&i, answer) in pending.iter().zip(answers) {
                last[i] = Some(answer);
            }
            pending.retain(|&i| last[i] != Some(Health::Ready));
            if pending.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut report = String::new();
                for &i in &pending {
                    let member = self.member(i);
                    let _ = write!(
                        report,
                        "\n--- {} (ports {:?}), last said {:?}:\n{}",
                        member.name,
                        member.ports,
                        last[i],
                        self.log_tail(i)
                    );
                }
                panic!(
                    "timed out waiting for {} {}s {pending:?} to be ready:{report}",
                    D::NAME,
                    D::MEMBER
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Asks `GET path` of the member on `port` whether it is ready: it is if
/// `ready` holds of the JSON it answers.
pub async fn probe(port: u16, path: &str, ready: impl FnOnce(&Value) -> bool) -> Health {
    match http(port, "GET", path, "").await {
        Err(error) => Health::NoAnswer(error),
        Ok((_, body)) => {
            let json = serde_json::from_str(&body).unwrap_or_default();
            if ready(&json) {
                Health::Ready
            } else {
                Health::NotReady(body)
            }
        }
    }
}

/// One [`http`] request whose answer is JSON: the JSON, or why there is
/// none (no answer, or the body that is not JSON).
pub async fn json(port: u16, method: &str, path: &str, body: &str) -> Result<Value, String> {
    let (_, body) = http(port, method, path, body).await?;
    serde_json::from_str(&body).map_err(|_| body)
}

/// One HTTP/1.0 request to `127.0.0.1:port` (the server then closes the
/// connection after its response, which has no chunked encoding), bounded
/// by [`REQUEST_TIMEOUT`]. Returns the status code and the body.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
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
