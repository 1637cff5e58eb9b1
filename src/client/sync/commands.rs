//! The `sync-pods` command language: one command per line, parsed into the
//! op it sends (or a session command).
//!
//! ```text
//! apply [NS/]NAME [status=S] [replicas=N] [version=V]
//! delete [NS/]NAME
//! watch [NS] [version=V]
//! help
//! quit
//! ```
//!
//! The parser checks the shape of a line, not the names in it: the server
//! validates those, once, at its edge.

use crate::contract::{Pod, PodRef, Subscribe, sync_request};

/// The command summary printed by `help`.
pub const HELP: &str = "\
commands:
  apply [NS/]NAME [status=S] [replicas=N] [version=V]   create or update a pod, keeping
                                                        the fields not named
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
    /// A create or update, naming some of the pod's fields.
    Apply(PodEdit),
    /// An op to send on the stream as it is (a delete or a subscribe).
    Op(sync_request::Op),
    /// Show the commands.
    Help,
    /// Wait for the last acks and leave.
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
            let mut edit = PodEdit {
                namespace,
                name,
                ..PodEdit::default()
            };
            for option in options {
                match option.split_once('=') {
                    Some(("status", value)) => edit.status = Some(value.to_owned()),
                    Some(("replicas", value)) => edit.replicas = Some(number("replicas", value)?),
                    Some(("version", value)) => edit.version = Some(number("version", value)?),
                    _ => {
                        return Err(format!(
                            "apply: unknown option {option:?} (expected status=S, replicas=N or version=V)"
                        ));
                    }
                }
            }
            Command::Apply(edit)
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

/// An `apply` line: the pod, and the fields it names. The session keeps
/// the fields it does not name from the pod as it is (see `session`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodEdit {
    /// The namespace ("" = the default one).
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// `status=S`, if given.
    pub status: Option<String>,
    /// `replicas=N`, if given.
    pub replicas: Option<i32>,
    /// `version=V`, if given: apply only if the pod is still at V.
    pub version: Option<u64>,
}

impl PodEdit {
    /// Whether it names every field, so that nothing needs keeping.
    pub fn is_whole(&self) -> bool {
        self.status.is_some() && self.replicas.is_some()
    }

    /// The pod to send: the named fields, the others from `current` (or
    /// their defaults for a new pod), conditional on `version=V` if given,
    /// else on `current`'s version.
    pub fn applied_to(&self, current: Option<&Pod>) -> Pod {
        Pod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            status: self
                .status
                .clone()
                .or_else(|| current.map(|pod| pod.status.clone()))
                .unwrap_or_default(),
            replicas: self
                .replicas
                .or(current.map(|pod| pod.replicas))
                .unwrap_or_default(),
            resource_version: self
                .version
                .or(current.map(|pod| pod.resource_version))
                .unwrap_or_default(),
            ..Pod::default()
        }
    }
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
            parse("apply production/web status=Running replicas=3 version=7"),
            Ok(Some(Command::Apply(PodEdit {
                namespace: "production".into(),
                name: "web".into(),
                status: Some("Running".into()),
                replicas: Some(3),
                version: Some(7),
            })))
        );
        assert_eq!(
            parse("apply web replicas=0"),
            Ok(Some(Command::Apply(PodEdit {
                name: "web".into(),
                replicas: Some(0),
                ..PodEdit::default()
            })))
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
                resource_version: 4,
                allow_bookmarks: false,
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

    #[test]
    fn an_edit_keeps_what_it_does_not_name() {
        let current = Pod {
            namespace: "a".into(),
            name: "web".into(),
            status: "Running".into(),
            replicas: 4,
            resource_version: 9,
            ..Pod::default()
        };
        let edit = PodEdit {
            namespace: "a".into(),
            name: "web".into(),
            replicas: Some(5),
            ..PodEdit::default()
        };
        let pod = edit.applied_to(Some(&current));
        assert_eq!(
            (pod.status.as_str(), pod.replicas, pod.resource_version),
            ("Running", 5, 9)
        );
        // A new pod: the defaults, unconditionally.
        let pod = edit.applied_to(None);
        assert_eq!((pod.status.as_str(), pod.resource_version), ("", 0));
        // version=V wins over the version read.
        let pinned = PodEdit {
            version: Some(3),
            ..edit
        };
        assert_eq!(pinned.applied_to(Some(&current)).resource_version, 3);
    }
}
