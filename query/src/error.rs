//! Query errors.

/// A query that cannot be answered; all are the client's fault (HTTP 400).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QueryError {
    /// A label selector did not parse.
    #[error("failed to parse label selector {selector:?}: {reason}")]
    Selector {
        /// The selector text.
        selector: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other invalid argument, with its message.
    #[error("{0}")]
    Invalid(String),
    /// A request field Ignis does not apply yet: refused rather than
    /// ignored, so no answer is silently wrong.
    #[error("{0}")]
    Unimplemented(String),
    /// The query needs more memory than its budget allows
    /// ([`crate::budget::MemoryBudget`]).
    #[error("{0}")]
    ResourceExhausted(String),
}

impl From<ignis_storage::selector::SelectorError> for QueryError {
    fn from(e: ignis_storage::selector::SelectorError) -> Self {
        Self::Selector {
            selector: e.selector,
            reason: e.reason,
        }
    }
}

impl QueryError {
    /// An invalid-argument error.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }
}
