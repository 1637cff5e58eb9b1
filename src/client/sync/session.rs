//! The session of `sync-pods`: each command read is sent as a stream
//! message, while acks and other clients' changes are printed as they
//! arrive, one line each:
//!
//! ```text
//! ack 2 OK staging/api status=Running replicas=2 v9
//! ack 3 ABORTED: version conflict on pod staging/api: ...
//! change MODIFIED staging/api status=Running replicas=3 v10
//! ```

use std::collections::VecDeque;

use anyhow::Context;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tonic::Status;

use super::commands::{Command, HELP, PodEdit, parse};
use super::lines::{ack_line, change_line, write_line};
use super::stream::{Events, Outbound, open_stream};
use crate::client::cache::PodCache;
use crate::client::connect::status_error;
use crate::client::list::{DEFAULT_PAGE_SIZE, list_all, read_pod};
use crate::client::resume::Resumer;
use crate::client::servers::Servers;
use crate::contract::{
    DEFAULT_NAMESPACE, Pod, Subscribe, SyncAck, SyncEvent, SyncRequest, ack, sync_event,
    sync_request,
};

/// How a session treats its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A person at a terminal: a bad line is reported and the session goes on.
    Interactive,
    /// A script: a bad line ends the session (after the acks of what was
    /// already sent) with an error.
    Script,
}

/// What a finished session did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// Ops sent.
    pub ops: u64,
    /// Ops refused, or whose ack was lost with the connection.
    pub failed: u64,
    /// Times a merged apply met a concurrent change, read again and retried.
    pub retries: u64,
}

/// The id of the subscribe a session sends by itself to resume its watch
/// after a reconnection; the ops typed by the user are numbered from 1.
const RESUME_ID: u64 = 0;

/// Runs a session: reads commands from `input`, writes acks and changes to
/// `output` as they arrive, and returns once the input has ended (or `quit`)
/// and every op sent has been acknowledged.
///
/// `watch` lists first and subscribes from the list's version, so the
/// session always knows the version its view reflects. If the connection
/// breaks while commands may still come, the session reconnects with
/// backoff and resumes its watch from that version (re-listing, and
/// printing only the differences, if the server cannot continue from it).
/// Ops that were in flight are reported as failed: whether they were
/// applied is unknown. Given several [`Servers`], replicas of one registry,
/// each reconnection goes to the next of them, and the watch resumes there.
/// Progress goes to `notice`, not to `output`.
pub async fn run_session(
    servers: impl Into<Servers>,
    input: impl AsyncBufRead + Unpin,
    output: impl AsyncWrite + Unpin,
    mode: Mode,
    notice: impl FnMut(Notice),
) -> anyhow::Result<SessionReport> {
    let mut resumer = Resumer::new(servers.into());
    let (requests, events) = open_stream(resumer.client());
    let mut session = Session {
        resumer,
        output,
        notice,
        requests: Some(requests),
        events,
        unacked: VecDeque::new(),
        snapshot: None,
        subscription: None,
        version: 0,
        cache: PodCache::default(),
        report: SessionReport::default(),
        merging: None,
        aborted: false,
    };
    let mut lines = input.lines();
    let mut line_number = 0;
    let mut input_error = None;

    loop {
        tokio::select! {
            line = lines.next_line(), if session.requests.is_some() => {
                line_number += 1;
                let line = line.context("cannot read the commands")?;
                match line.as_deref().map(parse) {
                    None | Some(Ok(Some(Command::Quit))) => {
                        // Half-close: the server sends the last acks, then ends.
                        session.requests = None;
                    }
                    Some(Ok(None)) => {}
                    Some(Ok(Some(Command::Help))) => session.write(HELP).await?,
                    Some(Ok(Some(Command::Apply(edit)))) => session.apply(edit).await?,
                    Some(Ok(Some(Command::Op(op)))) => session.send_op(op).await?,
                    Some(Err(message)) if mode == Mode::Interactive => {
                        session.write(&format!("error: {message}")).await?;
                    }
                    Some(Err(message)) => {
                        input_error = Some(format!("line {line_number}: {message}"));
                        session.requests = None;
                    }
                }
            }
            event = session.events.message() => {
                if !session.handle(event).await? {
                    break;
                }
            }
        }
    }
    session.output.flush().await?;
    if let Some(message) = input_error {
        anyhow::bail!("{message}");
    }
    Ok(session.report)
}

/// What a session tells beside its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A note for the person at the terminal: a resume, a re-list, a
    /// reconnection.
    Note(String),
    /// A bookmark came: the watch has every change up to this version, and
    /// a resume starts from it.
    Progressed(u64),
}

struct Session<W, N> {
    resumer: Resumer,
    output: W,
    notice: N,
    /// `None` once the input has ended.
    requests: Option<Outbound>,
    events: Events,
    /// Ids sent and not yet acknowledged, oldest first.
    unacked: VecDeque<u64>,
    /// The id of a subscribe in flight and the listed pods to show when it
    /// is acknowledged (none when it names its own version).
    snapshot: Option<(u64, Vec<Pod>)>,
    /// The namespace filter of the subscription ("" = all), once sent.
    subscription: Option<String>,
    /// The version the watched view reflects.
    version: u64,
    /// The pods the session has shown.
    cache: PodCache,
    report: SessionReport,
    /// The id of a merged apply that is retried if it is `ABORTED`...
    merging: Option<u64>,
    /// ...and whether it was.
    aborted: bool,
}

/// How many times a merged apply reads and tries again after a concurrent
/// change, before it reports the conflict...
const MERGE_ATTEMPTS: u32 = 100;
/// ...waiting before each retry a random time up to this, times the
/// attempt...
const MERGE_BACKOFF: std::time::Duration = std::time::Duration::from_millis(1);
/// ...and at most this.
const MERGE_BACKOFF_CAP: std::time::Duration = std::time::Duration::from_millis(50);

impl<W: AsyncWrite + Unpin, N: FnMut(Notice)> Session<W, N> {
    async fn write(&mut self, line: &str) -> anyhow::Result<()> {
        write_line(&mut self.output, line).await
    }

    async fn send(&mut self, request: SyncRequest) {
        if let Some(sender) = &self.requests {
            // A failed send means the stream is gone; the event side notices
            // and reconnects.
            let _ = sender.send(request).await;
        }
    }

    /// Handles what the stream brought; returns whether the session goes on.
    async fn handle(&mut self, event: Result<Option<SyncEvent>, Status>) -> anyhow::Result<bool> {
        match event {
            Ok(Some(event)) => self.on_event(event).await.map(|()| true),
            Ok(None) if self.requests.is_none() && self.unacked.is_empty() => Ok(false),
            Ok(None) => {
                let ended = Status::unavailable("the server ended the session");
                self.reconnect(ended).await
            }
            Err(status) => self.reconnect(status).await,
        }
    }

    /// Handles events until every op sent is acknowledged (or reported
    /// lost); returns whether the session goes on.
    async fn settle(&mut self) -> anyhow::Result<bool> {
        while !self.unacked.is_empty() {
            let event = self.events.message().await;
            if !self.handle(event).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// An `apply`. One that names every field is sent as it is. One that
    /// leaves some out keeps them from the pod as it is: the session waits
    /// for its earlier ops, reads the pod, and applies at the version it
    /// read; if someone changed the pod meanwhile (`ABORTED`), it reads and
    /// tries again, so no concurrent edit is lost. With `version=V` the
    /// apply is conditional on V instead, and a conflict is reported.
    async fn apply(&mut self, edit: PodEdit) -> anyhow::Result<()> {
        if edit.is_whole() {
            return self
                .send_op(sync_request::Op::Apply(edit.applied_to(None)))
                .await;
        }
        self.report.ops += 1;
        let id = self.report.ops;
        for attempt in 1..=MERGE_ATTEMPTS {
            if attempt > 1 {
                // Jittered, so that two sessions that met do not meet again
                // in lockstep (one would keep losing).
                let most = MERGE_BACKOFF.saturating_mul(attempt).min(MERGE_BACKOFF_CAP);
                tokio::time::sleep(most.mul_f64(fastrand::f64())).await;
            }
            if !self.settle().await? {
                return Ok(());
            }
            let current = match self.read(&edit).await {
                Ok(current) => current,
                Err(status) => {
                    self.report.failed += 1;
                    return self.write(&ack_line(&ack(id, Err(status)))).await;
                }
            };
            let retry = edit.version.is_none() && current.is_some() && attempt < MERGE_ATTEMPTS;
            let pod = edit.applied_to(current.as_ref());
            self.merging = retry.then_some(id);
            self.unacked.push_back(id);
            self.send(SyncRequest {
                id,
                op: Some(sync_request::Op::Apply(pod)),
            })
            .await;
            if !self.settle().await? || !std::mem::take(&mut self.aborted) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The pod an edit names, as the server has it now (`None`: no such pod,
    /// or a name the server will refuse, as it then does for the apply).
    /// One pod is read, not its namespace: a merging apply costs the same
    /// in a namespace of ten pods and of a hundred thousand.
    async fn read(&mut self, edit: &PodEdit) -> Result<Option<Pod>, Status> {
        let namespace = if edit.namespace.is_empty() {
            DEFAULT_NAMESPACE
        } else {
            &edit.namespace
        };
        match read_pod(self.resumer.client(), namespace, &edit.name).await {
            Ok((pod, _)) => Ok(pod),
            Err(status) if status.code() == tonic::Code::InvalidArgument => Ok(None),
            Err(status) => Err(status),
        }
    }

    async fn send_op(&mut self, op: sync_request::Op) -> anyhow::Result<()> {
        self.report.ops += 1;
        let id = self.report.ops;
        let op = match op {
            sync_request::Op::Subscribe(subscribe)
                if subscribe.resource_version == 0 && self.subscription.is_none() =>
            {
                // List, then subscribe from the list's version.
                let namespace = &subscribe.namespace;
                match list_all(self.resumer.client(), namespace, DEFAULT_PAGE_SIZE).await {
                    Ok((pods, version)) => {
                        self.snapshot = Some((id, pods));
                        self.version = version;
                        self.subscription = Some(subscribe.namespace.clone());
                        sync_request::Op::Subscribe(Subscribe {
                            namespace: subscribe.namespace,
                            resource_version: version,
                            allow_bookmarks: true,
                        })
                    }
                    Err(status) => {
                        self.report.failed += 1;
                        return self.write(&ack_line(&ack(id, Err(status)))).await;
                    }
                }
            }
            sync_request::Op::Subscribe(subscribe) if self.subscription.is_none() => {
                self.snapshot = Some((id, Vec::new()));
                self.version = subscribe.resource_version;
                self.subscription = Some(subscribe.namespace.clone());
                sync_request::Op::Subscribe(Subscribe {
                    allow_bookmarks: true,
                    ..subscribe
                })
            }
            op => op,
        };
        self.unacked.push_back(id);
        self.send(SyncRequest { id, op: Some(op) }).await;
        Ok(())
    }

    async fn on_event(&mut self, event: SyncEvent) -> anyhow::Result<()> {
        match event.event {
            Some(sync_event::Event::Ack(ack)) if ack.id == RESUME_ID => self.on_resumed(ack).await,
            Some(sync_event::Event::Ack(ack)) => {
                if self.unacked.pop_front() != Some(ack.id) {
                    anyhow::bail!("the server acknowledged op {} out of order", ack.id);
                }
                if self.merging.take_if(|id| *id == ack.id).is_some()
                    && ack.code == i32::from(tonic::Code::Aborted) as u32
                {
                    // A merged apply met a concurrent change: it tries again.
                    self.aborted = true;
                    self.report.retries += 1;
                    return Ok(());
                }
                self.resumer.progressed();
                if ack.code != 0 {
                    self.report.failed += 1;
                }
                self.write(&ack_line(&ack)).await?;
                match self.snapshot.take_if(|(id, _)| *id == ack.id) {
                    Some((_, pods)) if ack.code == 0 => {
                        for pod in pods {
                            self.show_change(pod).await?;
                        }
                    }
                    Some(_) => self.subscription = None,
                    None => {}
                }
                Ok(())
            }
            Some(sync_event::Event::Change(pod)) => {
                self.resumer.progressed();
                self.version = self.version.max(pod.resource_version);
                // A bookmark only moves the version a resumed watch starts from.
                if pod.bookmark {
                    (self.notice)(Notice::Progressed(self.version));
                    return Ok(());
                }
                self.show_change(pod).await
            }
            None => Ok(()),
        }
    }

    /// Prints a change, naming it after what the session has shown before.
    async fn show_change(&mut self, pod: Pod) -> anyhow::Result<()> {
        match self.cache.observe(pod) {
            Some(event) => self.write(&change_line(&event)).await,
            None => Ok(()),
        }
    }

    /// The answer to a resumed subscription.
    async fn on_resumed(&mut self, ack: SyncAck) -> anyhow::Result<()> {
        if ack.code == 0 {
            (self.notice)(Notice::Note(format!(
                "resumed the watch from version {}",
                self.version
            )));
            return Ok(());
        }
        if ack.code != i32::from(tonic::Code::OutOfRange) as u32 {
            anyhow::bail!("cannot resume the watch: {}", ack.message);
        }
        // Too far behind: list again, show what changed, and subscribe from there.
        let namespace = self.subscription.clone().unwrap_or_default();
        let (pods, version) = list_all(self.resumer.client(), &namespace, DEFAULT_PAGE_SIZE)
            .await
            .map_err(status_error)?;
        (self.notice)(Notice::Note(format!(
            "the watch was too far behind to resume; listed again at version {version}"
        )));
        for event in self.cache.replace(pods, version) {
            self.write(&change_line(&event)).await?;
        }
        self.version = version;
        self.resubscribe().await;
        Ok(())
    }

    async fn resubscribe(&mut self) {
        if let Some(namespace) = self.subscription.clone() {
            let resume = sync_request::Op::Subscribe(Subscribe {
                namespace,
                resource_version: self.version,
                allow_bookmarks: true,
            });
            self.send(SyncRequest {
                id: RESUME_ID,
                op: Some(resume),
            })
            .await;
        }
    }

    /// After the stream broke: reports the ops in flight as failed and,
    /// if commands may still come, reconnects and resumes the watch.
    /// Returns whether the session goes on.
    async fn reconnect(&mut self, status: Status) -> anyhow::Result<bool> {
        let interruption = self
            .resumer
            .interrupted(status)
            .context("the session failed")?;
        let reason = &interruption.reason;
        while let Some(id) = self.unacked.pop_front() {
            self.report.failed += 1;
            let line = format!(
                "ack {id} UNAVAILABLE: the connection was lost before the ack ({reason}); \
                 the op may or may not have been applied"
            );
            self.write(&line).await?;
        }
        if self.requests.is_none() {
            return Ok(false);
        }
        (self.notice)(Notice::Note(interruption.line("session", None)));
        self.resumer.wait().await;
        // A failed reopening shows up as the new stream's first error and
        // brings the session back here, with a longer delay.
        let (requests, events) = open_stream(self.resumer.client());
        self.requests = Some(requests);
        self.events = events;
        self.resubscribe().await;
        Ok(true)
    }
}
