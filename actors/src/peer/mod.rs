//! What a node asks of another, in one place.
//!
//! - [`Replica`]: stores a push on one ingester (`append(batch) -> ack`).
//!   This node's own ingester is one (an in-process actor call); a peer is
//!   another ([`Peer`], over a [`Transport`]).
//! - [`Peer::select`]: what a peer holds of a query's [`Scope`], as a
//!   [`PeerSlice`] the query engine merges like any other source. This
//!   node's own data is read in place instead (no copy).
//! - [`protocol`]: the messages and their version; [`server`]: how a node
//!   answers them; [`transport`]: how they travel (HTTP between processes,
//!   [`MemTransport`] between the nodes of one process in tests).
//!
//! The HTTP layer only adapts `POST /internal/v1/<method>` to
//! [`server::handle`].

#[cfg(any(test, feature = "testing"))]
pub mod mem_transport;
pub mod protocol;
pub mod server;
pub mod transport;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use ignis_cluster::{Member, RpcError};
use ignis_query::{MergedStacks, ProfileTotal, Scope, Seen, Selection, Source};
use ignis_storage::{Head, Labels, RowParts, SplitProfile};

use crate::ingester::{AppendStats, IngesterShards};
#[cfg(any(test, feature = "testing"))]
pub use mem_transport::MemTransport;
pub use protocol::{PROTOCOL_VERSION, PushReply, SelectRequest};
pub use transport::Transport;

/// A node-to-node call that failed, with the status it maps to.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached, or answered with an error.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The peer is known but does not take work (failed, not ready, leaving).
    #[error("not serving: {0}")]
    NotServing(String),
    /// The request is malformed (bad message, bad tenant, wrong role).
    #[error("{0}")]
    BadRequest(String),
    /// The peer cannot answer now (its actor is down, its blocks unreadable).
    #[error("{0}")]
    Unavailable(String),
    /// A message could not be encoded or decoded.
    #[error("internal message: {0}")]
    Decode(String),
    /// The peer has no such internal method.
    #[error("no internal method {0:?}")]
    UnknownMethod(String),
    /// A bug or broken state on the answering node.
    #[error("{0}")]
    Internal(String),
}

impl PeerError {
    /// The HTTP status a server answers this error with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Rpc(RpcError::Status { status, .. }) => *status,
            Self::Rpc(RpcError::Version { .. }) => 409,
            Self::BadRequest(_) | Self::Decode(_) => 400,
            Self::Rpc(_) | Self::NotServing(_) | Self::Unavailable(_) => 503,
            Self::UnknownMethod(_) => 404,
            Self::Internal(_) => 500,
        }
    }
}

impl From<crate::querier::QueryFailure> for PeerError {
    fn from(e: crate::querier::QueryFailure) -> Self {
        use crate::querier::QueryFailure as F;
        match e {
            F::Query(q) => Self::BadRequest(q.to_string()),
            F::Unavailable(m) | F::TooManyQueries(m) => Self::Unavailable(m),
            F::Corrupt(m) | F::Internal(m) => Self::Internal(m),
        }
    }
}

/// One replica's share of a push: the profiles routed to it and the same
/// profiles as a WAL record (`ignis_storage::encode_record`), encoded once.
#[derive(Clone)]
pub struct Batch {
    /// The profiles.
    pub profiles: Arc<Vec<SplitProfile>>,
    /// Their WAL record: what a peer receives and every ingester stores.
    pub record: Bytes,
}

impl Batch {
    /// The profiles of `profiles` at `idx`, with a record of their own
    /// (for `tenant`).
    pub fn subset(
        tenant: &str,
        profiles: &[SplitProfile],
        idx: &[usize],
    ) -> Result<Self, ignis_storage::RecordError> {
        let subset: Vec<SplitProfile> = idx.iter().map(|&i| profiles[i].clone()).collect();
        let record = ignis_storage::encode_record(tenant, subset.iter())?;
        Ok(Self {
            profiles: Arc::new(subset),
            record: Bytes::from(record),
        })
    }
}

/// Stores pushes on one ingester.
pub trait Replica: Send + Sync {
    /// Appends `batch`; resolves once it is durable there.
    fn append(&self, batch: Batch) -> BoxFuture<'static, Result<AppendStats, PeerError>>;
}

/// This node's ingesters of a tenant: in-process actor calls.
impl Replica for IngesterShards {
    fn append(&self, batch: Batch) -> BoxFuture<'static, Result<AppendStats, PeerError>> {
        let shards = self.clone();
        Box::pin(async move {
            shards
                .append(batch.profiles, batch.record)
                .await
                .map_err(|e| PeerError::Unavailable(format!("local ingester: {e}")))
        })
    }
}

/// Another node, reached over a [`Transport`].
#[derive(Clone)]
pub struct Peer {
    /// The node as membership sees it.
    pub member: Member,
    /// How calls reach it.
    pub transport: Arc<dyn Transport>,
    /// How long a call may take in all before the peer counts as unavailable.
    pub deadline: Duration,
}

impl Peer {
    fn check_serving(&self) -> Result<(), PeerError> {
        if self.member.serving() {
            return Ok(());
        }
        Err(PeerError::NotServing(
            format!("{:?}, ready={}", self.member.state, self.member.ready).to_lowercase(),
        ))
    }

    /// Calls `method` on the peer, within its deadline.
    async fn call(&self, method: &str, body: Bytes) -> Result<Bytes, PeerError> {
        self.check_serving()?;
        let call = self.transport.call(&self.member.http_addr, method, body);
        self.within(method, self.deadline, call).await
    }

    /// Calls `method` on the peer, giving it `deadline` (a call that waits
    /// for work, or for a query to run, may take longer than others).
    pub(crate) async fn call_long(
        &self,
        method: &str,
        body: Bytes,
        deadline: Duration,
    ) -> Result<Bytes, PeerError> {
        self.check_serving()?;
        let call = self
            .transport
            .call_for(&self.member.http_addr, method, body, deadline);
        self.within(method, deadline, call).await
    }

    async fn within(
        &self,
        method: &str,
        deadline: Duration,
        call: BoxFuture<'static, Result<Bytes, RpcError>>,
    ) -> Result<Bytes, PeerError> {
        match tokio::time::timeout(deadline, call).await {
            Ok(answer) => Ok(answer?),
            Err(_) => Err(PeerError::Unavailable(format!(
                "{}: no answer to {method} within {deadline:?}",
                self.member.node_id
            ))),
        }
    }

    /// What the peer holds of `req`'s scope.
    pub fn select(&self, req: &SelectRequest) -> BoxFuture<'static, Result<PeerSlice, PeerError>> {
        let (this, body) = (self.clone(), protocol::encode(req));
        Box::pin(async move {
            let bytes = this.call(protocol::SELECT, Bytes::from(body?)).await?;
            tokio::task::spawn_blocking(move || protocol::decode_answer(&bytes))
                .await
                .map_err(|e| PeerError::Internal(e.to_string()))?
        })
    }
}

impl Peer {
    /// Stores a WAL record on the peer's ingester: a replica write, or a
    /// hinted one delivered late.
    pub fn push(&self, record: Bytes) -> BoxFuture<'static, Result<AppendStats, PeerError>> {
        let this = self.clone();
        Box::pin(async move {
            let reply = this.call(protocol::PUSH, record).await?;
            let r: PushReply = protocol::decode(&reply)?;
            Ok(AppendStats {
                profiles: r.profiles,
                samples: r.samples,
            })
        })
    }
}

impl Replica for Peer {
    fn append(&self, batch: Batch) -> BoxFuture<'static, Result<AppendStats, PeerError>> {
        self.push(batch.record)
    }
}

/// What a peer holds of a query's scope: the selected rows, and the time
/// bounds of everything it holds (for `GetProfileStats`, which selects no
/// rows).
#[derive(Debug, Default)]
pub struct PeerSlice {
    /// The selected rows with the symbols they use.
    pub head: Head,
    /// Oldest and newest profile timestamps the peer holds, ns.
    pub bounds: Option<(i64, i64)>,
    /// For a listing ([`SelectRequest::listing`]): per time range of its
    /// selections, the label sets of the series they find there, sorted
    /// and unique (no rows then).
    pub listed: Vec<Listed>,
}

/// The label sets a peer found over one time range of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listed {
    /// The selections' range, ns (inclusive).
    pub range: (i64, i64),
    /// The label sets of the series they find there, sorted and unique.
    pub labels: Vec<Labels>,
}

impl PeerSlice {
    /// Copies what `scope` selects of `sources` within `[start_ns, end_ns]`:
    /// the series its matchers accept, the rows in its range, stacks only
    /// when it merges stacks and span samples only when it selects spans.
    /// A profile held by several sources is copied once.
    pub fn select(sources: &[&dyn Source], scope: &Scope, start_ns: i64, end_ns: i64) -> Self {
        let bounds = sources
            .iter()
            .filter_map(|s| s.time_bounds())
            .reduce(|(a, b), (lo, hi)| (a.min(lo), b.max(hi)));
        let mut head = Head::new();
        let Some((lo, hi)) = scope.time_range() else {
            return Self {
                head,
                bounds,
                listed: Vec::new(),
            };
        };
        if scope.labels_only() {
            // Selections of one range share an entry: the asking node
            // filters it by each one's matchers.
            let mut by_range: std::collections::BTreeMap<(i64, i64), Vec<Labels>> =
                std::collections::BTreeMap::new();
            for sel in &scope.selections {
                by_range
                    .entry((sel.start_ns, sel.end_ns))
                    .or_default()
                    .extend(sources.iter().flat_map(|s| s.series(sel)));
            }
            let listed = by_range
                .into_iter()
                .map(|(range, mut labels)| {
                    labels.sort();
                    labels.dedup();
                    Listed { range, labels }
                })
                .collect();
            return Self {
                head,
                bounds,
                listed,
            };
        }
        let range = (lo.max(start_ns), hi.min(end_ns));
        let parts = RowParts {
            stacks: scope.stacks,
            spans: scope.span_selector().is_some(),
        };
        let mut seen = HashSet::new();
        for (symbols, series) in sources.iter().filter_map(|s| s.rows()) {
            head.import_rows(
                symbols,
                series,
                |s| scope.wants(&s.labels),
                parts,
                range,
                &mut seen,
            );
        }
        Self {
            head,
            bounds,
            listed: Vec::new(),
        }
    }
}

impl Source for PeerSlice {
    /// The rows' series, and for a listing the label sets the peer found
    /// over `sel`'s range that `sel`'s matchers accept (the peer listed
    /// every selection of the request: those of one range together).
    fn series(&self, sel: &Selection) -> Vec<Labels> {
        let mut all = Source::series(&self.head, sel);
        for l in &self.listed {
            if l.range == (sel.start_ns, sel.end_ns) {
                all.extend(
                    l.labels
                        .iter()
                        .filter(|l| ignis_query::selector::matches_all(&sel.matchers, l))
                        .cloned(),
                );
            }
        }
        all
    }

    fn merge_stacks(&self, sel: &Selection, seen: &mut Seen, into: &mut MergedStacks) {
        self.head.merge_stacks(sel, seen, into);
    }

    fn profile_totals(
        &self,
        sel: &Selection,
        seen: &mut Seen,
        f: &mut dyn FnMut(&Labels, ProfileTotal),
    ) {
        self.head.profile_totals(sel, seen, f);
    }

    fn time_bounds(&self) -> Option<(i64, i64)> {
        self.bounds
    }

    fn rows(&self) -> Option<(&ignis_storage::SymbolTable, &[ignis_storage::Series])> {
        self.head.rows()
    }
}
