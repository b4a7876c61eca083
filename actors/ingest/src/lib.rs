//! Ingest decoding: every way a profile arrives, turned into [`SplitProfile`]s.
//!
//! [`SplitProfile`]: ignis_storage::SplitProfile

pub mod binary_tree;
pub mod error;
#[cfg(any(test, feature = "testing"))]
pub mod fixtures;
pub mod gzip;
pub mod jfr;
pub mod legacy;
pub mod limits;
pub mod multipart;
pub mod name;
pub mod otlp;
pub mod push;
pub mod relabel;
pub mod speedscope;
pub mod split;
pub mod stacks;
pub mod text;

pub use error::{IngestError, Reason};
pub use legacy::{
    IngestBody, IngestParams, LegacyFormat, MultipartParts, decode_legacy, detect_format,
};
pub use limits::Limits;
pub use multipart::parse_multipart;
pub use push::decode_push;
