//! The JetStream messages that hold log lines.
//!
//! One message holds consecutive lines of one pod, joined by `\n` (a line
//! never holds one: uploads are checked), so a message is readable as it
//! is with the `nats` CLI. Two headers place it in the pod's log:
//!
//! | header       | value                                                   |
//! |--------------|---------------------------------------------------------|
//! | `Pod-Line`   | the number of its first line (a pod's lines count from 1) |
//! | `Pod-Offset` | the [`line_cost`] of every earlier line of the pod, dropped or not |
//!
//! Both grow with the stream sequence within a subject, which is what lets
//! a reader find a line, and the writer a retention cut, by binary search.

use async_nats::HeaderMap;
use async_nats::jetstream::message::StreamMessage;
use bytes::Bytes;

use crate::store::pod_log::line_cost;

const LINE: &str = "Pod-Line";
const OFFSET: &str = "Pod-Offset";

/// A stored message, decoded.
#[derive(Debug, Clone)]
pub(super) struct Record {
    /// Its stream sequence.
    pub seq: u64,
    /// The number of its first line.
    pub first_line: u64,
    /// The cost of the pod's lines before it.
    pub offset: u64,
    pub lines: Vec<String>,
}

impl Record {
    /// The number of the line after its last.
    pub fn end_line(&self) -> u64 {
        self.first_line + self.lines.len() as u64
    }

    /// The cost of the pod's lines up to its last.
    pub fn end_offset(&self) -> u64 {
        self.offset + cost(&self.lines)
    }

    /// Decodes a stored message; `None` if it is not one of ours.
    pub fn decode(message: &StreamMessage) -> Option<Record> {
        let number = |name: &str| message.headers.get(name)?.as_str().parse::<u64>().ok();
        let text = std::str::from_utf8(&message.payload).ok()?;
        Some(Record {
            seq: message.sequence,
            first_line: number(LINE).filter(|line| *line > 0)?,
            offset: number(OFFSET)?,
            lines: text.split('\n').map(str::to_owned).collect(),
        })
    }
}

/// The headers and payload of a message of `lines` (at least one), placed
/// at `first_line` and `offset`.
pub(super) fn encode(first_line: u64, offset: u64, lines: &[String]) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(LINE, first_line.to_string().as_str());
    headers.insert(OFFSET, offset.to_string().as_str());
    (headers, Bytes::from(lines.join("\n")))
}

/// What lines count against a pod's retention limit.
pub(super) fn cost(lines: &[String]) -> u64 {
    lines.iter().map(|line| line_cost(line) as u64).sum()
}

/// Splits lines into runs whose messages stay within `max_bytes` of
/// payload (a longer line goes alone).
pub(super) fn split(lines: &[String], max_bytes: usize) -> impl Iterator<Item = &[String]> {
    let mut rest = lines;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut n = 0;
        for line in rest {
            let more = line.len() + usize::from(n > 0);
            if n > 0 && bytes + more > max_bytes {
                break;
            }
            bytes += more;
            n += 1;
        }
        let (run, after) = rest.split_at(n);
        rest = after;
        Some(run)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_stay_within_the_limit_and_keep_every_line() {
        let lines: Vec<String> = (0..100).map(|i| "x".repeat(i % 7)).collect();
        let runs: Vec<&[String]> = split(&lines, 20).collect();
        for run in &runs {
            assert!(run.len() == 1 || run.join("\n").len() <= 20, "{run:?}");
        }
        assert_eq!(runs.concat(), lines);
        let long = vec!["y".repeat(50), "z".into()];
        assert_eq!(split(&long, 20).count(), 2);
    }

    #[test]
    fn empty_lines_survive_the_round_trip() {
        let lines = vec![String::new(), "a".into(), String::new()];
        let (_, payload) = encode(1, 0, &lines);
        let text = std::str::from_utf8(&payload).unwrap();
        let back: Vec<String> = text.split('\n').map(str::to_owned).collect();
        assert_eq!(back, lines);
    }
}
