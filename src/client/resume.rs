//! Resuming a long-running stream after it broke: the part that the watch
//! ([`PodWatch`](super::PodWatch)), the log read
//! ([`LogRead`](super::LogRead)) and the sync session
//! ([`run_session`](super::sync::run_session)) share.
//!
//! Each of them knows where its stream left off and how to ask for the rest:
//! from a version (the watch, the session's subscription) or from a line
//! number (the log). A [`Resumer`] knows the rest, which is the same for all
//! three:
//!
//! - where to (re)open the stream: the current one of its [`Servers`], which
//!   connects by itself when used;
//! - whether to try again at all: not after an answer that no retry can fix
//!   ([`is_fatal`]);
//! - where next: every retry moves to the next server, going round, so that
//!   the server that just failed is the last to be tried again;
//! - when: after a capped, jittered [`Backoff`] (100 ms doubling to 5 s,
//!   which the dashboard page copies), back to the shortest once a message
//!   arrives;
//! - what to tell: one [`Interruption`] per retry, printed as one line.
//!
//! A client's loop goes: [`wait`](Resumer::wait) out any delay, open or read
//! the stream on [`client`](Resumer::client), call
//! [`progressed`](Resumer::progressed) for each message, and hand an error
//! that it does not handle itself (a watch too far behind lists again) to
//! [`interrupted`](Resumer::interrupted).
//!
//! Unlike a one-shot call, which [`Servers::call`] moves on only when the
//! server failed ([`is_server_failure`](super::retry::is_server_failure)),
//! a stream moves on whatever ended it: the end of a stream is not an answer
//! to its request that every replica would give alike (a watcher dropped for
//! being slow at one replica may keep up at another), and a lone server is
//! simply tried again.

use std::time::Duration;

use tokio::time::Instant;
use tonic::Status;

use super::connect::{Client, status_error};
use super::retry::{Backoff, is_fatal};
use super::servers::Servers;
use crate::contract::code_name;

/// See the module docs.
#[derive(Debug)]
pub(super) struct Resumer {
    servers: Servers,
    backoff: Backoff,
    /// When the stream may be opened again, after an interruption.
    retry_at: Option<Instant>,
}

/// What a [`Resumer`] reports of a stream it will open again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Interruption {
    /// The status that ended the stream, as `CODE: message`.
    pub reason: String,
    /// How long until the stream is opened again.
    pub retry_in: Duration,
    /// The server it is opened at, when there are several to choose from.
    pub server: Option<String>,
}

impl Resumer {
    /// Starts at the servers' current one, with the shortest delay.
    pub fn new(servers: Servers) -> Self {
        Resumer {
            servers,
            backoff: Backoff::default(),
            retry_at: None,
        }
    }

    /// The client of the server in use: where to open the stream, and to
    /// make the calls that go with it (a list before a watch).
    pub fn client(&mut self) -> &mut Client {
        self.servers.client()
    }

    /// The server in use (after an interruption: the one the stream
    /// resumes at), when there are several to choose from.
    pub fn server(&self) -> Option<&str> {
        (self.servers.count() > 1)
            .then(|| self.servers.addr())
            .flatten()
    }

    /// Waits until the delay of the last interruption has passed; returns
    /// at once when there is none. Cancel-safe: a wait cut short is
    /// waited out on the next call.
    pub async fn wait(&mut self) {
        if let Some(at) = self.retry_at {
            tokio::time::sleep_until(at).await;
            self.retry_at = None;
        }
    }

    /// A message arrived: the stream works, so the next interruption
    /// starts again from the shortest delay.
    pub fn progressed(&mut self) {
        self.backoff.reset();
    }

    /// The stream ended with `status`, and the client could not carry on by
    /// itself. Errors (as [`status_error`]) when no retry can fix it;
    /// otherwise moves to the next server, sets the delay that
    /// [`wait`](Self::wait) waits out, and says so.
    pub fn interrupted(&mut self, status: Status) -> anyhow::Result<Interruption> {
        if is_fatal(status.code()) {
            return Err(status_error(status));
        }
        self.servers.fail_over();
        let retry_in = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + retry_in);
        Ok(Interruption {
            reason: format!("{}: {}", code_name(status.code()), status.message()),
            retry_in,
            server: self.server().map(str::to_owned),
        })
    }
}

impl Interruption {
    /// The line a client prints: `STREAM interrupted (REASON); resuming
    /// from PLACE at SERVER in 0.1s`, or, for a stream that does not name
    /// its place, `...; reconnecting to SERVER in 0.1s` (the server only
    /// when there are several).
    pub fn line(&self, stream: &str, place: Option<&str>) -> String {
        let (next, preposition) = match place {
            Some(place) => (format!("resuming from {place}"), "at"),
            None => ("reconnecting".to_owned(), "to"),
        };
        let server = self
            .server
            .as_deref()
            .map(|addr| format!(" {preposition} {addr}"))
            .unwrap_or_default();
        format!(
            "{stream} interrupted ({}); {next}{server} in {:.1}s",
            self.reason,
            self.retry_in.as_secs_f64()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::connect::{ClientConfig, connect_lazy};

    const A: &str = "http://a.invalid:1";
    const B: &str = "http://b.invalid:1";

    /// Two servers that are never reached: nothing here opens a stream.
    fn two_servers() -> Resumer {
        let config = ClientConfig {
            addrs: vec![A.into(), B.into()],
            ..ClientConfig::new("")
        };
        Resumer::new(Servers::lazy(&config).expect("valid addresses"))
    }

    /// Waits out the delay, and says how long that took.
    async fn waited(resumer: &mut Resumer) -> Duration {
        let started = Instant::now();
        resumer.wait().await;
        started.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_failure_moves_to_the_next_server_and_backs_off() {
        let mut resumer = two_servers();
        assert_eq!(resumer.server(), Some(A));
        let first = resumer
            .interrupted(Status::unavailable("server is stopping"))
            .expect("a server failure is retried");
        assert_eq!(first.reason, "UNAVAILABLE: server is stopping");
        assert_eq!(first.server.as_deref(), Some(B));
        assert_eq!(resumer.server(), Some(B));
        assert!(
            (Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first.retry_in),
            "{first:?}"
        );
        // The timer rounds up to the next millisecond.
        let took = waited(&mut resumer).await;
        assert!(
            took >= first.retry_in && took <= first.retry_in + Duration::from_millis(1),
            "{took:?} for {first:?}"
        );
        assert_eq!(waited(&mut resumer).await, Duration::ZERO, "waited once");

        // Going round, with twice the delay.
        let second = resumer
            .interrupted(Status::unavailable("connection refused"))
            .expect("a server failure is retried");
        assert_eq!(second.server.as_deref(), Some(A));
        assert!(
            (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&second.retry_in),
            "{second:?}"
        );
        assert!(waited(&mut resumer).await >= second.retry_in);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fatal_answer_stops_at_once_and_any_other_end_moves_on() {
        let mut resumer = two_servers();
        let error = resumer
            .interrupted(Status::unauthenticated("no token"))
            .expect_err("no retry can fix a missing token");
        assert_eq!(
            error.to_string(),
            "server answered UNAUTHENTICATED: no token"
        );
        assert_eq!(resumer.server(), Some(A));
        assert_eq!(waited(&mut resumer).await, Duration::ZERO);

        // Not a server failure, but not fatal either: another replica may
        // keep up with a watcher that this one dropped.
        let slow = resumer
            .interrupted(Status::resource_exhausted("the watcher fell behind"))
            .expect("a dropped watcher is retried");
        assert_eq!(slow.server.as_deref(), Some(B));
    }

    #[tokio::test(start_paused = true)]
    async fn a_message_resets_the_backoff() {
        let mut resumer = two_servers();
        for _ in 0..3 {
            resumer
                .interrupted(Status::unavailable("down"))
                .expect("retried");
        }
        let longer = resumer
            .interrupted(Status::unavailable("down"))
            .expect("retried");
        assert!(longer.retry_in >= Duration::from_millis(400), "{longer:?}");
        resumer.progressed();
        let after = resumer
            .interrupted(Status::unavailable("down"))
            .expect("retried");
        assert!(after.retry_in <= Duration::from_millis(100), "{after:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_server_is_tried_again_without_naming_it() {
        let client = connect_lazy(&ClientConfig::new(A)).expect("a valid address");
        let mut resumer = Resumer::new(Servers::from(client));
        let interruption = resumer
            .interrupted(Status::cancelled("the connection broke"))
            .expect("retried");
        assert_eq!(interruption.server, None);
        assert_eq!(resumer.server(), None);
        assert_eq!(
            interruption.line("watch", Some("version 7")),
            format!(
                "watch interrupted (CANCELLED: the connection broke); resuming from version 7 in {:.1}s",
                interruption.retry_in.as_secs_f64()
            )
        );
    }

    #[test]
    fn the_lines_name_the_stream_its_place_and_the_next_server() {
        let interruption = Interruption {
            reason: "UNAVAILABLE: server is stopping".into(),
            retry_in: Duration::from_millis(1240),
            server: Some(B.into()),
        };
        assert_eq!(
            interruption.line("watch", Some("version 12")),
            format!(
                "watch interrupted (UNAVAILABLE: server is stopping); resuming from version 12 at {B} in 1.2s"
            )
        );
        assert_eq!(
            interruption.line("logs", Some("the start")),
            format!(
                "logs interrupted (UNAVAILABLE: server is stopping); resuming from the start at {B} in 1.2s"
            )
        );
        assert_eq!(
            interruption.line("session", None),
            format!(
                "session interrupted (UNAVAILABLE: server is stopping); reconnecting to {B} in 1.2s"
            )
        );
    }
}
