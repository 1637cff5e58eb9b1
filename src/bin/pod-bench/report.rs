//! Printing what a load measured: each load's result lists its figures once
//! (see [`Row`]), and the one [`Report`] prints them as a table row under a
//! header, or as one JSON object per line (`--json`).
//!
//! Scripts parse the JSON (`scripts/callgrind-builds.sh`, `compare-*.sh`),
//! so a figure's JSON key and meaning never change; its table column is
//! for people and may.

use std::time::Duration;

use pod_service::cli;

/// A load's result, as the reporter prints it.
pub trait Row {
    /// The `load` field of its JSON object; the table's header is printed
    /// again when it changes.
    const LOAD: &'static str;

    /// Its figures, in the order of the table's columns.
    fn figures(&self) -> Vec<Figure>;
}

/// One figure of a run: its value, its JSON key (if the JSON has it) and
/// its table column (if the table shows it).
pub struct Figure {
    value: Value,
    key: Option<&'static str>,
    column: Option<&'static str>,
}

enum Value {
    Count(u64),
    Flag(bool),
    Text(&'static str),
    /// Printed in the table with this many decimals.
    Real(f64, usize),
    Millis(Duration),
}

impl Figure {
    /// A whole number: calls, pods, bytes, callers.
    pub fn count(value: impl TryInto<u64>) -> Self {
        // Counts here are of things held in memory: they fit.
        Self::of(Value::Count(value.try_into().unwrap_or(u64::MAX)))
    }

    /// A yes or no.
    pub fn flag(value: bool) -> Self {
        Self::of(Value::Flag(value))
    }

    /// A name, such as the store's.
    pub fn text(value: &'static str) -> Self {
        Self::of(Value::Text(value))
    }

    /// A rate or an average: a number in JSON, with `decimals` in the table.
    pub fn real(value: f64, decimals: usize) -> Self {
        Self::of(Value::Real(value, decimals))
    }

    /// Seconds, to the millisecond in the table.
    pub fn seconds(value: f64) -> Self {
        Self::real(value, 3)
    }

    /// A latency: milliseconds in JSON (a key ending `_ms`), `1.234ms` in
    /// the table.
    pub fn millis(value: Duration) -> Self {
        Self::of(Value::Millis(value))
    }

    fn of(value: Value) -> Self {
        Figure {
            value,
            key: None,
            column: None,
        }
    }

    /// Its JSON key.
    pub fn json(self, key: &'static str) -> Self {
        Figure {
            key: Some(key),
            ..self
        }
    }

    /// Its table column.
    pub fn table(self, column: &'static str) -> Self {
        Figure {
            column: Some(column),
            ..self
        }
    }

    /// The same name as JSON key and as column.
    pub fn named(self, name: &'static str) -> Self {
        self.json(name).table(name)
    }

    fn to_json(&self) -> serde_json::Value {
        match self.value {
            Value::Count(n) => n.into(),
            Value::Flag(b) => b.into(),
            Value::Text(s) => s.into(),
            Value::Real(x, _) => x.into(),
            Value::Millis(d) => ms(d).into(),
        }
    }

    fn cell(&self) -> String {
        match self.value {
            Value::Count(n) => n.to_string(),
            Value::Flag(b) => b.to_string(),
            Value::Text(s) => s.to_owned(),
            Value::Real(x, decimals) => format!("{x:.decimals$}"),
            Value::Millis(d) => format!("{:.3}ms", ms(d)),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The narrowest a table column is: room for `1234.567ms`.
const MIN_WIDTH: usize = 10;

/// Prints results as a table, or one JSON object per result.
pub struct Report {
    json: bool,
    /// The load whose header the table printed last.
    headed: Option<&'static str>,
}

impl Report {
    pub fn new(json: bool) -> Self {
        Report { json, headed: None }
    }

    /// Prints one result: a JSON object, or a table row (after the header,
    /// if the previous row was of another load).
    pub fn print<R: Row>(&mut self, row: &R) -> std::io::Result<()> {
        cli::print(&self.render(row))
    }

    /// What [`Report::print`] prints for `row`.
    pub fn render<R: Row>(&mut self, row: &R) -> String {
        let figures = row.figures();
        if self.json {
            return format!("{}\n", json(R::LOAD, &figures));
        }
        let columns: Vec<(&str, String)> = figures
            .iter()
            .filter_map(|figure| Some((figure.column?, figure.cell())))
            .collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&columns)
                .map(|(cell, (column, _))| format!("{cell:<0$}", (column.len() + 1).max(MIN_WIDTH)))
                .collect();
            format!("{}\n", padded.join(" ").trim_end())
        };
        let mut text = String::new();
        if self.headed != Some(R::LOAD) {
            self.headed = Some(R::LOAD);
            text += &line(columns.iter().map(|(column, _)| *column).collect());
        }
        text + &line(columns.iter().map(|(_, cell)| cell.as_str()).collect())
    }
}

/// The JSON object of a result: its `load` and every figure with a key.
fn json(load: &'static str, figures: &[Figure]) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("load".into(), load.into());
    for figure in figures {
        if let Some(key) = figure.key {
            object.insert(key.into(), figure.to_json());
        }
    }
    serde_json::Value::Object(object)
}
