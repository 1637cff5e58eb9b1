//! The wire contract, `proto/pod.proto`: its messages and stubs, and the
//! conventions that are part of it without being in the proto (trailer
//! keys, error wording that clients parse, the token's header, defaults).
//!
//! Everything that crosses the network is one of these types; the server
//! turns them into domain values once, at its edge. Client code needs
//! nothing but this module.

use std::time::Duration;

mod list;
mod messages;
mod services;
mod status;
mod token;
mod watch;

pub use list::ListPodsResponse;
pub use messages::*;
pub use services::pod_service_client::{self, PodServiceClient};
pub use services::pod_service_server::{self, PodService, PodServiceServer};
pub use status::{LAST_VERSION_KEY, STORED_BEFORE_ERROR};
pub(crate) use status::{ack, code_name};
pub use token::{TOKEN_ENV, Token};
pub use watch::WatchedPod;

/// A bookmark at `version`: a `Pod` with `bookmark` set, that version, and
/// no other field (see `Pod.bookmark` in the proto).
pub fn bookmark(version: u64) -> Pod {
    Pod {
        resource_version: version,
        bookmark: true,
        ..Pod::default()
    }
}

/// The encoded descriptors of `proto/pod.proto`, for the reflection service
/// (and for tests that enumerate the service's methods).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pod_descriptor");

/// The PodService's full name (`package.Service`), as the generated server
/// reports it: the first segment of the path of every PodService call.
pub const POD_SERVICE: &str = services::pod_service_server::SERVICE_NAME;

/// Where `pod-server` listens by default: the tutorial's port, on loopback.
pub const DEFAULT_SERVER_ADDR: &str = "127.0.0.1:50051";

/// Where clients look for the server by default: [`DEFAULT_SERVER_ADDR`]
/// as a URL (a unit test keeps the two together).
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:50051";

/// How often both ends ping an open connection by default...
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// ...and how long the answer may take before the connection is given up:
/// a peer that vanished without closing it is noticed within their sum.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The namespace of a pod whose request leaves the namespace empty.
pub const DEFAULT_NAMESPACE: &str = "default";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_url_is_the_default_address() {
        assert_eq!(DEFAULT_SERVER_URL, format!("http://{DEFAULT_SERVER_ADDR}"));
    }
}
