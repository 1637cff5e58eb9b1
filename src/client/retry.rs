//! When and how soon the clients try again: which answers no retry can
//! fix, which failures are the server's (another replica may answer), and a
//! capped, jittered backoff for the long-running clients.

use std::time::Duration;

use tonic::Code;

/// Whether a status ends a long-running client instead of a retry: the
/// request is wrong, or the server will not serve this client.
pub fn is_fatal(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::Unimplemented
            | Code::Unauthenticated
            | Code::PermissionDenied
    )
}

/// Whether a status says that the server failed rather than refused the
/// request: it could not be reached, was stopping, or did not answer in
/// time (tonic reports a connection that broke mid-call as `UNKNOWN` or
/// `CANCELLED`). Another replica of the registry may well answer; any other
/// status is an answer that every replica would give alike.
pub fn is_server_failure(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// Capped exponential backoff with jitter, so that many clients of a
/// restarted server do not reconnect in lockstep.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    attempt: u32,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const CAP: Duration = Duration::from_secs(5);

    /// The next delay: 100 ms doubling up to 5 s, each drawn at random from
    /// the upper half of its range.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = Self::FIRST
            .saturating_mul(1 << self.attempt.min(16))
            .min(Self::CAP);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Starts again from the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_cap_with_jitter() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays.iter().all(|d| *d <= Backoff::CAP));
        assert!(delays[11] >= Backoff::CAP / 2);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn only_unfixable_answers_are_fatal() {
        assert!(is_fatal(Code::Unauthenticated));
        assert!(!is_fatal(Code::Unavailable));
        assert!(!is_fatal(Code::OutOfRange));
    }

    #[test]
    fn only_a_server_failure_is_worth_another_replica() {
        assert!(is_server_failure(Code::Unavailable));
        assert!(is_server_failure(Code::DeadlineExceeded));
        assert!(!is_server_failure(Code::InvalidArgument));
        assert!(!is_server_failure(Code::NotFound));
        assert!(!is_server_failure(Code::Unauthenticated));
    }
}
