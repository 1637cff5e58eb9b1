//! How errors travel: status-code names, the keys and wording that clients
//! read from an error, and a status as the [`SyncAck`] of a sync op.

use tonic::{Code, Status};

use super::messages::{Pod, SyncAck};

/// The metadata key that carries the last delivered version in the trailers
/// of an ended watch, for clients that would rather not parse the message.
pub const LAST_VERSION_KEY: &str = "last-resource-version";

/// How a failed upload's status ends, after the count of lines it stored
/// (`"chunk 3: ...; 8192 lines stored before this error"`): clients look for
/// it to tell a counted failure from a lost connection.
pub const STORED_BEFORE_ERROR: &str = "lines stored before this error";

/// The ack of a sync op: OK with the stored pod (if any), or the error's
/// code and message.
pub fn ack(id: u64, result: Result<Option<Pod>, Status>) -> SyncAck {
    match result {
        Ok(pod) => SyncAck {
            id,
            code: 0,
            message: String::new(),
            pod,
        },
        Err(status) => SyncAck {
            id,
            code: i32::from(status.code()) as u32,
            message: status.message().to_owned(),
            pod: None,
        },
    }
}

/// The canonical upper-case name of a gRPC status code, e.g. `NOT_FOUND`.
pub fn code_name(code: Code) -> &'static str {
    use Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
