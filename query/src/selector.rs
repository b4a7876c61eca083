//! Prometheus-style label selectors (parsed by
//! [`ignis_storage::selector`], which the fuzz targets build without the
//! query engine), with the query API's error.

pub use ignis_storage::selector::{MatchOp, Matcher, SelectorError, matches_all};

use crate::error::QueryError;

/// Parses a selector. A leading metric name becomes a `__name__` matcher.
pub fn parse_selector(input: &str) -> Result<Vec<Matcher>, QueryError> {
    ignis_storage::selector::parse_selector(input).map_err(QueryError::from)
}
