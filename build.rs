//! Compiles the protos with `protox` (pure Rust), so the build needs no system `protoc`.
//! Also writes the contract's descriptor set, which the reflection service serves.
//!
//! The contract is generated in parts, so that no generated module and the
//! hand-written messages (src/contract/list.rs, src/contract/watch.rs)
//! import each other: the messages alone (`messages/infra.rs`, which leave
//! `ListPodsResponse` out), then the client and the server stubs
//! (`services/client/infra.rs`, `services/server/infra.rs`), which name the
//! messages and the hand-written types by their paths.

use std::path::Path;
use std::{env, fs, path::PathBuf};

use prost::Message;

type Error = Box<dyn std::error::Error>;

const CONTRACT: &str = "proto/pod.proto";
const TUTORIAL: &str = "tests/fixtures/tutorial_pod.proto";
const BEFORE_BOOKMARKS: &str = "tests/fixtures/pod_before_bookmarks.proto";
const BEFORE_NAME: &str = "tests/fixtures/pod_before_name.proto";
const ETCD: &str = "proto/etcd";

fn main() -> Result<(), Error> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={CONTRACT}");
    println!("cargo:rerun-if-changed={TUTORIAL}");
    println!("cargo:rerun-if-changed={BEFORE_BOOKMARKS}");
    println!("cargo:rerun-if-changed={BEFORE_NAME}");
    println!("cargo:rerun-if-changed={ETCD}");

    let contract = protox::compile([CONTRACT], ["proto"])?;
    fs::write(out_dir.join("pod_descriptor.bin"), contract.encode_to_vec())?;
    // The messages, but not the list response, which is written by hand.
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(false)
        .extern_path(
            ".infra.ListPodsResponse",
            "crate::contract::list::ListPodsResponse",
        )
        .out_dir(dir(&out_dir, "messages")?)
        .compile_fds(contract.clone())?;
    // The stubs, naming every message by its path instead of generating it:
    // the client's, then the server's, which sends `WatchPods`' pods as the
    // hand-written `WatchedPod` (src/contract/watch.rs).
    let stubs = || {
        tonic_prost_build::configure()
            .extern_path(".infra", "crate::contract::messages")
            .extern_path(
                ".infra.ListPodsResponse",
                "crate::contract::list::ListPodsResponse",
            )
    };
    stubs()
        .build_server(false)
        .out_dir(dir(&out_dir, "services/client")?)
        .compile_fds(contract.clone())?;
    stubs()
        .build_client(false)
        .extern_path(".infra.Pod", "crate::contract::watch::WatchedPod")
        .out_dir(dir(&out_dir, "services/server")?)
        .compile_fds(contract)?;

    // The original tutorial's proto, client only, for the compatibility tests.
    // It is package `infra` too, so it goes in a directory of its own.
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(dir(&out_dir, "tutorial")?)
        .compile_fds(protox::compile([TUTORIAL], ["tests/fixtures"])?)?;
    // Our own contract as it was before bookmarks, client only, likewise.
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(dir(&out_dir, "before_bookmarks")?)
        .compile_fds(protox::compile([BEFORE_BOOKMARKS], ["tests/fixtures"])?)?;
    // And as it was before ListPodsRequest.name.
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(dir(&out_dir, "before_name")?)
        .compile_fds(protox::compile([BEFORE_NAME], ["tests/fixtures"])?)?;
    // The part of etcd's API the etcd store calls, client only.
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(dir(&out_dir, "etcd")?)
        .compile_fds(protox::compile(["rpc.proto"], [ETCD])?)?;
    Ok(())
}

fn dir(out_dir: &Path, name: &str) -> Result<PathBuf, Error> {
    let dir = out_dir.join(name);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}
