//! `--authorization-policy-file`: who may do what, as Kubernetes' ABAC
//! policies, one JSON object a line:
//!
//! ```json
//! {"apiVersion": "abac.authorization.kubernetes.io/v1beta1", "kind": "Policy",
//!  "spec": {"user": "ci", "namespace": "dev", "resource": "*"}}
//! ```
//!
//! A request is allowed if any policy matches it, as in Kubernetes: its
//! subject (`user`, `group`, both if both are given; `"*"` matches anyone),
//! its `namespace` (`"*"` for any, and only `"*"` for a request of every
//! namespace), its `resource` (`pods` or `pods/log`, or `"*"`), and
//! `readonly` policies only reads. The file is read stricter than
//! kube-apiserver reads it: a field this server does not know, a resource it
//! does not have, or a policy that could never match refuses start-up with
//! the line's number, since an ignored typo would quietly grant or deny.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::user::User;
use crate::domain::dns_label;

/// The `apiVersion` of every line.
pub const API_VERSION: &str = "abac.authorization.kubernetes.io/v1beta1";

/// What a request does to its resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// ListPods, WatchPods, a SyncPods subscribe, GetLogs.
    Read,
    /// A SyncPods apply or delete, UploadLogs.
    Write,
}

impl Action {
    /// The verb of a refusal's message.
    pub fn verb(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Write => "write",
        }
    }
}

/// What a request is about: `pods`, or their logs (`pods/log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// The pods themselves.
    Pods,
    /// The pods' logs.
    PodLogs,
}

impl Resource {
    /// The name policies use.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Pods => "pods",
            Resource::PodLogs => "pods/log",
        }
    }

    fn named(name: &str) -> Option<Self> {
        [Resource::Pods, Resource::PodLogs]
            .into_iter()
            .find(|resource| resource.name() == name)
    }
}

/// The policies of a policy file.
#[derive(Clone, Debug)]
pub struct Policy {
    rules: Arc<[Rule]>,
}

/// One line, checked.
#[derive(Debug)]
struct Rule {
    user: Option<String>,
    group: Option<String>,
    /// `None`: every namespace.
    namespace: Option<String>,
    /// `None`: every resource.
    resource: Option<Resource>,
    readonly: bool,
    /// A policy of non-resource paths only: kept, as Kubernetes files have
    /// them, but it grants nothing here.
    paths_only: bool,
}

/// A line as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Line {
    api_version: Option<String>,
    kind: Option<String>,
    spec: Option<Spec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    user: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    readonly: bool,
    #[serde(default)]
    api_group: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    non_resource_path: String,
}

impl Policy {
    /// Reads a policy file; the error names the file and the line.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read policy file {}: {err}", path.display()))?;
        Self::parse(&text).map_err(|err| format!("policy file {}: {err}", path.display()))
    }

    /// Parses the text of a policy file: blank lines and lines starting
    /// with `#` are skipped, as kube-apiserver skips them.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Vec::new();
        for (number, line) in (1..).zip(text.lines()) {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let rule = Rule::parse(line).map_err(|err| format!("line {number}: {err}"))?;
            rules.push(rule);
        }
        Ok(Policy {
            rules: rules.into(),
        })
    }

    /// How many policies the file holds.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether the file holds none (and so allows nothing).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether some policy lets `user` do `action` to `resource` in
    /// `namespace` (`None`: every namespace).
    pub fn allows(
        &self,
        user: &User,
        action: Action,
        resource: Resource,
        namespace: Option<&str>,
    ) -> bool {
        self.rules
            .iter()
            .any(|rule| rule.matches(user, action, resource, namespace))
    }
}

impl Rule {
    fn parse(line: &str) -> Result<Self, String> {
        let line: Line = serde_json::from_str(line).map_err(|err| {
            // serde_json's "at line 1 column N" is about this one line.
            let reason = err.to_string();
            let reason = reason.split(" at line ").next().unwrap_or(&reason);
            format!("not a policy: {reason}")
        })?;
        match line.api_version.as_deref() {
            Some(API_VERSION) => {}
            Some(other) => return Err(format!("apiVersion {other:?} is not {API_VERSION:?}")),
            None => {
                return Err(format!(
                    "no apiVersion: this server reads only {API_VERSION:?} policies"
                ));
            }
        }
        if line.kind.as_deref() != Some("Policy") {
            return Err("kind must be \"Policy\"".into());
        }
        let spec = line.spec.ok_or("no spec")?;
        if spec.user.is_empty() && spec.group.is_empty() {
            return Err("names no user and no group, so it matches nobody".into());
        }
        if !matches!(spec.api_group.as_str(), "" | "*") {
            return Err(format!(
                "apiGroup {:?} has no resources here: pods are in the core group (\"\" or \"*\")",
                spec.api_group
            ));
        }
        let paths_only = spec.resource.is_empty() && spec.namespace.is_empty();
        if paths_only && spec.non_resource_path.is_empty() {
            return Err("names no resource and no namespace, so it allows nothing".into());
        }
        let resource = match spec.resource.as_str() {
            "*" => None,
            "" if paths_only => None,
            "" => return Err("no resource: name \"pods\", \"pods/log\" or \"*\"".into()),
            name => Some(Resource::named(name).ok_or_else(|| {
                format!(
                    "resource {name:?} is not one this server has: \"pods\", \"pods/log\" or \"*\""
                )
            })?),
        };
        let namespace = match spec.namespace.as_str() {
            "*" => None,
            "" if paths_only => None,
            "" => {
                return Err(
                    "no namespace: name one, or \"*\" for every namespace (and for lists \
                     and watches of all namespaces at once)"
                        .into(),
                );
            }
            name => {
                dns_label("namespace", name).map_err(|err| err.to_string())?;
                Some(name.to_owned())
            }
        };
        let subject = |value: String| (!value.is_empty()).then_some(value);
        Ok(Rule {
            user: subject(spec.user),
            group: subject(spec.group),
            namespace,
            resource,
            readonly: spec.readonly,
            paths_only,
        })
    }

    fn matches(
        &self,
        user: &User,
        action: Action,
        resource: Resource,
        namespace: Option<&str>,
    ) -> bool {
        // As Kubernetes' ABAC: a subject field given must match, "*" matches
        // anyone; a namespaced policy never matches a request of every
        // namespace.
        let user_ok = self
            .user
            .as_deref()
            .is_none_or(|name| name == "*" || name == user.name);
        let group_ok = self
            .group
            .as_deref()
            .is_none_or(|group| group == "*" || user.in_group(group));
        !self.paths_only
            && user_ok
            && group_ok
            && (!self.readonly || action == Action::Read)
            && self.resource.is_none_or(|r| r == resource)
            && match &self.namespace {
                None => true,
                Some(allowed) => namespace == Some(allowed.as_str()),
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(specs: &[&str]) -> Policy {
        let lines: Vec<String> = specs
            .iter()
            .map(|spec| {
                format!(r#"{{"apiVersion": "{API_VERSION}", "kind": "Policy", "spec": {spec}}}"#)
            })
            .collect();
        Policy::parse(&lines.join("\n")).unwrap()
    }

    fn user(name: &str, groups: &[&str]) -> User {
        User::authenticated(name, "", groups.iter().map(|g| g.to_string()))
    }

    use Action::{Read, Write};
    use Resource::{PodLogs, Pods};

    #[test]
    fn namespaces_resources_and_readonly() {
        let p = policy(&[
            r#"{"user": "ci", "namespace": "dev", "resource": "*"}"#,
            r#"{"group": "viewers", "namespace": "*", "resource": "*", "readonly": true}"#,
            r#"{"user": "logger", "namespace": "*", "resource": "pods/log"}"#,
        ]);
        let ci = user("ci", &[]);
        assert!(p.allows(&ci, Write, Pods, Some("dev")));
        assert!(p.allows(&ci, Read, PodLogs, Some("dev")));
        assert!(!p.allows(&ci, Write, Pods, Some("prod")));
        assert!(
            !p.allows(&ci, Read, Pods, None),
            "every namespace needs \"*\""
        );
        let viewer = user("vic", &["viewers"]);
        assert!(p.allows(&viewer, Read, Pods, None));
        assert!(p.allows(&viewer, Read, PodLogs, Some("prod")));
        assert!(!p.allows(&viewer, Write, Pods, Some("dev")));
        let logger = user("logger", &[]);
        assert!(p.allows(&logger, Write, PodLogs, Some("prod")));
        assert!(!p.allows(&logger, Read, Pods, Some("prod")));
        assert!(!p.allows(&user("nobody", &[]), Read, Pods, Some("dev")));
    }

    #[test]
    fn subjects_as_kubernetes_matches_them() {
        let p = policy(&[
            r#"{"user": "ann", "group": "ops", "namespace": "*", "resource": "*"}"#,
            r#"{"user": "*", "namespace": "public", "resource": "pods", "readonly": true}"#,
            r#"{"group": "system:authenticated", "namespace": "lobby", "resource": "*"}"#,
        ]);
        assert!(p.allows(&user("ann", &["ops"]), Write, Pods, Some("x")));
        assert!(
            !p.allows(&user("ann", &[]), Write, Pods, Some("x")),
            "both must match"
        );
        assert!(!p.allows(&user("bob", &["ops"]), Write, Pods, Some("x")));
        assert!(p.allows(&user("bob", &[]), Read, Pods, Some("public")));
        assert!(p.allows(&User::anonymous(), Read, Pods, Some("public")));
        assert!(p.allows(&user("bob", &[]), Write, Pods, Some("lobby")));
        assert!(!p.allows(&User::anonymous(), Write, Pods, Some("lobby")));
    }

    #[test]
    fn refuses_bad_lines_naming_them() {
        let good = format!(
            r#"{{"apiVersion": "{API_VERSION}", "kind": "Policy", "spec": {{"user": "a", "namespace": "*", "resource": "*"}}}}"#
        );
        let line = |spec: &str| {
            format!(r#"{{"apiVersion": "{API_VERSION}", "kind": "Policy", "spec": {spec}}}"#)
        };
        let cases = [
            (
                line(r#"{"user": "a", "namespace": "*", "resource": "deployments"}"#),
                "resource \"deployments\" is not one this server has",
            ),
            (
                line(r#"{"user": "a", "namespace": "*", "resource": "*", "namepsace": "x"}"#),
                "not a policy: unknown field `namepsace`",
            ),
            (
                line(r#"{"namespace": "*", "resource": "*"}"#),
                "names no user and no group",
            ),
            (line(r#"{"user": "a", "resource": "pods"}"#), "no namespace"),
            (
                line(r#"{"user": "a", "namespace": "Dev", "resource": "pods"}"#),
                "invalid namespace: must be a DNS-1123 label",
            ),
            (
                line(r#"{"user": "a", "namespace": "*", "resource": "*", "apiGroup": "apps"}"#),
                "apiGroup \"apps\" has no resources here",
            ),
            (
                r#"{"user": "a", "namespace": "*", "resource": "*"}"#.to_owned(),
                "not a policy: unknown field `user`",
            ),
            (
                r#"{"kind": "Policy", "spec": {"user": "a"}}"#.to_owned(),
                "no apiVersion",
            ),
            ("{not json".to_owned(), "not a policy:"),
        ];
        for (bad, expected) in cases {
            let text = format!("{good}\n\n# a comment\n{bad}\n");
            let err = Policy::parse(&text).unwrap_err();
            assert!(
                err.starts_with(&format!("line 4: {expected}")),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn non_resource_policies_are_kept_but_grant_nothing() {
        let p = policy(&[r#"{"user": "*", "nonResourcePath": "*", "readonly": true}"#]);
        assert_eq!(p.len(), 1);
        assert!(!p.allows(&user("a", &[]), Read, Pods, Some("dev")));
    }
}
