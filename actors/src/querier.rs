//! The querier: merges a tenant's queries over its data, off the actor threads.

use std::sync::Arc;

use actix::prelude::*;
use ignis_query::lane::Lane;
use ignis_query::{Engine, MemoryBudget, QueryError, QueryLimits, Source};

use crate::ingester::Snapshot;
use crate::peer::PeerSlice;

/// A query that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryFailure {
    /// The request is invalid.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The query could not run now (a peer or the bucket unreachable, too
    /// few ingesters): worth retrying.
    #[error("querier unavailable: {0}")]
    Unavailable(String),
    /// The tenant has as many queries running as it may: retry later.
    #[error("{0}")]
    TooManyQueries(String),
    /// Stored data the query needs is damaged (a corrupt block): retrying
    /// does not help.
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    /// A bug or broken state of this node (a query task panicked).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<ignis_storage::block::BlockError> for QueryFailure {
    fn from(e: ignis_storage::block::BlockError) -> Self {
        use ignis_storage::block::BlockError as B;
        match e {
            B::Store(_) | B::Read(_) => Self::Unavailable(format!("reading blocks: {e}")),
            B::Arrow(_) | B::Parquet(_) | B::Meta(_) | B::Corrupt(_) => {
                Self::Corrupt(format!("reading blocks: {e}"))
            }
            B::Config(_) => Self::Internal(e.to_string()),
        }
    }
}

type QueryFn<R> = Box<dyn FnOnce(&Engine<'_>) -> Result<R, QueryError> + Send>;

/// Runs a closure against the tenant's query engine; the engine reads
/// `local` (this node's ingester), `blocks` (from the store-gateway) and
/// `remote` (the peers' answers).
pub struct RunQuery<R> {
    /// The query.
    pub query: QueryFn<R>,
    /// What this node's ingesters hold of the tenant (of each tenant, for a
    /// federated query).
    pub local: Vec<Snapshot>,
    /// What the query needs of the blocks (whole or pruned), besides the
    /// ingester's data.
    pub blocks: Vec<Arc<dyn Source>>,
    /// What the peers hold of the query's scope.
    pub remote: Vec<PeerSlice>,
    /// The query's memory budget (its reads charged it already; the merge
    /// charges what it builds).
    pub budget: Arc<MemoryBudget>,
    /// The tenant's query limits.
    pub limits: Arc<QueryLimits>,
    /// The lane the merge runs in.
    pub lane: Lane,
}

impl<R: Send + 'static> Message for RunQuery<R> {
    type Result = Result<R, QueryFailure>;
}

/// Calls `f` with what one query reads: this node's ingester data (a
/// snapshot, immutable), the blocks, then the peers' answers.
pub(crate) fn with_sources<T>(
    local: &[Snapshot],
    blocks: &[Arc<dyn Source>],
    remote: &[PeerSlice],
    f: impl FnOnce(&[&dyn Source]) -> T,
) -> T {
    let mut sources: Vec<&dyn Source> = Vec::new();
    sources.extend(local.iter().flat_map(Snapshot::sources));
    sources.extend(blocks.iter().map(|b| &**b));
    sources.extend(remote.iter().map(|h| h as &dyn Source));
    f(&sources)
}

/// Runs `f` on a blocking thread of the running query's lane
/// ([`ignis_query::lane::current`]), off the async threads; `what` names
/// it in the error when no thread could run it or it panicked.
pub(crate) async fn in_lane_blocking<R: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, QueryFailure> {
    let failed = |e: &dyn std::fmt::Display| QueryFailure::Internal(format!("{what}: {e}"));
    ignis_query::lane::current()
        .spawn_blocking(f)
        .map_err(|e| failed(&e))?
        .await
        .map_err(|e| failed(&e))
}

/// Runs `msg` on a blocking thread of its lane.
pub(crate) async fn merge<R: Send + 'static>(msg: RunQuery<R>) -> Result<R, QueryFailure> {
    msg.lane
        .spawn_blocking(move || {
            with_sources(&msg.local, &msg.blocks, &msg.remote, |sources| {
                let engine = Engine::new(sources, &msg.limits).with_budget(&msg.budget);
                (msg.query)(&engine).map_err(QueryFailure::from)
            })
        })
        .map_err(|e| QueryFailure::Internal(format!("no thread for the merge: {e}")))?
        .await
        .map_err(|e| QueryFailure::Internal(format!("query task: {e}")))?
}

/// Merges a tenant's queries over its ingester's snapshot, the blocks and
/// the peers' answers, on the blocking pool, with the limits each carries.
pub struct Querier;

impl Actor for Querier {
    type Context = Context<Self>;
}

impl Supervised for Querier {}

impl<R: Send + 'static> Handler<RunQuery<R>> for Querier {
    type Result = ResponseFuture<Result<R, QueryFailure>>;

    fn handle(&mut self, msg: RunQuery<R>, _ctx: &mut Self::Context) -> Self::Result {
        Box::pin(merge(msg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_storage::block::BlockError;

    #[test]
    fn block_errors_keep_their_kind() {
        let corrupt = QueryFailure::from(BlockError::Corrupt("bad stack id".into()));
        assert!(matches!(corrupt, QueryFailure::Corrupt(ref m) if m.contains("bad stack id")));
        let read = QueryFailure::from(BlockError::Read("timed out".into()));
        assert!(matches!(read, QueryFailure::Unavailable(_)));
        let config = QueryFailure::from(BlockError::Config("no bucket".into()));
        assert!(matches!(config, QueryFailure::Internal(_)));
    }
}
