//! Printing the figures: a table with a header, or one JSON object per run.

use std::time::Duration;

pub fn millis(d: Duration) -> String {
    format!("{:.3}ms", ms(d))
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Prints a table, or one JSON object per run.
pub struct Report {
    pub json: bool,
}

impl Report {
    pub fn header(&self, header: &str) {
        if !self.json {
            println!("{header}");
        }
    }

    pub fn row(&self, line: String, object: serde_json::Value) {
        if self.json {
            println!("{object}");
        } else {
            println!("{line}");
        }
    }
}
