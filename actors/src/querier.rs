//! The querier: answers a tenant's queries over its head, off the actor threads.

use std::sync::Arc;

use actix::prelude::*;
use ignis_query::{Engine, QueryError, QueryLimits, Source};
use ignis_storage::Head;
use parking_lot::RwLock;
use tokio::sync::Semaphore;

use crate::sealed::{Sealed, SealedList};

/// A query that failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueryFailure {
    /// The request is invalid.
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The query could not run.
    #[error("querier unavailable: {0}")]
    Unavailable(String),
}

type QueryFn<R> = Box<dyn FnOnce(&Engine<'_>) -> Result<R, QueryError> + Send>;

/// Runs a closure against the tenant's query engine; the engine reads the
/// head, the sealed heads and `blocks` (from the store-gateway).
pub struct RunQuery<R> {
    /// The query.
    pub query: QueryFn<R>,
    /// What the query needs of the blocks (whole or pruned), besides the
    /// ingester's data.
    pub blocks: Vec<Arc<dyn Source>>,
}

impl<R: Send + 'static> Message for RunQuery<R> {
    type Result = Result<R, QueryFailure>;
}

/// What one query reads, in this order: the head, the sealed heads (the
/// order a cut takes its locks in), blocks, then peers' answers.
pub(crate) fn sources<'a>(
    head: Option<&'a Head>,
    sealed: &'a [Arc<Sealed>],
    blocks: &'a [Arc<dyn Source>],
    remote: &'a [Head],
) -> Vec<&'a dyn Source> {
    let mut out: Vec<&dyn Source> =
        Vec::with_capacity(1 + sealed.len() + blocks.len() + remote.len());
    out.extend(head.map(|h| h as &dyn Source));
    out.extend(sealed.iter().map(|s| &s.head as &dyn Source));
    out.extend(blocks.iter().map(|b| &**b));
    out.extend(remote.iter().map(|h| h as &dyn Source));
    out
}

/// Runs queries for one tenant on the blocking pool, at most `permits` at once.
pub struct Querier {
    head: Arc<RwLock<Head>>,
    sealed: SealedList,
    limits: Arc<QueryLimits>,
    permits: Arc<Semaphore>,
}

impl Querier {
    /// A querier over `head` and the tenant's sealed heads.
    pub fn new(
        head: Arc<RwLock<Head>>,
        sealed: SealedList,
        limits: Arc<QueryLimits>,
        permits: Arc<Semaphore>,
    ) -> Self {
        Self {
            head,
            sealed,
            limits,
            permits,
        }
    }
}

impl Actor for Querier {
    type Context = Context<Self>;
}

impl Supervised for Querier {}

impl<R: Send + 'static> Handler<RunQuery<R>> for Querier {
    type Result = ResponseFuture<Result<R, QueryFailure>>;

    fn handle(&mut self, msg: RunQuery<R>, _ctx: &mut Self::Context) -> Self::Result {
        let head = self.head.clone();
        let sealed = self.sealed.clone();
        let limits = self.limits.clone();
        let permits = self.permits.clone();
        Box::pin(async move {
            let _permit = permits
                .acquire_owned()
                .await
                .map_err(|e| QueryFailure::Unavailable(e.to_string()))?;
            tokio::task::spawn_blocking(move || {
                // Head first, then sealed: the order a cut takes its locks in,
                // so data moving from one to the other is seen exactly once.
                let head = head.read();
                let sealed = sealed.read().clone();
                let sources = sources(Some(&head), &sealed, &msg.blocks, &[]);
                (msg.query)(&Engine::new(&sources, &limits)).map_err(QueryFailure::from)
            })
            .await
            .map_err(|e| QueryFailure::Unavailable(e.to_string()))?
        })
    }
}
