//! etcd's v3 API, as much of it as the store calls: generated in `build.rs`
//! from `proto/etcd` (etcd's own protos, trimmed), client stubs only.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `etcdserverpb`: the KV, Watch and Lease services and their messages.
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcd/etcdserverpb.rs"));
}

/// `mvccpb`: key-values and watch events.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/etcd/mvccpb.rs"));
}
