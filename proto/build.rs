//! Generates the tonic/prost code for every `.proto` file with a vendored `protoc` (no system
//! package needed) and writes a file descriptor set for gRPC reflection.
#![allow(unsafe_code)]

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded; prost-build reads `PROTOC` from the environment.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let protos = [
        "proto/mortar/v1/kv.proto",
        "proto/mortar/v1/admin.proto",
        "proto/mortar/v1/actors.proto",
        "proto/mortar/internal/v1/epoxy.proto",
        "proto/mortar/internal/v1/control.proto",
        "proto/mortar/internal/v1/forward.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure()
        .bytes(".")
        // Undecodable messages are INVALID_ARGUMENT, not tonic-prost's INTERNAL (src/codec.rs).
        .codec_path("crate::codec::MortarCodec")
        .file_descriptor_set_path(out_dir.join("mortar_descriptor.bin"))
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
