//! Why a JFR recording could not be read.

use crate::error::{IngestError, Reason};

/// A malformed or unsupported JFR recording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JfrError {
    /// The input ended before a value was complete.
    #[error("unexpected end of data at offset {offset} (needed {needed} more bytes)")]
    Truncated {
        /// Where the read started, from the start of the chunk.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// A chunk does not start with `FLR\0`.
    #[error("not a JFR recording: bad magic at offset {0} (expected FLR\\0)")]
    BadMagic(usize),
    /// The chunk header's major version is not 1 or 2.
    #[error("unsupported JFR version {major}.{minor}")]
    Version {
        /// Major version.
        major: u16,
        /// Minor version.
        minor: u16,
    },
    /// A header field, size, count or offset is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The metadata does not describe a type the data refers to.
    #[error("unknown type id {0}")]
    UnknownType(u64),
    /// Nesting deeper than the decoder allows (or a type that contains itself).
    #[error("{0} nested too deeply")]
    TooDeep(&'static str),
    /// A profile would get more distinct samples than the limit allows.
    #[error(
        "the {profile} profile exceeds the samples count limit (max_profile_stacktrace_samples, limit: {limit})"
    )]
    TooManySamples {
        /// The profile's `__name__`.
        profile: &'static str,
        /// The limit.
        limit: usize,
    },
}

impl JfrError {
    /// An out-of-range value, with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

impl From<JfrError> for IngestError {
    fn from(e: JfrError) -> Self {
        match e {
            JfrError::TooManySamples { .. } => {
                IngestError::new(Reason::SamplesLimit, e.to_string())
            }
            e => IngestError::malformed(format!("failed to parse JFR: {e}")),
        }
    }
}
