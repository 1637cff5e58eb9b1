//! The JSON each load prints, frozen: scripts (`scripts/callgrind-builds.sh`,
//! `scripts/compare-*.sh`) parse these keys, so each keeps its name and its
//! type (a whole number, a real number, a flag or a name).

use std::time::Duration;

use crate::load::Latency;
use crate::load::ceiling::CeilingFigures;
use crate::load::fanout::FanoutFigures;
use crate::load::follow::FollowFigures;
use crate::load::followers::FollowersFigures;
use crate::load::pages::{HeldFigures, PageFigures};
use crate::load::process::IdleCost;
use crate::load::snapshot::SnapshotFigures;
use crate::load::sync::SyncFigures;
use crate::load::unary::UnaryFigures;
use crate::load::upload::UploadFigures;
use crate::load::watchers::WatchersFigures;
use crate::report::{Report, Row};

/// The keys of the one JSON object `row` prints, each with its type: `u`
/// a whole number, `f` a real one, `b` a flag, `s` a name.
fn keys<R: Row>(row: &R) -> Vec<String> {
    let line = Report::new(true).render(row);
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&line).expect("one JSON object");
    let mut keys: Vec<String> = object
        .iter()
        .map(|(key, value)| {
            let kind = match value {
                serde_json::Value::Number(n) if n.is_u64() => "u",
                serde_json::Value::Number(_) => "f",
                serde_json::Value::Bool(_) => "b",
                serde_json::Value::String(_) => "s",
                _ => "?",
            };
            format!("{key}:{kind}")
        })
        .collect();
    keys.sort();
    keys
}

fn expect(keys: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> = keys.iter().map(|key| key.to_string()).collect();
    keys.sort();
    keys
}

fn latency() -> Latency {
    Latency {
        p50: Duration::from_micros(1500),
        p99: Duration::from_millis(3),
        max: Duration::from_millis(4),
    }
}

fn cost() -> IdleCost {
    IdleCost {
        count: 4,
        rss_before: 1000,
        rss_after: 3000,
        held_seconds: 0.0,
        server_cpu_seconds: 0.25,
    }
}

fn pages() -> PageFigures {
    PageFigures {
        store: "memory",
        page_size: 500,
        pods: 3000,
        pages: 6,
        elapsed: Duration::from_millis(20),
        page_latency: latency(),
        writes: 3,
    }
}

fn held() -> HeldFigures {
    HeldFigures {
        store: "memory",
        lists: 10,
        changes: 50,
        rss_before: 1000,
        rss_holding: 2000,
        rss_after_changes: 2500,
    }
}

#[test]
fn unary_keys_and_values() {
    let row = UnaryFigures {
        store: "memory",
        callers: 64,
        connections: 2,
        calls: 10,
        pods_per_call: 34,
        elapsed: Duration::from_secs(2),
        latency: latency(),
    };
    assert_eq!(
        keys(&row),
        expect(&[
            "load:s",
            "store:s",
            "callers:u",
            "connections:u",
            "calls:u",
            "pods_per_call:u",
            "calls_per_second:f",
            "p50_ms:f",
            "p99_ms:f",
            "max_ms:f",
        ])
    );
    let line = Report::new(true).render(&row);
    let object: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(object["load"], "unary");
    assert_eq!(object["calls"], 10);
    assert_eq!(object["calls_per_second"], 5.0);
    assert_eq!(object["p50_ms"], 1.5);
}

#[test]
fn idle_stream_keys() {
    let watchers = WatchersFigures {
        connections: 2,
        bookmarks: true,
        cost: cost(),
    };
    assert_eq!(
        keys(&watchers),
        expect(&[
            "load:s",
            "watchers:u",
            "connections:u",
            "bookmarks:b",
            "rss_before:u",
            "rss_after:u",
            "bytes_per_watcher:f",
            "held_seconds:f",
            "server_cpu_seconds:f",
        ])
    );
    let followers = FollowersFigures {
        connections: 2,
        cost: cost(),
    };
    assert_eq!(
        keys(&followers),
        expect(&[
            "load:s",
            "followers:u",
            "connections:u",
            "rss_before:u",
            "rss_after:u",
            "bytes_per_follower:f",
            "held_seconds:f",
            "server_cpu_seconds:f",
        ])
    );
    let line = Report::new(true).render(&followers);
    let object: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    assert_eq!(object["bytes_per_follower"], 500.0);
}

#[test]
fn watch_sync_and_upload_keys() {
    let watch = SnapshotFigures {
        store: "durable",
        pods: 100,
        elapsed: Duration::from_millis(10),
        first_pod: Duration::from_millis(1),
    };
    assert_eq!(
        keys(&watch),
        expect(&[
            "load:s",
            "store:s",
            "pods:u",
            "seconds:f",
            "pods_per_second:f",
            "first_pod_ms:f",
        ])
    );
    let sync = SyncFigures {
        store: "memory",
        sessions: 64,
        in_flight: 1,
        connections: 1,
        ops: 1000,
        elapsed: Duration::from_secs(1),
        ack_latency: latency(),
    };
    assert_eq!(
        keys(&sync),
        expect(&[
            "load:s",
            "store:s",
            "sessions:u",
            "in_flight:u",
            "connections:u",
            "ops:u",
            "ops_per_second:f",
            "p50_ms:f",
            "p99_ms:f",
            "max_ms:f",
        ])
    );
    let upload = UploadFigures {
        store: "external",
        streams: 4,
        connections: 4,
        lines: 400,
        bytes: 40_000,
        elapsed: Duration::from_secs(1),
    };
    assert_eq!(
        keys(&upload),
        expect(&[
            "load:s",
            "store:s",
            "streams:u",
            "connections:u",
            "lines:u",
            "bytes:u",
            "seconds:f",
            "lines_per_second:f",
            "megabytes_per_second:f",
        ])
    );
    let ceiling = CeilingFigures {
        callers: 64,
        txns: 5000,
        elapsed: Duration::from_secs(1),
        latency: latency(),
    };
    assert_eq!(
        keys(&ceiling),
        expect(&[
            "load:s",
            "callers:u",
            "txns:u",
            "txns_per_second:f",
            "p50_ms:f",
            "p99_ms:f",
            "max_ms:f",
        ])
    );
}

#[test]
fn fanout_and_follow_keys() {
    let fanout = FanoutFigures {
        store: "memory",
        watchers: 100,
        connections: 4,
        changes: 200,
        deliveries: 20_000,
        from_send: latency(),
        from_ack: latency(),
        last_watcher: latency(),
    };
    assert_eq!(
        keys(&fanout),
        expect(&[
            "load:s",
            "store:s",
            "watchers:u",
            "connections:u",
            "changes:u",
            "deliveries:u",
            "send_p50_ms:f",
            "send_p99_ms:f",
            "send_max_ms:f",
            "ack_p50_ms:f",
            "ack_p99_ms:f",
            "ack_max_ms:f",
            "last_watcher_p50_ms:f",
            "last_watcher_max_ms:f",
        ])
    );
    let follow = FollowFigures {
        store: "external",
        followers: 10,
        connections: 1,
        rate: 100.0,
        uploads: 500,
        received: 5000,
        expected: 5000,
        from_ack: latency(),
        from_send: latency(),
        last_follower: latency(),
        ack: latency(),
    };
    assert_eq!(
        keys(&follow),
        expect(&[
            "load:s",
            "store:s",
            "followers:u",
            "connections:u",
            "uploads:u",
            "rate:f",
            "received:u",
            "expected:u",
            "p50_ms:f",
            "p99_ms:f",
            "max_ms:f",
            "send_p50_ms:f",
            "send_p99_ms:f",
            "send_max_ms:f",
            "last_follower_p50_ms:f",
            "last_follower_max_ms:f",
            "upload_p50_ms:f",
            "upload_p99_ms:f",
        ])
    );
    assert!(follow.complete().is_ok());
    let lost = FollowFigures {
        received: 4999,
        ..follow
    };
    assert!(lost.complete().is_err());
}

#[test]
fn pages_keys() {
    let pages = pages();
    assert_eq!(
        keys(&pages),
        expect(&[
            "load:s",
            "store:s",
            "pods:u",
            "page_size:u",
            "pages:u",
            "seconds:f",
            "pages_per_second:f",
            "page_p50_ms:f",
            "page_p99_ms:f",
            "writes_meanwhile:u",
            "consistent:b",
        ])
    );
    let held = held();
    assert_eq!(
        keys(&held),
        expect(&[
            "load:s",
            "store:s",
            "lists:u",
            "rss_before:u",
            "rss_holding:u",
            "rss_after_changes:u",
            "bytes_per_list:f",
            "changes:u",
        ])
    );
}

/// The table prints a header before a load's first row, and again when
/// another load's rows follow (as held lists follow the paged lists).
#[test]
fn table_headers_come_with_each_load() {
    let pages = pages();
    let held = held();
    let mut report = Report::new(false);
    let first = report.render(&pages);
    let second = report.render(&pages);
    let then = report.render(&held);
    assert_eq!(first.lines().count(), 2, "{first}");
    assert!(first.starts_with("store "), "{first}");
    assert!(first.contains("1.500ms"), "{first}");
    assert_eq!(second.lines().count(), 1, "{second}");
    assert_eq!(then.lines().count(), 2, "{then}");
    assert!(then.starts_with("held lists"), "{then}");
    // bytes per list: (2000 - 1000) / 10; the growth with the changes: 500.
    let row: Vec<&str> = then
        .lines()
        .nth(1)
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(row, ["10", "1000", "100", "50", "500"]);
}
