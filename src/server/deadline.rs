//! Call deadlines for response streams.
//!
//! A client states its deadline in the `grpc-timeout` header. tonic's server
//! honours it until a call answers (unary calls and uploads end with it),
//! but a stream that has answered would run on past it, holding a watcher
//! or a log follower for a client that has given up. [`bounded`] ends such a
//! stream with `DEADLINE_EXCEEDED` when the deadline passes. Calls without a
//! deadline (the usual case for watches) pay nothing.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::time::Instant;
use tonic::{Request, Status};

/// The deadline a request carries, if any.
pub(super) fn of<T>(request: &Request<T>) -> Option<Instant> {
    let header = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    parse_timeout(header).map(|timeout| Instant::now() + timeout)
}

/// `stream`, ended with `DEADLINE_EXCEEDED` once `deadline` passes.
pub(super) fn bounded<S, T>(
    stream: S,
    deadline: Option<Instant>,
) -> impl Stream<Item = Result<T, Status>> + Send + 'static
where
    S: Stream<Item = Result<T, Status>> + Send + 'static,
    T: Send + 'static,
{
    let Some(deadline) = deadline else {
        return stream.left_stream();
    };
    // Boxed, so that the far more common stream without a deadline is not
    // padded to the size of this one (the memory per idle watcher it cost
    // is in BENCHMARKS.md).
    let bounded = async_stream::stream! {
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired, stream);
        loop {
            tokio::select! {
                // The deadline first, so that a busy stream cannot outrun it.
                biased;
                () = &mut expired => {
                    yield Err(Status::deadline_exceeded("the call's deadline (grpc-timeout) passed"));
                    break;
                }
                item = stream.next() => match item {
                    Some(item) => yield item,
                    None => break,
                },
            }
        }
    };
    Box::pin(bounded).right_stream()
}

/// Parses a `grpc-timeout` value: at most 8 digits and a unit (gRPC over
/// HTTP/2: H, M, S, m, u, n).
pub fn parse_timeout(value: &str) -> Option<Duration> {
    let unit = value.chars().last()?;
    let digits = &value[..value.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        'H' => Duration::from_secs(amount * 3600),
        'M' => Duration::from_secs(amount * 60),
        'S' => Duration::from_secs(amount),
        'm' => Duration::from_millis(amount),
        'u' => Duration::from_micros(amount),
        'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse_timeout("100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            "",
            "m",
            "100",
            "123456789S",
            "1.5S",
            "-1S",
            "10x",
            "１S",
            "1é",
            "é",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }
}
