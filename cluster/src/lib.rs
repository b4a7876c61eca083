//! Ignis cluster: how nodes find each other and share work. Gossip
//! [`Membership`] (chitchat, or a cluster of one), the node [`Roles`], the
//! consistent-hash [`Ring`] that maps series to replicated ingesters, and
//! the HTTP [`rpc`] client nodes call each other with.

#![warn(missing_docs)]

pub mod membership;
pub mod ring;
pub mod roles;
pub mod rpc;

/// Gossip transports: UDP, and chitchat's in-memory one for tests.
pub use chitchat::transport::{ChannelTransport, Transport, UdpTransport};
pub use membership::{Member, MemberState, Membership, MembershipConfig, MembershipEvent};
pub use ring::{DEFAULT_TOKENS_PER_MEMBER, Ring};
pub use roles::Roles;
pub use rpc::{RpcClient, RpcError};

/// A cluster operation that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClusterError {
    /// Gossip could not start.
    #[error("gossip could not start on {0}")]
    Gossip(String),
    /// A condition was not met in time.
    #[error("{0}")]
    Timeout(String),
}
