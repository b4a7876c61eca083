//! Generated protobuf messages: pprof (`google.v1`), `types.v1`, `push.v1`
//! and `querier.v1`, each with its protojson (serde) mapping.
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
