//! Generates the protobuf types (prost) and their protojson mapping (pbjson)
//! from the `.proto` files under `proto/`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/google/v1/profile.proto",
        "proto/types/v1/types.proto",
        "proto/push/v1/push.proto",
        "proto/querier/v1/querier.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out.join("descriptors.bin");
    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .compile_protos(&protos, &["proto"])?;
    let descriptors = std::fs::read(&descriptor_path)?;
    pbjson_build::Builder::new()
        .register_descriptors(&descriptors)?
        .build(&[".google.v1", ".types.v1", ".push.v1", ".querier.v1"])?;
    Ok(())
}
