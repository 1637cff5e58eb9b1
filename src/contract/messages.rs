//! The contract's messages, generated from `proto/pod.proto` by `build.rs`
//! (all but `ListPodsResponse`, which is written by hand in
//! [`super::list`]). Their documentation is the proto's comments.

#![allow(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/messages/infra.rs"));
