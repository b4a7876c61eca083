//! Generates the protobuf types (prost) and their protojson mapping (pbjson)
//! from the `.proto` files under `proto/`. The pure-Rust `protox` compiler is
//! used so that building needs no system `protoc`.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/google/v1/profile.proto",
        "proto/types/v1/types.proto",
        "proto/push/v1/push.proto",
        "proto/querier/v1/querier.proto",
        "proto/settings/v1/setting.proto",
        "proto/opentelemetry/proto/common/v1/common.proto",
        "proto/opentelemetry/proto/resource/v1/resource.proto",
        "proto/opentelemetry/proto/profiles/v1development/profiles.proto",
        "proto/opentelemetry/proto/collector/profiles/v1development/profiles_service.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let fds = protox::compile(protos, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("descriptors.bin"), fds.encode_to_vec())?;
    prost_build::Config::new().compile_fds(fds.clone())?;
    // Lenient as connect-go's protojson (DiscardUnknown) and OTLP/JSON
    // receivers are: fields and enum names a newer client sends (Grafana's
    // Profiles Drilldown sends `stackTraceSelector.frameFilter` and
    // `PROFILE_FORMAT_*` values) are ignored, not refused.
    pbjson_build::Builder::new()
        .register_descriptors(&fds.encode_to_vec())?
        .ignore_unknown_fields()
        .ignore_unknown_enum_variants()
        .build(&[
            ".google.v1",
            ".types.v1",
            ".push.v1",
            ".querier.v1",
            ".settings.v1",
            ".opentelemetry.proto",
        ])?;
    Ok(())
}
