//! Terminal output: pods as aligned columns, like `kubectl get pods`.

use std::fmt::Write;

use crate::client::watch::{EventKind, PodEvent};
use crate::pb::Pod;

const HEADERS: [&str; 5] = ["NAMESPACE", "NAME", "STATUS", "REPLICAS", "VERSION"];

fn cells(pod: &Pod) -> [String; 5] {
    [
        pod.namespace.clone(),
        pod.name.clone(),
        pod.status.clone(),
        pod.replicas.to_string(),
        pod.resource_version.to_string(),
    ]
}

/// The pods as a table with a header row, each column as wide as its widest cell.
pub fn pods(pods: &[Pod]) -> String {
    let rows: Vec<[String; 5]> = pods.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    push_row(&mut out, &widths, HEADERS.iter().copied());
    for row in &rows {
        push_row(&mut out, &widths, row.iter().map(String::as_str));
    }
    out
}

fn push_row<'a>(out: &mut String, widths: &[usize], cells: impl Iterator<Item = &'a str>) {
    let cells: Vec<&str> = cells.collect();
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i + 1 == cells.len() {
            out.push_str(cell);
        } else {
            let _ = write!(out, "{cell:<width$}   ");
        }
    }
    out.push('\n');
}

/// Rows of watch events under one header, like `kubectl get pods -w
/// --output-watch-events`. Column widths are fixed by the first batch of
/// rows and only ever grow, so a stream stays aligned as far as it can.
#[derive(Debug, Default)]
pub struct WatchTable {
    widths: [usize; 6],
    header_done: bool,
}

const WATCH_HEADERS: [&str; 6] = [
    "EVENT",
    "NAMESPACE",
    "NAME",
    "STATUS",
    "REPLICAS",
    "VERSION",
];

impl WatchTable {
    /// The lines for a batch of events, with the header before the first batch.
    pub fn rows(&mut self, events: &[PodEvent]) -> String {
        let rows: Vec<[String; 6]> = events.iter().map(watch_cells).collect();
        if !self.header_done {
            self.widths = WATCH_HEADERS.map(str::len);
            self.widths[0] = self.widths[0].max("MODIFIED".len());
        }
        for row in &rows {
            for (width, cell) in self.widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut out = String::new();
        if !self.header_done {
            push_row(&mut out, &self.widths, WATCH_HEADERS.iter().copied());
            self.header_done = true;
        }
        for row in &rows {
            push_row(&mut out, &self.widths, row.iter().map(String::as_str));
        }
        out
    }
}

fn watch_cells(event: &PodEvent) -> [String; 6] {
    let [namespace, name, status, replicas, version] = cells(&event.pod);
    let (status, replicas) = match event.kind {
        EventKind::Deleted => ("-".to_owned(), "-".to_owned()),
        _ => (status, replicas),
    };
    [
        event.kind.to_string(),
        namespace,
        name,
        status,
        replicas,
        version,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(namespace: &str, name: &str, status: &str, replicas: i32, version: u64) -> Pod {
        Pod {
            name: name.into(),
            namespace: namespace.into(),
            status: status.into(),
            replicas,
            resource_version: version,
            deleted: false,
        }
    }

    #[test]
    fn columns_line_up() {
        let table = pods(&[
            pod("default", "a", "Running", 1, 3),
            pod("production", "longer-name", "Pending", 12, 10),
        ]);
        assert_eq!(
            table,
            "NAMESPACE    NAME          STATUS    REPLICAS   VERSION\n\
             default      a             Running   1          3\n\
             production   longer-name   Pending   12         10\n"
        );
    }
}
