//! UploadLogs (client streaming) and GetLogs (server streaming) end to end,
//! on every store, and with the logs on NATS JetStream.

mod common;

use common::{Backend, PATIENCE, TestServer, within};
use pod_service::contract::{GetLogsRequest, LogChunk, PodServiceClient, UploadLogsResponse};
use pod_service::server::ServerConfig;
use pod_service::store::{StoreConfig, line_cost};
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

fn chunk(namespace: &str, pod: &str, lines: Vec<String>) -> LogChunk {
    LogChunk {
        namespace: namespace.into(),
        pod: pod.into(),
        lines,
        first_line: 0,
    }
}

async fn upload(
    client: &mut PodServiceClient<Channel>,
    chunks: Vec<LogChunk>,
) -> Result<UploadLogsResponse, Status> {
    client
        .upload_logs(tokio_stream::iter(chunks))
        .await
        .map(|r| r.into_inner())
}

/// Where a read starts: what the request's `tail_lines` or `from_line` say.
#[derive(Clone, Copy)]
enum Start {
    Oldest,
    Tail(u32),
    Line(u64),
}

async fn get_logs(
    client: &mut PodServiceClient<Channel>,
    pod: &str,
    follow: bool,
    start: Start,
) -> Result<Streaming<LogChunk>, Status> {
    let (tail_lines, from_line) = match start {
        Start::Oldest => (0, 0),
        Start::Tail(lines) => (lines, 0),
        Start::Line(number) => (0, number),
    };
    client
        .get_logs(GetLogsRequest {
            namespace: "default".into(),
            pod: pod.into(),
            follow,
            tail_lines,
            from_line,
        })
        .await
        .map(|r| r.into_inner())
}

/// Reads a finite log stream to its end: `(number, line)` each, checking
/// that the numbers run on from chunk to chunk.
async fn read_numbered(stream: &mut Streaming<LogChunk>) -> Vec<(u64, String)> {
    let mut lines: Vec<(u64, String)> = Vec::new();
    while let Some(chunk) = within("log lines", stream.message()).await.unwrap() {
        assert!(chunk.first_line > 0, "numbered");
        if let Some((last, _)) = lines.last() {
            assert_eq!(chunk.first_line, last + 1, "no gap between chunks");
        }
        let first = chunk.first_line;
        lines.extend((first..).zip(chunk.lines));
    }
    lines
}

/// How many lines the pod's log has had, read through the server.
async fn lines_so_far(client: &mut PodServiceClient<Channel>, pod: &str) -> u64 {
    let mut stream = get_logs(client, pod, false, Start::Tail(1)).await.unwrap();
    read_numbered(&mut stream)
        .await
        .last()
        .map_or(0, |(n, _)| *n)
}

/// Reads a finite log stream to its end.
async fn read_all(stream: &mut Streaming<LogChunk>) -> Vec<String> {
    let mut lines = Vec::new();
    while let Some(chunk) = within("log lines", stream.message()).await.unwrap() {
        assert!(!chunk.lines.is_empty(), "no empty chunks");
        lines.extend(chunk.lines);
    }
    lines
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| format!("line {i:06} {}", "x".repeat(i % 50)))
        .collect()
}

async fn a_large_upload_is_counted_exactly_and_read_back_in_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    let lines = numbered(0..150_000);
    let bytes: u64 = lines.iter().map(|l| l.len() as u64).sum();
    let chunks: Vec<LogChunk> = lines
        .chunks(1_000)
        .map(|c| chunk("", "web", c.to_vec()))
        .collect();

    let summary = upload(&mut client, chunks).await.unwrap();
    assert_eq!(
        (summary.chunks, summary.lines, summary.bytes),
        (150, 150_000, bytes)
    );
    let mut stream = get_logs(&mut client, "web", false, Start::Oldest)
        .await
        .unwrap();
    assert_eq!(read_all(&mut stream).await, lines);

    let mut stream = get_logs(&mut client, "web", false, Start::Tail(3))
        .await
        .unwrap();
    assert_eq!(read_all(&mut stream).await, lines[149_997..]);
}

async fn an_empty_upload_is_fine(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    assert_eq!(
        upload(&mut client, vec![]).await.unwrap(),
        Default::default()
    );
}

/// A chunk that breaks a rule fails the upload with a status naming the
/// chunk, the rule and how many lines were stored before it; that chunk
/// stores nothing.
async fn upload_errors_say_what_was_stored(backend: Backend) {
    let server = TestServer::start_with(
        backend,
        StoreConfig::default(),
        ServerConfig {
            max_line_bytes: 100,
            ..ServerConfig::default()
        },
    )
    .await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    let good = || chunk("default", "web", numbered(0..10));
    let cases = [
        (
            chunk("default", "nope", vec!["a".into()]),
            Code::InvalidArgument,
            "must name the pod of the first chunk (default/web)",
        ),
        (
            chunk("default", "Web", vec!["a".into()]),
            Code::InvalidArgument,
            "invalid pod: must be a DNS-1123 label",
        ),
        (
            chunk("bad/ns", "web", vec!["a".into()]),
            Code::InvalidArgument,
            "invalid namespace: must be a DNS-1123 label",
        ),
        (
            chunk("default", "web", vec!["ok".into(), "y".repeat(101)]),
            Code::InvalidArgument,
            "invalid lines[1]: must be at most 100 bytes (got 101)",
        ),
        (
            chunk("default", "web", vec!["a\nb".into()]),
            Code::InvalidArgument,
            "invalid lines[0]: must not contain a line break",
        ),
    ];
    for (bad, code, rule) in cases {
        let before = lines_so_far(&mut client, "web").await;
        let status = upload(&mut client, vec![good(), good(), bad, good()])
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{}", status.message());
        let message = status.message();
        assert!(message.starts_with("chunk 3: "), "{message}");
        assert!(message.contains(rule), "{message}");
        assert!(
            message.ends_with("; 20 lines stored before this error"),
            "{message}"
        );
        // The two good chunks were stored; nothing of the bad one nor after it.
        let after = lines_so_far(&mut client, "web").await;
        assert_eq!(after - before, 20);
    }
    let missing = upload(
        &mut client,
        vec![chunk("default", "nope", vec!["a".into()])],
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound, "{}", missing.message());
    assert_eq!(
        missing.message(),
        "chunk 1: pod default/nope not found; 0 lines stored before this error"
    );
}

async fn get_logs_of_a_missing_or_invalid_pod(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut client = server.client().await;
    let status = get_logs(&mut client, "ghost", false, Start::Oldest)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = get_logs(&mut client, "a_b", false, Start::Oldest)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("invalid pod"),
        "{}",
        status.message()
    );
}

async fn follow_streams_new_lines_until_the_pod_is_deleted(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    upload(&mut client, vec![chunk("", "web", numbered(0..5))])
        .await
        .unwrap();

    let mut follow = get_logs(&mut client, "web", true, Start::Tail(2))
        .await
        .unwrap();
    let first = within("stored lines", follow.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.lines, numbered(3..5));

    for round in 0..3 {
        let lines = numbered(5 + round * 10..15 + round * 10);
        upload(&mut client, vec![chunk("", "web", lines.clone())])
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < lines.len() {
            got.extend(
                within("followed lines", follow.message())
                    .await
                    .unwrap()
                    .unwrap()
                    .lines,
            );
        }
        assert_eq!(got, lines);
    }

    server.delete("default", "web").await;
    let end = tokio::time::timeout(PATIENCE, follow.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None)), "follow ends cleanly: {end:?}");
}

async fn a_departed_follower_is_freed(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.apply("default", "web", "Running", 1).await;
    let log = server.pod_log("default", "web").await.unwrap();
    let mut client = server.client().await;
    let follow = get_logs(&mut client, "web", true, Start::Oldest)
        .await
        .unwrap();
    // The follower's stream holds a handle on the log while it waits.
    common::eventually(|| std::sync::Arc::strong_count(&log) == 3, "the follower").await;
    drop(follow);
    common::eventually(
        || std::sync::Arc::strong_count(&log) == 2,
        "the follower to go",
    )
    .await;
}

/// A follower that stops reading (on a connection with a small window, so
/// that the transport absorbs little) holds up neither uploads nor a
/// follower that reads: the log is shared, each follower only has a cursor.
async fn a_follower_that_stops_reading_holds_up_nobody(backend: Backend) {
    const LINES: usize = 50_000; // about 2.7 MB, far beyond the stalled window
    let server = TestServer::start(backend).await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    let mut stalling = common::stalling_connection(server.url()).await;
    let _stalled = get_logs(&mut stalling, "web", true, Start::Oldest)
        .await
        .unwrap();
    let mut reading = get_logs(&mut client, "web", true, Start::Oldest)
        .await
        .unwrap();

    let sent = numbered(0..LINES);
    let chunks = sent
        .chunks(1_000)
        .map(|c| chunk("", "web", c.to_vec()))
        .collect();
    let summary = within("the upload", upload(&mut client, chunks))
        .await
        .unwrap();
    assert_eq!(summary.lines, LINES as u64);
    let mut got = Vec::new();
    while got.len() < LINES {
        got.extend(
            within("followed lines", reading.message())
                .await
                .unwrap()
                .unwrap()
                .lines,
        );
    }
    assert_eq!(got, sent);
}

/// Lines are numbered from 1; a read starts at any number, and a follow
/// from a number not reached yet waits for it.
async fn lines_are_numbered_and_a_read_starts_at_any_of_them(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    upload(&mut client, vec![chunk("", "web", numbered(1..11))])
        .await
        .unwrap();

    let mut all = get_logs(&mut client, "web", false, Start::Oldest)
        .await
        .unwrap();
    let expected: Vec<(u64, String)> = (1..).zip(numbered(1..11)).collect();
    assert_eq!(read_numbered(&mut all).await, expected);
    let mut from = get_logs(&mut client, "web", false, Start::Line(4))
        .await
        .unwrap();
    assert_eq!(read_numbered(&mut from).await, expected[3..]);
    let mut tail = get_logs(&mut client, "web", false, Start::Tail(3))
        .await
        .unwrap();
    assert_eq!(read_numbered(&mut tail).await, expected[7..]);
    let mut beyond = get_logs(&mut client, "web", false, Start::Line(50))
        .await
        .unwrap();
    assert_eq!(read_numbered(&mut beyond).await, []);

    let both = client
        .get_logs(GetLogsRequest {
            namespace: "default".into(),
            pod: "web".into(),
            tail_lines: 2,
            from_line: 3,
            ..GetLogsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument);
    assert!(
        both.message()
            .contains("invalid from_line: must not be set together with tail_lines"),
        "{}",
        both.message()
    );

    // Line 12 does not exist yet: the follow waits for it, skipping 11.
    let mut follow = get_logs(&mut client, "web", true, Start::Line(12))
        .await
        .unwrap();
    for line in numbered(11..14) {
        upload(&mut client, vec![chunk("", "web", vec![line])])
            .await
            .unwrap();
    }
    let first = within("line 12", follow.message()).await.unwrap().unwrap();
    assert_eq!(first.first_line, 12);
    assert_eq!(first.lines.first(), Some(&numbered(12..13)[0]));
}

/// Beyond the limit the oldest lines go, keeping their numbers: the first
/// line read tells how many were dropped.
async fn retention_drops_the_oldest_lines_and_keeps_the_numbers(backend: Backend) {
    const LIMIT: usize = 20_000;
    let server = TestServer::start_with(
        backend,
        StoreConfig {
            log_bytes_per_pod: LIMIT,
            ..StoreConfig::default()
        },
        ServerConfig::default(),
    )
    .await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    let sent = numbered(1..1001);
    for lines in sent.chunks(10) {
        upload(&mut client, vec![chunk("", "web", lines.to_vec())])
            .await
            .unwrap();
    }
    let mut stream = get_logs(&mut client, "web", false, Start::Oldest)
        .await
        .unwrap();
    let kept = read_numbered(&mut stream).await;
    let (first, _) = kept[0];
    assert!(first > 1, "the oldest lines were dropped");
    let expected: Vec<(u64, String)> = (first..).zip(sent[first as usize - 1..].to_vec()).collect();
    assert_eq!(kept, expected, "the newest lines, with their numbers");
    // Within the limit, by line_cost; a JetStream log is trimmed once it is
    // an eighth over it, and keeps whole messages (here: uploads).
    let cost: usize = kept.iter().map(|(_, line)| line_cost(line)).sum();
    let upload_cost: usize = sent[..10].iter().map(|line| line_cost(line)).sum::<usize>() * 2;
    let most = match backend {
        Backend::Nats | Backend::NatsTls => LIMIT + LIMIT / 8 + upload_cost,
        _ => LIMIT,
    };
    assert!(
        cost <= most && cost + upload_cost >= LIMIT,
        "kept {cost} bytes of {LIMIT}"
    );
}

/// A pod deleted and created again starts with an empty log, numbered from 1.
async fn a_pod_created_again_has_an_empty_log(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.apply("default", "web", "Running", 1).await;
    let mut client = server.client().await;
    upload(&mut client, vec![chunk("", "web", numbered(1..6))])
        .await
        .unwrap();
    server.delete("default", "web").await;
    server.apply("default", "web", "Running", 1).await;
    let mut stream = get_logs(&mut client, "web", false, Start::Oldest)
        .await
        .unwrap();
    assert_eq!(read_all(&mut stream).await, Vec::<String>::new());
    upload(&mut client, vec![chunk("", "web", vec!["again".into()])])
        .await
        .unwrap();
    let mut stream = get_logs(&mut client, "web", false, Start::Oldest)
        .await
        .unwrap();
    assert_eq!(read_numbered(&mut stream).await, [(1, "again".to_owned())]);
}

common::on_every_log_store!(
    lines_are_numbered_and_a_read_starts_at_any_of_them,
    retention_drops_the_oldest_lines_and_keeps_the_numbers,
    a_pod_created_again_has_an_empty_log,
    a_follower_that_stops_reading_holds_up_nobody,
    a_large_upload_is_counted_exactly_and_read_back_in_order,
    an_empty_upload_is_fine,
    upload_errors_say_what_was_stored,
    get_logs_of_a_missing_or_invalid_pod,
    follow_streams_new_lines_until_the_pod_is_deleted,
    a_departed_follower_is_freed,
);
