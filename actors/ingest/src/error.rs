//! Why an ingest request was refused.

use std::fmt;

/// The discard reason, as the `reason` label of the rejection metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The profile could not be decoded or is inconsistent.
    MalformedProfile,
    /// A label name or value is invalid.
    InvalidLabels,
    /// A required label is missing.
    MissingLabels,
    /// Too many label names in one series.
    MaxLabelNamesPerSeries,
    /// A label name is longer than allowed.
    LabelNameTooLong,
    /// A label value is longer than allowed.
    LabelValueTooLong,
    /// The same label name appears twice.
    DuplicateLabelNames,
    /// The decompressed profile is larger than allowed.
    ProfileSizeLimit,
    /// The request body is larger than allowed.
    BodySizeLimit,
    /// The profile has more samples than allowed.
    SamplesLimit,
    /// A sample has more labels than allowed.
    SampleLabelsLimit,
    /// The profile timestamp is outside the accepted window.
    NotInIngestionWindow,
    /// The request itself (parameters, content type, encoding) is wrong.
    InvalidRequest,
    /// The format is known but not supported by this server.
    Unsupported,
    /// The tenant's ingest rate limit refused the push.
    RateLimited,
    /// The push would exceed the tenant's active series limit.
    SeriesLimit,
}

impl Reason {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MalformedProfile => "malformed_profile",
            Reason::InvalidLabels => "invalid_labels",
            Reason::MissingLabels => "missing_labels",
            Reason::MaxLabelNamesPerSeries => "max_label_names_per_series",
            Reason::LabelNameTooLong => "label_name_too_long",
            Reason::LabelValueTooLong => "label_value_too_long",
            Reason::DuplicateLabelNames => "duplicate_label_names",
            Reason::ProfileSizeLimit => "profile_size_limit",
            Reason::BodySizeLimit => "body_size_limit_exceeded",
            Reason::SamplesLimit => "samples_limit",
            Reason::SampleLabelsLimit => "sample_labels_limit",
            Reason::NotInIngestionWindow => "not_in_ingestion_window",
            Reason::InvalidRequest => "invalid_request",
            Reason::Unsupported => "unsupported",
            Reason::RateLimited => "rate_limited",
            Reason::SeriesLimit => "series_limit",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ingest request that was refused, with a message for the client.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct IngestError {
    /// Why it was refused.
    pub reason: Reason,
    /// What the client is told.
    pub message: String,
}

/// Longest message sent back: errors quote labels and names from the input,
/// and a client must not get a megabyte label value echoed back.
pub const MAX_MESSAGE_BYTES: usize = 4096;

impl IngestError {
    /// Builds an error; a message longer than [`MAX_MESSAGE_BYTES`] is cut
    /// there and says how much was left out.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: bounded(message.into()),
        }
    }

    /// A malformed-profile error.
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(Reason::MalformedProfile, message)
    }

    /// An invalid-request error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(Reason::InvalidRequest, message)
    }
}

/// `message`, cut to [`MAX_MESSAGE_BYTES`] (at a character boundary) with
/// a note of how much was left out; every error sent to a client goes
/// through it.
pub fn bounded(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE_BYTES {
        return message;
    }
    let end = message.floor_char_boundary(MAX_MESSAGE_BYTES);
    let left = message.len() - end;
    message.truncate(end);
    message.push_str(&format!("… ({left} more bytes)"));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut() {
        let e = IngestError::malformed(format!("label 'é{}'", "v".repeat(1 << 20)));
        assert!(
            e.message.len() < MAX_MESSAGE_BYTES + 64,
            "{}",
            e.message.len()
        );
        assert!(
            e.message.ends_with(" more bytes)"),
            "{}",
            &e.message[4000..]
        );
        assert_eq!(IngestError::malformed("short").message, "short");
    }
}
