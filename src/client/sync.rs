//! The client side of `SyncPods`: a line-oriented command language and the
//! session that sends each command as a stream message while printing acks
//! and other clients' changes as they arrive.
//!
//! ```text
//! apply [NS/]NAME [status=S] [replicas=N] [version=V]
//! delete [NS/]NAME
//! watch [NS] [version=V]
//! help
//! quit
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use anyhow::Context;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::watch::Backoff;
use crate::client::{Client, code_name, status_error};
use crate::pb::{
    ListPodsRequest, Pod, PodRef, Subscribe, SyncAck, SyncEvent, SyncRequest, sync_event,
    sync_request,
};
use tonic::{Status, Streaming};

/// The command summary printed by `help`.
pub const HELP: &str = "\
commands:
  apply [NS/]NAME [status=S] [replicas=N] [version=V]   create or update a pod
                                                        (version=V: only if still at V)
  delete [NS/]NAME                                      delete a pod
  watch [NS] [version=V]                                receive changes (all namespaces
                                                        without NS; from V, or the current
                                                        pods first without it)
  help                                                  show this help
  quit                                                  wait for the last acks and leave
NS defaults to 'default'. Lines starting with '#' are ignored.";

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// An op to send on the stream.
    Op(sync_request::Op),
    Help,
    Quit,
}

/// Parses one line of input; `Ok(None)` for a blank line or a comment.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let mut words = line.split_whitespace();
    let Some(verb) = words.next() else {
        return Ok(None);
    };
    if verb.starts_with('#') {
        return Ok(None);
    }
    let args: Vec<&str> = words.collect();
    let command = match verb {
        "apply" => {
            let (target, options) = args
                .split_first()
                .ok_or("apply needs a pod: apply [NS/]NAME [status=S] [replicas=N] [version=V]")?;
            let (namespace, name) = split_target(target);
            let mut pod = Pod {
                namespace,
                name,
                ..Pod::default()
            };
            for option in options {
                match option.split_once('=') {
                    Some(("status", value)) => pod.status = value.to_owned(),
                    Some(("replicas", value)) => pod.replicas = number("replicas", value)?,
                    Some(("version", value)) => pod.resource_version = number("version", value)?,
                    _ => {
                        return Err(format!(
                            "apply: unknown option {option:?} (expected status=S, replicas=N or version=V)"
                        ));
                    }
                }
            }
            Command::Op(sync_request::Op::Apply(pod))
        }
        "delete" => {
            let [target] = args[..] else {
                return Err("delete needs exactly one pod: delete [NS/]NAME".to_owned());
            };
            let (namespace, name) = split_target(target);
            Command::Op(sync_request::Op::Delete(PodRef { namespace, name }))
        }
        "watch" => {
            let mut subscribe = Subscribe::default();
            for arg in args {
                match arg.split_once('=') {
                    Some(("version", value)) => {
                        subscribe.resource_version = number("version", value)?
                    }
                    None if subscribe.namespace.is_empty() => subscribe.namespace = arg.to_owned(),
                    _ => {
                        return Err(format!(
                            "watch: unexpected argument {arg:?} (expected [NS] [version=V])"
                        ));
                    }
                }
            }
            Command::Op(sync_request::Op::Subscribe(subscribe))
        }
        "help" | "?" => Command::Help,
        "quit" | "exit" => Command::Quit,
        other => {
            return Err(format!(
                "unknown command {other:?}; type 'help' for the commands"
            ));
        }
    };
    Ok(Some(command))
}

fn split_target(target: &str) -> (String, String) {
    match target.split_once('/') {
        Some((namespace, name)) => (namespace.to_owned(), name.to_owned()),
        None => (String::new(), target.to_owned()),
    }
}

fn number<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{what}={value:?} is not a valid number"))
}

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
    pub ops: u64,
    pub failed: u64,
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
/// applied is unknown. Progress notes go to `notice`, not to `output`.
pub async fn run_session(
    client: &mut Client,
    input: impl AsyncBufRead + Unpin,
    output: impl AsyncWrite + Unpin,
    mode: Mode,
    notice: impl FnMut(&str),
) -> anyhow::Result<SessionReport> {
    let (requests, events) = open_stream(client);
    let mut session = Session {
        client: client.clone(),
        output,
        notice,
        requests: Some(requests),
        events,
        unacked: VecDeque::new(),
        snapshot: None,
        subscription: None,
        version: 0,
        known: HashMap::new(),
        report: SessionReport::default(),
        backoff: Backoff::default(),
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
            event = session.events.message() => match event {
                Ok(Some(event)) => session.on_event(event).await?,
                Ok(None) if session.requests.is_none() && session.unacked.is_empty() => break,
                Ok(None) => {
                    let ended = Status::unavailable("the server ended the session");
                    if !session.reconnect(ended).await? {
                        break;
                    }
                }
                Err(status) => {
                    if !session.reconnect(status).await? {
                        break;
                    }
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

type Outbound = mpsc::Sender<SyncRequest>;

/// Opens a SyncPods call. The call is not awaited here: servers need not
/// send the response headers before the first event (grpc-go sends them
/// with it), and the first event may only come after our first request, so
/// waiting for the headers before sending anything could wait forever.
fn open_stream(client: &Client) -> (Outbound, Events) {
    let (requests, outbound) = mpsc::channel::<SyncRequest>(64);
    let mut client = client.clone();
    let opening = Box::pin(async move {
        let response = client.sync_pods(ReceiverStream::new(outbound)).await?;
        Ok(response.into_inner())
    });
    (requests, Events::Opening(opening))
}

/// The events of a SyncPods call that may still be opening.
enum Events {
    Opening(futures::future::BoxFuture<'static, Result<Streaming<SyncEvent>, Status>>),
    Open(Box<Streaming<SyncEvent>>),
}

impl Events {
    /// The next event. Cancel-safe: an interrupted open resumes on the next call.
    async fn message(&mut self) -> Result<Option<SyncEvent>, Status> {
        if let Events::Opening(opening) = self {
            *self = Events::Open(Box::new(opening.await?));
        }
        match self {
            Events::Open(events) => events.message().await,
            Events::Opening(_) => unreachable!("opened just above"),
        }
    }
}

struct Session<W, N> {
    client: Client,
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
    /// The pods the session has shown, with their versions.
    known: HashMap<(String, String), u64>,
    report: SessionReport,
    backoff: Backoff,
}

impl<W: AsyncWrite + Unpin, N: FnMut(&str)> Session<W, N> {
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

    async fn send_op(&mut self, op: sync_request::Op) -> anyhow::Result<()> {
        self.report.ops += 1;
        let id = self.report.ops;
        let op = match op {
            sync_request::Op::Subscribe(subscribe)
                if subscribe.resource_version == 0 && self.subscription.is_none() =>
            {
                // List, then subscribe from the list's version.
                let request = ListPodsRequest {
                    namespace: subscribe.namespace.clone(),
                    resource_version: 0,
                };
                match self.client.list_pods(request).await {
                    Ok(list) => {
                        let list = list.into_inner();
                        self.snapshot = Some((id, list.pods));
                        self.version = list.resource_version;
                        self.subscription = Some(subscribe.namespace.clone());
                        sync_request::Op::Subscribe(Subscribe {
                            namespace: subscribe.namespace,
                            resource_version: list.resource_version,
                        })
                    }
                    Err(status) => {
                        self.report.failed += 1;
                        let line = ack_line(&SyncAck {
                            id,
                            code: i32::from(status.code()) as u32,
                            message: status.message().to_owned(),
                            pod: None,
                        });
                        return self.write(&line).await;
                    }
                }
            }
            sync_request::Op::Subscribe(subscribe) if self.subscription.is_none() => {
                self.snapshot = Some((id, Vec::new()));
                self.version = subscribe.resource_version;
                self.subscription = Some(subscribe.namespace.clone());
                sync_request::Op::Subscribe(subscribe)
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
                self.backoff.reset();
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
                self.backoff.reset();
                self.version = self.version.max(pod.resource_version);
                self.show_change(pod).await
            }
            None => Ok(()),
        }
    }

    /// Prints a change, naming it after what the session has shown before.
    async fn show_change(&mut self, pod: Pod) -> anyhow::Result<()> {
        let key = (pod.namespace.clone(), pod.name.clone());
        let kind = if pod.deleted {
            self.known.remove(&key);
            "DELETED"
        } else {
            match self.known.insert(key, pod.resource_version) {
                None => "ADDED",
                Some(version) if version == pod.resource_version => return Ok(()),
                Some(_) => "MODIFIED",
            }
        };
        self.write(&format!("change {kind} {}", describe_pod(&pod)))
            .await
    }

    /// The answer to a resumed subscription.
    async fn on_resumed(&mut self, ack: SyncAck) -> anyhow::Result<()> {
        if ack.code == 0 {
            (self.notice)(&format!("resumed the watch from version {}", self.version));
            return Ok(());
        }
        if ack.code != i32::from(tonic::Code::OutOfRange) as u32 {
            anyhow::bail!("cannot resume the watch: {}", ack.message);
        }
        // Too far behind: list again, show what changed, and subscribe from there.
        let namespace = self.subscription.clone().unwrap_or_default();
        let list = self
            .client
            .list_pods(ListPodsRequest {
                namespace: namespace.clone(),
                resource_version: 0,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        (self.notice)(&format!(
            "the watch was too far behind to resume; listed again at version {}",
            list.resource_version
        ));
        let listed: HashSet<(String, String)> = list
            .pods
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect();
        let gone: Vec<(String, String)> = self
            .known
            .keys()
            .filter(|key| !listed.contains(*key) && (namespace.is_empty() || key.0 == namespace))
            .cloned()
            .collect();
        for (namespace, name) in gone {
            let tombstone = Pod {
                namespace,
                name,
                resource_version: list.resource_version,
                deleted: true,
                ..Pod::default()
            };
            self.show_change(tombstone).await?;
        }
        for pod in list.pods {
            self.show_change(pod).await?;
        }
        self.version = list.resource_version;
        self.resubscribe().await;
        Ok(())
    }

    async fn resubscribe(&mut self) {
        if let Some(namespace) = self.subscription.clone() {
            let resume = sync_request::Op::Subscribe(Subscribe {
                namespace,
                resource_version: self.version,
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
        if matches!(
            status.code(),
            tonic::Code::InvalidArgument
                | tonic::Code::Unimplemented
                | tonic::Code::Unauthenticated
                | tonic::Code::PermissionDenied
        ) {
            return Err(status_error(status).context("the session failed"));
        }
        let reason = format!("{}: {}", code_name(status.code()), status.message());
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
        let delay = self.backoff.next_delay();
        (self.notice)(&format!(
            "session interrupted ({reason}); reconnecting in {:.1}s",
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
        // A failed reopening shows up as the new stream's first error and
        // brings the session back here, with a longer delay.
        let (requests, events) = open_stream(&self.client);
        self.requests = Some(requests);
        self.events = events;
        self.resubscribe().await;
        Ok(true)
    }
}

async fn write_line(output: &mut (impl AsyncWrite + Unpin), line: &str) -> anyhow::Result<()> {
    output.write_all(line.as_bytes()).await?;
    output.write_all(b"\n").await?;
    output.flush().await?;
    Ok(())
}

fn ack_line(ack: &SyncAck) -> String {
    let code = code_name(tonic::Code::from(ack.code as i32));
    let mut line = format!("ack {} {code}", ack.id);
    if let Some(pod) = &ack.pod {
        let _ = write!(line, " {}", describe_pod(pod));
    }
    if !ack.message.is_empty() {
        let _ = write!(line, ": {}", ack.message);
    }
    line
}

fn describe_pod(pod: &Pod) -> String {
    if pod.deleted {
        format!(
            "{}/{} deleted v{}",
            pod.namespace, pod.name, pod.resource_version
        )
    } else {
        format!(
            "{}/{} status={} replicas={} v{}",
            pod.namespace, pod.name, pod.status, pod.replicas, pod.resource_version
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(line: &str) -> sync_request::Op {
        match parse(line) {
            Ok(Some(Command::Op(op))) => op,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn parses_commands() {
        assert_eq!(
            op("apply production/web status=Running replicas=3 version=7"),
            sync_request::Op::Apply(Pod {
                namespace: "production".into(),
                name: "web".into(),
                status: "Running".into(),
                replicas: 3,
                resource_version: 7,
                deleted: false,
            })
        );
        assert_eq!(
            op("delete web"),
            sync_request::Op::Delete(PodRef {
                namespace: String::new(),
                name: "web".into()
            })
        );
        assert_eq!(
            op("watch staging version=4"),
            sync_request::Op::Subscribe(Subscribe {
                namespace: "staging".into(),
                resource_version: 4
            })
        );
        assert_eq!(
            op("watch"),
            sync_request::Op::Subscribe(Subscribe::default())
        );
        assert_eq!(parse("  # comment"), Ok(None));
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("quit"), Ok(Some(Command::Quit)));
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        for (line, reason) in [
            ("aply x", "unknown command"),
            ("apply", "needs a pod"),
            ("apply x replicas=lots", "not a valid number"),
            ("apply x colour=red", "unknown option"),
            ("delete", "exactly one pod"),
            ("delete a b", "exactly one pod"),
            ("watch a b", "unexpected argument"),
        ] {
            let err = parse(line).unwrap_err();
            assert!(err.contains(reason), "{line}: {err}");
        }
    }
}
