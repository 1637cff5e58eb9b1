//! The PodService's gRPC stubs, generated from `proto/pod.proto` by
//! `build.rs`: the client, and the server trait the handlers implement.
//! They differ in one type: the server sends `WatchPods`' pods as
//! [`WatchedPod`](super::WatchedPod), clients receive them as `Pod`.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/services/client/infra.rs"));
include!(concat!(env!("OUT_DIR"), "/services/server/infra.rs"));
