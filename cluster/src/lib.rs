//! Ignis cluster: how nodes share work. Today the consistent-hash [`Ring`]
//! that maps series to replicated ingesters; gossip membership joins it.

#![warn(missing_docs)]

pub mod ring;

pub use ring::{DEFAULT_TOKENS_PER_MEMBER, Ring};
