//! The wire types and gRPC stubs generated from `proto/pod.proto` by `build.rs`.
//!
//! Everything that crosses the network is one of these types; the rest of the
//! crate converts them to domain values once, at the edge (see [`crate::validate`]).

tonic::include_proto!("infra");

pub use pod_service_client::PodServiceClient;
pub use pod_service_server::{PodService, PodServiceServer};
