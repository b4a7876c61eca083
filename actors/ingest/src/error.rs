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

impl IngestError {
    /// Builds an error.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
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
