//! Compiles `proto/**/*.proto` with protox (pure Rust, no system protoc) and
//! generates tonic/prost code plus a file descriptor set for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/foryou/v1/events.proto",
        "proto/foryou/v1/in_network_posts.proto",
        "proto/foryou/v1/phoenix.proto",
        "proto/foryou/v1/scored_posts.proto",
    ];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("foryou_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    // Our codec: a malformed message is INVALID_ARGUMENT (src/codec.rs).
    tonic_prost_build::configure()
        .codec_path("crate::codec::StrictProstCodec")
        .compile_fds(fds)?;
    Ok(())
}
