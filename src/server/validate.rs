//! Request validation: the one place where wire messages become domain values.
//!
//! Every handler calls these functions first, so the store only ever sees
//! well-formed names and values. Each error names the field (as a path into
//! the request, e.g. `apply.name`) and the rule it broke, and is answered
//! `INVALID_ARGUMENT`.

use super::continue_token;
use crate::contract::{self as pb, DEFAULT_NAMESPACE};
use crate::domain::{ApplyPod, Invalid, PodKey, PodSelector, describe, dns_label};
use crate::store::{ListPosition, LogStart};

/// The status given to a pod applied without one.
const DEFAULT_STATUS: &str = "Pending";

/// Longest accepted pod status, in bytes: room for every status kubectl
/// prints (`Init:CrashLoopBackOff`, `CreateContainerConfigError`, ...).
const MAX_STATUS_BYTES: usize = 64;

/// The most pods in one page of a list, whatever its `limit`: even pods
/// with the longest names and statuses keep a page under 1 MiB, well below
/// the 4 MiB a gRPC message may have (a unit test checks).
pub const MAX_PAGE_PODS: usize = 4096;

/// What a `ListPods` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListQuery {
    /// Every selected pod in one message: the list as it was before
    /// paging, or the one pod a name selects, which is never paged.
    Whole(PodSelector),
    /// One page of at most `limit` pods of a namespace (`None` = all): the
    /// first, or the one after `from`. Never of one pod by name, so a
    /// continued page (which etcd may serve) never has a name to filter by.
    Page {
        /// The namespace filter.
        namespace: Option<String>,
        /// Where the list goes on; `None` for its first page.
        from: Option<ListPosition>,
        /// At least 1, at most [`MAX_PAGE_PODS`].
        limit: usize,
    },
}

impl ListQuery {
    /// The one namespace the list is of; `None` for every namespace.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            ListQuery::Whole(selector) => selector.namespace_limit(),
            ListQuery::Page { namespace, .. } => namespace.as_deref(),
        }
    }
}

/// The pods a `ListPods` or `WatchPods` selects: those of `namespace` (""
/// = every namespace) or, with `name`, the one pod of that name in it.
pub fn selector(request: &pb::ListPodsRequest) -> Result<PodSelector, Invalid> {
    let namespace = namespace_filter("namespace", &request.namespace)?;
    if request.name.is_empty() {
        return Ok(PodSelector::namespace(namespace));
    }
    let Some(namespace) = namespace else {
        return Err(Invalid::new(
            "name",
            "must be empty without a namespace: a pod is named within its namespace \
             (set namespace too, or leave name empty for every pod)",
        ));
    };
    dns_label("name", &request.name)?;
    Ok(PodSelector::Pod(PodKey::new(
        namespace,
        request.name.as_str(),
    )))
}

/// Validates a `ListPods`: the pods it selects and what it asks for.
pub fn list(request: &pb::ListPodsRequest) -> Result<ListQuery, Invalid> {
    let selector = selector(request)?;
    let namespace = match selector {
        // A name selects at most one pod: one page, whatever the limit,
        // so a token can only come from another list.
        PodSelector::Pod(_) if !request.continue_token.is_empty() => {
            return Err(Invalid::new(
                "continue_token",
                "must be empty with a name: a list of one pod is a single page, \
                 which has no continue_token",
            ));
        }
        PodSelector::Pod(_) => return Ok(ListQuery::Whole(selector)),
        _ if request.limit == 0 && request.continue_token.is_empty() => {
            return Ok(ListQuery::Whole(selector));
        }
        PodSelector::All => None,
        PodSelector::Namespace(namespace) => Some(namespace),
    };
    let from = if request.continue_token.is_empty() {
        None
    } else {
        Some(continue_token::decode(
            &request.continue_token,
            &request.namespace,
        )?)
    };
    // A continued list without a limit gets pages of the largest size.
    let limit = match request.limit as usize {
        0 => MAX_PAGE_PODS,
        limit => limit.min(MAX_PAGE_PODS),
    };
    Ok(ListQuery::Page {
        namespace,
        from,
        limit,
    })
}

/// A namespace on a write or a single-pod read: empty means [`DEFAULT_NAMESPACE`].
pub fn namespace(field: &str, value: &str) -> Result<String, Invalid> {
    if value.is_empty() {
        return Ok(DEFAULT_NAMESPACE.to_owned());
    }
    dns_label(field, value)?;
    Ok(value.to_owned())
}

/// A namespace filter on a list or watch: empty means every namespace.
pub fn namespace_filter(field: &str, value: &str) -> Result<Option<String>, Invalid> {
    if value.is_empty() {
        return Ok(None);
    }
    dns_label(field, value)?;
    Ok(Some(value.to_owned()))
}

/// Names one pod: `prefix.namespace` (empty = default) and `prefix.<name_field>`.
pub fn pod_key(
    prefix: &str,
    namespace_value: &str,
    name_field: &str,
    name_value: &str,
) -> Result<PodKey, Invalid> {
    let namespace = namespace(&join(prefix, "namespace"), namespace_value)?;
    dns_label(&join(prefix, name_field), name_value)?;
    Ok(PodKey::new(namespace, name_value))
}

/// Validates the `apply` of a SyncRequest.
pub fn apply(pod: pb::Pod) -> Result<ApplyPod, Invalid> {
    let key = pod_key("apply", &pod.namespace, "name", &pod.name)?;
    let status = if pod.status.is_empty() {
        DEFAULT_STATUS.to_owned()
    } else {
        status("apply.status", &pod.status)?;
        pod.status
    };
    if pod.replicas < 0 {
        return Err(Invalid::new(
            "apply.replicas",
            format!("must be >= 0 (got {})", pod.replicas),
        ));
    }
    if pod.deleted {
        return Err(Invalid::new(
            "apply.deleted",
            "must be false: use a delete op to delete a pod",
        ));
    }
    Ok(ApplyPod {
        key,
        status,
        replicas: pod.replicas,
        expected_version: (pod.resource_version != 0).then_some(pod.resource_version),
    })
}

/// Validates the `delete` of a SyncRequest.
pub fn delete(pod: &pb::PodRef) -> Result<PodKey, Invalid> {
    pod_key("delete", &pod.namespace, "name", &pod.name)
}

/// Validates a `GetLogs`: the pod, and where its read starts.
pub fn get_logs(request: &pb::GetLogsRequest) -> Result<(PodKey, LogStart), Invalid> {
    let key = pod_key("", &request.namespace, "pod", &request.pod)?;
    let start = match (request.from_line, request.tail_lines) {
        (0, 0) => LogStart::Oldest,
        (0, n) => LogStart::Tail(n),
        (line, 0) => LogStart::Line(line),
        _ => {
            return Err(Invalid::new(
                "from_line",
                "must not be set together with tail_lines (0 = not set)",
            ));
        }
    };
    Ok((key, start))
}

/// Checks the lines of an upload chunk; returns their total size in bytes.
pub fn log_lines(lines: &[String], max_line_bytes: usize) -> Result<u64, Invalid> {
    let mut bytes = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.len() > max_line_bytes {
            return Err(Invalid::new(
                format!("lines[{i}]"),
                format!(
                    "must be at most {max_line_bytes} bytes (got {})",
                    line.len()
                ),
            ));
        }
        if line.contains('\n') {
            return Err(Invalid::new(
                format!("lines[{i}]"),
                "must not contain a line break (send one line per entry)",
            ));
        }
        bytes += line.len() as u64;
    }
    Ok(bytes)
}

/// A pod status as kubectl shows it, such as `Running`, `Init:0/1` or
/// `Init:CrashLoopBackOff`: visible ASCII, so that no control character,
/// escape sequence, line break or invisible character reaches a terminal.
fn status(field: &str, value: &str) -> Result<(), Invalid> {
    let ok = value.len() <= MAX_STATUS_BYTES && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!(
                "must be 1 to {MAX_STATUS_BYTES} visible ASCII characters, without spaces, \
                 control characters or escape sequences ({})",
                describe(value)
            ),
        ))
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn a_full_page_of_the_largest_pods_stays_under_one_mib() {
        let largest = pb::Pod {
            name: "n".repeat(63),
            namespace: "s".repeat(63),
            status: "x".repeat(MAX_STATUS_BYTES),
            replicas: i32::MAX,
            resource_version: u64::MAX,
            deleted: true,
            bookmark: true,
        };
        let page = pb::ListPodsResponse {
            pods: vec![largest; MAX_PAGE_PODS],
            resource_version: u64::MAX,
            continue_token: "t".repeat(400),
            encoded: None,
        };
        assert!(page.encoded_len() < 1 << 20, "{} bytes", page.encoded_len());
    }

    #[test]
    fn a_list_is_whole_unless_it_asks_for_a_page() {
        let request = |limit, continue_token: &str| pb::ListPodsRequest {
            namespace: "production".into(),
            limit,
            continue_token: continue_token.into(),
            ..pb::ListPodsRequest::default()
        };
        let production = Some("production".to_owned());
        assert_eq!(
            list(&request(0, "")).unwrap(),
            ListQuery::Whole(PodSelector::Namespace("production".into()))
        );
        assert_eq!(
            list(&request(10, "")).unwrap(),
            ListQuery::Page {
                namespace: production.clone(),
                from: None,
                limit: 10
            }
        );
        assert_eq!(
            list(&request(u32::MAX, "")).unwrap(),
            ListQuery::Page {
                namespace: production,
                from: None,
                limit: MAX_PAGE_PODS
            }
        );
        let err = list(&request(10, "garbage")).unwrap_err();
        assert_eq!(err.field, "continue_token");
    }

    #[test]
    fn a_name_selects_one_pod_of_a_namespace_in_one_page() {
        let request =
            |namespace: &str, name: &str, limit, continue_token: &str| pb::ListPodsRequest {
                namespace: namespace.into(),
                name: name.into(),
                limit,
                continue_token: continue_token.into(),
                ..pb::ListPodsRequest::default()
            };
        let web = ListQuery::Whole(PodSelector::Pod(PodKey::new("production", "web")));
        for limit in [0, 1, 500] {
            assert_eq!(
                list(&request("production", "web", limit, "")),
                Ok(web.clone())
            );
        }
        let err = list(&request("production", "web", 10, "a-token")).unwrap_err();
        assert_eq!(err.field, "continue_token");
        assert!(err.rule.contains("with a name"), "{err}");

        let err = selector(&request("", "web", 0, "")).unwrap_err();
        assert_eq!(err.field, "name");
        assert!(err.rule.contains("without a namespace"), "{err}");
        for bad in ["Web", "a/b", "-web", &"x".repeat(64)] {
            let err = selector(&request("production", bad, 0, "")).unwrap_err();
            assert_eq!(err.field, "name", "{bad}");
            assert!(err.rule.contains("DNS-1123"), "{bad}: {err}");
        }
        assert_eq!(
            selector(&request("", "", 0, "")),
            Ok(PodSelector::All),
            "no name: as before the field"
        );
    }

    #[test]
    fn apply_defaults_and_rules() {
        let ok = apply(pb::Pod {
            name: "web".into(),
            replicas: 2,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(ok.key, PodKey::new("default", "web"));
        assert_eq!(ok.status, DEFAULT_STATUS);
        assert_eq!(ok.expected_version, None);

        let err = apply(pb::Pod {
            name: "web".into(),
            replicas: -1,
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "apply.replicas");

        let err = apply(pb::Pod {
            name: "web".into(),
            status: "Run ning".into(),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.field, "apply.status");
    }

    #[test]
    fn statuses_as_kubectl_prints_them() {
        let status_of = |status: &str| {
            apply(pb::Pod {
                name: "web".into(),
                status: status.into(),
                ..Default::default()
            })
        };
        for good in [
            "Init:0/1",
            "Init:CrashLoopBackOff",
            "PodInitializing",
            "ContainerCreating",
            "CreateContainerConfigError",
            "ImagePullBackOff",
            "OOMKilled",
            "Terminating",
            "Completed",
            "Evicted",
            "SchedulingGated",
            "Init:ExitCode:137",
            &"x".repeat(64),
        ] {
            assert_eq!(status_of(good).map(|a| a.status), Ok(good.to_owned()));
        }
        for bad in [
            "Run\nning",
            "\x1b[31mRed",
            "Tab\there",
            "Nul\0",
            "Del\x7f",
            "Zero\u{200b}width",
            "Ünïcode",
            &"x".repeat(65),
        ] {
            let err = status_of(bad).unwrap_err();
            assert_eq!(err.field, "apply.status", "{bad:?}");
            assert!(err.rule.contains("visible ASCII"), "{bad:?}: {err}");
            assert!(!err.to_string().contains('\x1b'), "{err}");
        }
    }
}
