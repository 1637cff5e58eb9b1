//! The wire types and gRPC stubs generated from `proto/pod.proto` by `build.rs`.
//!
//! Everything that crosses the network is one of these types; the rest of the
//! crate converts them to domain values once, at the edge (see [`crate::validate`]).

tonic::include_proto!("infra");

/// The encoded descriptors of `proto/pod.proto`, for the reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("pod_descriptor");

pub use crate::wire::ListPodsResponse;
pub use pod_service_client::PodServiceClient;
pub use pod_service_server::{PodService, PodServiceServer};
