//! What the list and watch clients print: aligned columns like `kubectl get
//! pods` (coloured when stdout is a terminal), or JSON, one object per line,
//! for `jq` and scripts.

use std::fmt::Write;
use std::io::IsTerminal;

use serde_json::json;

use crate::client::{EventKind, PodEvent};
use crate::contract::Pod;

/// The `--output` of the list and watch clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns with a header.
    #[default]
    Table,
    /// One JSON object per line.
    Json,
}

/// How to print: the format, and whether to colour (tables on a terminal).
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Table or JSON.
    pub format: Format,
    /// Whether to colour statuses and events (ANSI).
    pub colour: bool,
}

impl Style {
    /// The style for stdout: colour only when it is a terminal.
    pub fn for_stdout(format: Format) -> Self {
        Style {
            format,
            colour: format == Format::Table && std::io::stdout().is_terminal(),
        }
    }
}

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

/// A pod as one JSON object.
fn pod_json(pod: &Pod) -> serde_json::Value {
    json!({
        "namespace": pod.namespace,
        "name": pod.name,
        "status": pod.status,
        "replicas": pod.replicas,
        "resource_version": pod.resource_version,
    })
}

/// The pods: a table with a header row (each column as wide as its widest
/// cell), or a JSON object per line.
pub fn pods(pods: &[Pod], style: Style) -> String {
    ListPrinter::new(style).rows(pods)
}

/// The pages of a list under one header, printed as they arrive: exactly
/// [`pods`] for a list of one page. Column widths are fixed by the first
/// page and only ever grow, so later pages stay aligned as far as they can.
#[derive(Debug)]
pub struct ListPrinter {
    style: Style,
    widths: [usize; 5],
    header_done: bool,
}

impl ListPrinter {
    /// A printer that has printed nothing yet.
    pub fn new(style: Style) -> Self {
        ListPrinter {
            style,
            widths: HEADERS.map(str::len),
            header_done: false,
        }
    }

    /// The lines for a page, with the header before the first.
    pub fn rows(&mut self, pods: &[Pod]) -> String {
        if self.style.format == Format::Json {
            return pods
                .iter()
                .map(|pod| format!("{}\n", pod_json(pod)))
                .collect();
        }
        let rows: Vec<[String; 5]> = pods.iter().map(cells).collect();
        for row in &rows {
            for (width, cell) in self.widths.iter_mut().zip(row) {
                *width = (*width).max(cell.len());
            }
        }
        let mut out = String::new();
        if !self.header_done {
            push_row(
                &mut out,
                &self.widths,
                &HEADERS.map(str::to_owned),
                &[None; 5],
            );
            self.header_done = true;
        }
        for row in &rows {
            let colours = [
                None,
                None,
                self.style.colour.then(|| status_colour(&row[2])),
                None,
                None,
            ];
            push_row(&mut out, &self.widths, row, &colours);
        }
        out
    }
}

/// Pads every cell but the last to its column's width, then colours it, so
/// that colour codes never upset the alignment.
fn push_row(out: &mut String, widths: &[usize], cells: &[String], colours: &[Option<Colour>]) {
    for (i, ((cell, width), colour)) in cells.iter().zip(widths).zip(colours).enumerate() {
        let last = i + 1 == cells.len();
        let padded = if last {
            cell.clone()
        } else {
            format!("{cell:<width$}")
        };
        match colour {
            Some(colour) => {
                let _ = write!(out, "\x1b[{}m{padded}\x1b[0m", *colour as u8);
            }
            None => out.push_str(&padded),
        }
        if !last {
            out.push_str("   ");
        }
    }
    out.push('\n');
}

#[derive(Debug, Clone, Copy)]
enum Colour {
    Red = 31,
    Green = 32,
    Yellow = 33,
}

/// Green for a pod that is fine, yellow for one on its way (kubectl's
/// `Init:1/3` included), red for everything else: the failing states.
fn status_colour(status: &str) -> Colour {
    let initialising = status.strip_prefix("Init:").is_some_and(|progress| {
        progress
            .split_once('/')
            .is_some_and(|(done, all)| [done, all].iter().all(|n| n.parse::<u32>().is_ok()))
    });
    match status {
        "Running" | "Succeeded" | "Completed" => Colour::Green,
        "Pending" | "ContainerCreating" | "PodInitializing" | "Terminating" | "SchedulingGated"
        | "Unknown" => Colour::Yellow,
        _ if initialising => Colour::Yellow,
        _ => Colour::Red,
    }
}

fn event_colour(kind: EventKind) -> Colour {
    match kind {
        EventKind::Added => Colour::Green,
        EventKind::Modified => Colour::Yellow,
        EventKind::Deleted => Colour::Red,
    }
}

/// Rows of watch events under one header, like `kubectl get pods -w
/// --output-watch-events`, or a JSON object per event. Column widths are
/// fixed by the first batch of rows and only ever grow, so a stream stays
/// aligned as far as it can.
#[derive(Debug)]
pub struct WatchPrinter {
    style: Style,
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

impl WatchPrinter {
    /// A printer that has printed nothing yet.
    pub fn new(style: Style) -> Self {
        WatchPrinter {
            style,
            widths: [0; 6],
            header_done: false,
        }
    }

    /// The lines for a batch of events, with the header before the first batch.
    pub fn rows(&mut self, events: &[PodEvent]) -> String {
        if self.style.format == Format::Json {
            return events
                .iter()
                .map(|event| {
                    let mut object = pod_json(&event.pod);
                    object["event"] = json!(event.kind.to_string());
                    object["deleted"] = json!(event.pod.deleted);
                    format!("{object}\n")
                })
                .collect();
        }
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
            push_row(
                &mut out,
                &self.widths,
                &WATCH_HEADERS.map(str::to_owned),
                &[None; 6],
            );
            self.header_done = true;
        }
        for (row, event) in rows.iter().zip(events) {
            let colours = if self.style.colour {
                let status = (event.kind != EventKind::Deleted).then(|| status_colour(&row[3]));
                [
                    Some(event_colour(event.kind)),
                    None,
                    None,
                    status,
                    None,
                    None,
                ]
            } else {
                [None; 6]
            };
            push_row(&mut out, &self.widths, row, &colours);
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
            bookmark: false,
        }
    }

    const PLAIN: Style = Style {
        format: Format::Table,
        colour: false,
    };

    #[test]
    fn columns_line_up() {
        let table = pods(
            &[
                pod("default", "a", "Running", 1, 3),
                pod("production", "longer-name", "Pending", 12, 10),
            ],
            PLAIN,
        );
        assert_eq!(
            table,
            "NAMESPACE    NAME          STATUS    REPLICAS   VERSION\n\
             default      a             Running   1          3\n\
             production   longer-name   Pending   12         10\n"
        );
    }

    #[test]
    fn pages_print_under_one_header_as_one_list_would() {
        let all = [
            pod("default", "a", "Running", 1, 3),
            pod("default", "b", "Running", 2, 4),
            pod("production", "longer-name", "Pending", 12, 10),
        ];
        for style in [
            PLAIN,
            Style {
                format: Format::Json,
                ..PLAIN
            },
        ] {
            let mut printer = ListPrinter::new(style);
            let paged = printer.rows(&all[..2]) + &printer.rows(&all[2..]);
            let whole = pods(&all, style);
            assert_eq!(paged.lines().count(), whole.lines().count());
            if style.format == Format::Json {
                assert_eq!(paged, whole);
            } else {
                // The first page fixes the widths: the later, wider row
                // pushes its own cells only.
                assert!(paged.starts_with("NAMESPACE   NAME   STATUS    REPLICAS   VERSION\n"));
                assert!(paged.ends_with("production   longer-name   Pending   12         10\n"));
            }
        }
    }

    #[test]
    fn colour_does_not_move_columns() {
        let pods_ = [pod("default", "a", "Running", 1, 3)];
        let coloured = pods(
            &pods_,
            Style {
                colour: true,
                ..PLAIN
            },
        );
        let stripped = coloured.replace("\x1b[32m", "").replace("\x1b[0m", "");
        assert_ne!(coloured, stripped);
        assert_eq!(stripped, pods(&pods_, PLAIN));
    }

    #[test]
    fn statuses_are_coloured_by_what_they_mean() {
        assert!(matches!(status_colour("Running"), Colour::Green));
        assert!(matches!(status_colour("Init:1/3"), Colour::Yellow));
        assert!(matches!(status_colour("Terminating"), Colour::Yellow));
        assert!(matches!(
            status_colour("Init:CrashLoopBackOff"),
            Colour::Red
        ));
        assert!(matches!(status_colour("OOMKilled"), Colour::Red));
    }

    #[test]
    fn json_is_one_object_per_line() {
        let style = Style {
            format: Format::Json,
            colour: false,
        };
        let out = pods(
            &[
                pod("a", "b", "Running", 2, 7),
                pod("a", "c", "Failed", 0, 8),
            ],
            style,
        );
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["name"], "b");
        assert_eq!(lines[1]["resource_version"], 8);
    }
}
