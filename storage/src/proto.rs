//! Generated protobuf messages: pprof (`google.v1`), `types.v1`, `push.v1`,
//! `querier.v1`, `settings.v1` and OTLP profiles, each with its protojson (serde) mapping.
#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// pprof, as served by Pyroscope under `google.v1`.
pub mod google {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/google.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/google.v1.serde.rs"));
    }
}

/// Shared label and query types.
pub mod types {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/types.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/types.v1.serde.rs"));
    }
}

/// The Push API.
pub mod push {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/push.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/push.v1.serde.rs"));
    }
}

/// The query API.
pub mod querier {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/querier.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/querier.v1.serde.rs"));
    }
}

/// Tenant settings (`settings.v1.SettingsService`).
pub mod settings {
    /// Version 1.
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/settings.v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/settings.v1.serde.rs"));
    }
}

/// OpenTelemetry protocol messages (OTLP profiles, `v1development`).
pub mod opentelemetry {
    /// The `opentelemetry.proto` packages.
    pub mod proto {
        /// Attribute values, key/value pairs, instrumentation scopes.
        pub mod common {
            /// Version 1.
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.serde.rs"
                ));
            }
        }
        /// The resource that produced the data.
        pub mod resource {
            /// Version 1.
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.serde.rs"
                ));
            }
        }
        /// The profiles data model.
        pub mod profiles {
            /// The in-development version.
            pub mod v1development {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.profiles.v1development.rs"
                ));
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.profiles.v1development.serde.rs"
                ));
            }
        }
        /// Collector services.
        pub mod collector {
            /// The profiles export service.
            pub mod profiles {
                /// The in-development version.
                pub mod v1development {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.profiles.v1development.rs"
                    ));
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.profiles.v1development.serde.rs"
                    ));
                }
            }
        }
    }
}
