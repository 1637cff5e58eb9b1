//! What a session prints: one line per ack and per change.

use std::fmt::Write as _;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::client::cache::PodEvent;
use crate::contract::{Pod, SyncAck, code_name};

pub(super) async fn write_line(
    output: &mut (impl AsyncWrite + Unpin),
    line: &str,
) -> anyhow::Result<()> {
    output.write_all(line.as_bytes()).await?;
    output.write_all(b"\n").await?;
    output.flush().await?;
    Ok(())
}

pub(super) fn ack_line(ack: &SyncAck) -> String {
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

pub(super) fn change_line(event: &PodEvent) -> String {
    format!("change {} {}", event.kind, describe_pod(&event.pod))
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
