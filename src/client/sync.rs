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

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::Context;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::client::{code_name, status_error};
use crate::pb::{
    Pod, PodRef, PodServiceClient, Subscribe, SyncAck, SyncRequest, sync_event, sync_request,
};

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

/// Runs a session: reads commands from `input`, writes acks and changes to
/// `output` as they arrive, and returns once the input has ended (or `quit`)
/// and every op sent has been acknowledged.
pub async fn run_session(
    client: &mut PodServiceClient<Channel>,
    input: impl AsyncBufRead + Unpin,
    mut output: impl AsyncWrite + Unpin,
    mode: Mode,
) -> anyhow::Result<SessionReport> {
    let (requests, outbound) = mpsc::channel::<SyncRequest>(64);
    let mut events = client
        .sync_pods(ReceiverStream::new(outbound))
        .await
        .map_err(status_error)?
        .into_inner();

    let mut lines = input.lines();
    let mut requests = Some(requests);
    let mut printer = EventPrinter::default();
    let mut report = SessionReport::default();
    let mut acked = 0;
    let mut line_number = 0;
    let mut input_error = None;

    loop {
        tokio::select! {
            line = lines.next_line(), if requests.is_some() => {
                line_number += 1;
                let line = line.context("cannot read the commands")?;
                let command = match line.as_deref().map(parse) {
                    None | Some(Ok(Some(Command::Quit))) => {
                        requests = None; // half-close: the server sends the last acks, then ends
                        continue;
                    }
                    Some(Ok(None)) => continue,
                    Some(Ok(Some(command))) => command,
                    Some(Err(message)) if mode == Mode::Interactive => {
                        write_line(&mut output, &format!("error: {message}")).await?;
                        continue;
                    }
                    Some(Err(message)) => {
                        input_error = Some(format!("line {line_number}: {message}"));
                        requests = None;
                        continue;
                    }
                };
                match command {
                    Command::Help => write_line(&mut output, HELP).await?,
                    Command::Op(op) => {
                        report.ops += 1;
                        let request = SyncRequest { id: report.ops, op: Some(op) };
                        if let Some(sender) = &requests
                            && sender.send(request).await.is_err()
                        {
                            // The stream is over; the event side reports why.
                            requests = None;
                        }
                    }
                    Command::Quit => unreachable!("handled above"),
                }
            }
            event = events.message() => {
                let event = event.map_err(|status| {
                    status_error(status).context(format!(
                        "the session ended after {acked} of {} acks", report.ops
                    ))
                })?;
                let Some(event) = event else { break };
                if let Some(sync_event::Event::Ack(ack)) = &event.event {
                    acked += 1;
                    if ack.code != 0 {
                        report.failed += 1;
                    }
                }
                if let Some(line) = printer.line(event.event) {
                    write_line(&mut output, &line).await?;
                }
            }
        }
    }
    output.flush().await?;
    if let Some(message) = input_error {
        anyhow::bail!("{message}");
    }
    if acked < report.ops {
        anyhow::bail!(
            "the server ended the session after {acked} of {} acks",
            report.ops
        );
    }
    Ok(report)
}

async fn write_line(output: &mut (impl AsyncWrite + Unpin), line: &str) -> anyhow::Result<()> {
    output.write_all(line.as_bytes()).await?;
    output.write_all(b"\n").await?;
    output.flush().await?;
    Ok(())
}

/// Formats acks and changes; remembers which pods exist, to tell an added
/// pod from a modified one.
#[derive(Debug, Default)]
pub struct EventPrinter {
    known: HashSet<(String, String)>,
}

impl EventPrinter {
    pub fn line(&mut self, event: Option<sync_event::Event>) -> Option<String> {
        match event? {
            sync_event::Event::Ack(ack) => Some(ack_line(&ack)),
            sync_event::Event::Change(pod) => {
                let key = (pod.namespace.clone(), pod.name.clone());
                let kind = if pod.deleted {
                    self.known.remove(&key);
                    "DELETED"
                } else if self.known.insert(key) {
                    "ADDED"
                } else {
                    "MODIFIED"
                };
                Some(format!("change {kind} {}", describe_pod(&pod)))
            }
        }
    }
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
