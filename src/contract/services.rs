//! The PodService's gRPC stubs, generated from `proto/pod.proto` by
//! `build.rs`: the client, and the server trait the handlers implement.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/services/infra.rs"));
