//! Compiles the protos with `protox` (pure Rust), so the build needs no system `protoc`.
//! Also writes the contract's descriptor set, which the reflection service serves.

use std::{env, fs, path::PathBuf};

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);

    // The service contract: server and client code for the library.
    let descriptors = compile("proto/pod.proto", &["proto"], &out_dir, true)?;
    // (`compile` maps ListPodsResponse to the hand-written `crate::wire` type.)
    fs::write(
        out_dir.join("pod_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    // The original tutorial's proto, client only, for the compatibility test.
    // Both files are package `infra`, so it goes in a directory of its own.
    let tutorial_dir = out_dir.join("tutorial");
    fs::create_dir_all(&tutorial_dir)?;
    compile(
        "tests/fixtures/tutorial_pod.proto",
        &["tests/fixtures"],
        &tutorial_dir,
        false,
    )?;
    Ok(())
}

fn compile(
    file: &str,
    includes: &[&str],
    out_dir: &std::path::Path,
    build_server: bool,
) -> Result<prost_types::FileDescriptorSet, Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={file}");
    let descriptors = protox::compile([file], includes)?;
    let mut config = tonic_prost_build::configure()
        .build_server(build_server)
        .out_dir(out_dir);
    if build_server {
        // Pre-encoded list responses; see src/wire.rs.
        config = config.extern_path(".infra.ListPodsResponse", "crate::wire::ListPodsResponse");
    }
    config.compile_fds(descriptors.clone())?;
    Ok(descriptors)
}
