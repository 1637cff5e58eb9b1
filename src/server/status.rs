//! How the domain's refusals become gRPC statuses: one place that picks
//! each code, so every call answers the same refusal the same way.

use tonic::Status;

use crate::contract::LAST_VERSION_KEY;
use crate::domain::Invalid;
use crate::store::{StoreError, WatchEnd};

impl From<Invalid> for Status {
    fn from(err: Invalid) -> Self {
        Status::invalid_argument(err.to_string())
    }
}

impl From<StoreError> for Status {
    fn from(err: StoreError) -> Self {
        let code = match err {
            StoreError::NotFound(_) => tonic::Code::NotFound,
            StoreError::Conflict { .. } => tonic::Code::Aborted,
            StoreError::VersionOutOfRange { .. } | StoreError::ListExpired { .. } => {
                tonic::Code::OutOfRange
            }
            StoreError::Storage(_) => tonic::Code::Internal,
            StoreError::Unavailable(_) | StoreError::Interrupted { .. } => tonic::Code::Unavailable,
        };
        Status::new(code, err.to_string())
    }
}

/// The end of a watch, with the version to resume from in the message and
/// in the `last-resource-version` trailer.
impl From<WatchEnd> for Status {
    fn from(end: WatchEnd) -> Self {
        let mut status = match end {
            WatchEnd::Overflow { last_version } => Status::resource_exhausted(format!(
                "watcher fell too far behind and was dropped; last delivered \
                 resource_version {last_version}: watch again from it"
            )),
            WatchEnd::Closed { last_version } => Status::unavailable(format!(
                "server is stopping; last delivered resource_version {last_version}: \
                 watch again from it"
            )),
            WatchEnd::StartedOver { last_version, at } => Status::unavailable(format!(
                "this server's cache lost its place in etcd and started over at \
                 resource_version {at}, without the history before it; last delivered \
                 resource_version {last_version}: watch again from it on another server, \
                 or list again"
            )),
        };
        status
            .metadata_mut()
            .insert(LAST_VERSION_KEY, end.last_version().into());
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_over_is_not_called_a_shutdown_and_says_where_to_resume() {
        let status = Status::from(WatchEnd::StartedOver {
            last_version: 41,
            at: 97,
        });
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            !status.message().contains("stopping"),
            "{}",
            status.message()
        );
        assert!(
            status
                .message()
                .contains("started over at resource_version 97")
                && status
                    .message()
                    .contains("resource_version 41: watch again from it"),
            "{}",
            status.message()
        );
        assert_eq!(
            status
                .metadata()
                .get(LAST_VERSION_KEY)
                .map(|v| v.to_str().ok()),
            Some(Some("41"))
        );
    }
}
