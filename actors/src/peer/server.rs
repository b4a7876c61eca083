//! How a node answers its peers: [`handle`] decodes a request, runs it
//! against this node's [`Tenants`] and encodes the answer. HTTP
//! (`POST /internal/v1/<method>`) and [`MemTransport`](super::MemTransport)
//! both call it.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use ignis_storage::block::BlockMeta;
use ignis_storage::decode_record;

use super::protocol::{
    self, CancelledRequest, DoneRequest, NextReply, NextRequest, PushReply, SelectRequest, SubQuery,
};
use super::{PeerError, PeerSlice};
use crate::{Tenants, validate_tenant_id};

/// Answers the internal call `method` with request `body`.
pub async fn handle(tenants: &Tenants, method: &str, body: Bytes) -> Result<Bytes, PeerError> {
    match method {
        protocol::PUSH => push(tenants, body).await,
        protocol::SELECT => select(tenants, body).await,
        protocol::ENQUEUE => enqueue(tenants, body).await,
        protocol::NEXT => next(tenants, body).await,
        protocol::DONE => done(tenants, body).await,
        protocol::CANCELLED => cancelled(tenants, body).await,
        other => Err(PeerError::UnknownMethod(other.to_string())),
    }
}

/// Stores a replica: the record is this node's WAL record as received.
async fn push(tenants: &Tenants, body: Bytes) -> Result<Bytes, PeerError> {
    if !tenants.runs_ingester() {
        return Err(PeerError::BadRequest(
            "this node does not run the ingester role".into(),
        ));
    }
    let record = body.clone();
    let (tenant, profiles) = tokio::task::spawn_blocking(move || decode_record(&body))
        .await
        .map_err(|e| PeerError::Internal(e.to_string()))?
        .map_err(|e| PeerError::BadRequest(format!("push record: {e}")))?;
    validate_tenant_id(&tenant).map_err(PeerError::BadRequest)?;
    let shards = tenants
        .get_or_start(&tenant)
        .ingester
        .ok_or_else(|| PeerError::BadRequest("this node does not run the ingester role".into()))?;
    let stats = shards
        .append(Arc::new(profiles), record)
        .await
        .map_err(|e| PeerError::Unavailable(e.to_string()))?;
    let reply = protocol::encode(&PushReply {
        profiles: stats.profiles,
        samples: stats.samples,
    })?;
    Ok(Bytes::from(reply))
}

/// Answers what a query's scope selects of this node's data: a snapshot of
/// its ingester's heads and, of the blocks the asking node does not read
/// itself, a pruned read of the blocks its
/// store-gateway serves (the same rule as a local query).
async fn select(tenants: &Tenants, body: Bytes) -> Result<Bytes, PeerError> {
    let req: SelectRequest = protocol::decode(&body)?;
    validate_tenant_id(&req.tenant).map_err(PeerError::BadRequest)?;
    let scope = req.scope()?;
    let skip: HashSet<&String> = req.skip_blocks.iter().collect();
    let mine: Vec<BlockMeta> = tenants
        .local_blocks(&req.tenant, req.start_ns, req.end_ns)
        .into_iter()
        .filter(|m| !skip.contains(&m.ulid))
        .collect();
    let (rolled, mine) = match req.rollup_scope()? {
        Some(rs) => (Some(rs), sole_copies(tenants, &req.tenant, mine)),
        None => (None, (Vec::new(), mine)),
    };
    let (sole, rest) = mine;
    // This node's memory is bounded as for its own queries.
    let budget = tenants.query_budget(&req.tenant);
    let mut blocks = tenants
        .block_sources(rest, &scope, &budget)
        .await
        .map_err(PeerError::from)?;
    if let Some(rs) = &rolled
        && !sole.is_empty()
    {
        blocks.extend(
            tenants
                .block_sources(sole, rs, &budget)
                .await
                .map_err(PeerError::from)?,
        );
    }
    let local = tenants
        .snapshot(&req.tenant)
        .await
        .map_err(PeerError::from)?;
    let bytes = tokio::task::spawn_blocking(move || {
        crate::querier::with_sources(local.as_slice(), &blocks, &[], |sources| {
            protocol::encode_answer(&PeerSlice::select(
                sources,
                &scope,
                req.start_ns,
                req.end_ns,
            ))
        })
    })
    .await
    .map_err(|e| PeerError::Internal(e.to_string()))??;
    Ok(Bytes::from(bytes))
}

/// `blocks` split in two: those that hold the only copy of their profiles
/// (no other indexed block of the tenant overlaps them, and they are older
/// than anything an ingester may still hold), which may answer a merge
/// from their rollups with no profile ids for the asking node to dedupe;
/// and the rest, answered as rows.
fn sole_copies(
    tenants: &Tenants,
    tenant: &str,
    blocks: Vec<BlockMeta>,
) -> (Vec<BlockMeta>, Vec<BlockMeta>) {
    let (Some(sg), Some(lo), Some(hi)) = (
        tenants.store_gateway(),
        blocks.iter().map(|m| m.min_time_ns).min(),
        blocks.iter().map(|m| m.max_time_ns).max(),
    ) else {
        return (Vec::new(), blocks);
    };
    // An ingester keeps a cut head until it has shipped it and a while
    // after (`keep_shipped`); a block is also a replica of that head.
    let held = tenants
        .blocks
        .max_block_duration
        .saturating_add(tenants.blocks.keep_shipped)
        .saturating_add(std::time::Duration::from_secs(300));
    let horizon =
        crate::now_ns().saturating_sub(i64::try_from(held.as_nanos()).unwrap_or(i64::MAX));
    let index = sg.indexed_spans(tenant, lo, hi);
    blocks.into_iter().partition(|m| {
        m.max_time_ns < horizon
            && !index
                .iter()
                .any(|(u, a, b)| *u != m.ulid && *a <= m.max_time_ns && m.min_time_ns <= *b)
    })
}

/// This node's query-scheduler, or why the call cannot be served here.
fn scheduler(tenants: &Tenants) -> Result<&Arc<crate::scheduler::Scheduler>, PeerError> {
    tenants.scheduler().ok_or_else(|| {
        PeerError::BadRequest("this node does not run the query-scheduler role".into())
    })
}

/// Queues a frontend's sub-query; answers once a querier ran it. A frontend
/// that hangs up drops this call, and with it the queued sub-query.
async fn enqueue(tenants: &Tenants, body: Bytes) -> Result<Bytes, PeerError> {
    let query: SubQuery = protocol::decode(&body)?;
    validate_tenant_id(&query.tenant).map_err(PeerError::BadRequest)?;
    let answer = scheduler(tenants)?.enqueue(query).await;
    Ok(Bytes::from(protocol::encode(&answer)?))
}

/// Longest a worker's request for work may wait.
const MAX_WAIT_MS: u64 = 30_000;

/// Hands a querier worker its next job, waiting for one a while.
async fn next(tenants: &Tenants, body: Bytes) -> Result<Bytes, PeerError> {
    let req: NextRequest = protocol::decode(&body)?;
    let wait = std::time::Duration::from_millis(req.wait_ms.min(MAX_WAIT_MS));
    let job = scheduler(tenants)?.next(&req.worker, wait).await;
    Ok(Bytes::from(protocol::encode(&NextReply { job })?))
}

/// Takes a querier worker's answer to a job.
async fn done(tenants: &Tenants, body: Bytes) -> Result<Bytes, PeerError> {
    let req: DoneRequest = protocol::decode(&body)?;
    scheduler(tenants)?.done(req.id, &req.worker, req.answer);
    Ok(Bytes::new())
}

/// Answers whether a job is no longer wanted, waiting a while for it.
async fn cancelled(tenants: &Tenants, body: Bytes) -> Result<Bytes, PeerError> {
    let req: CancelledRequest = protocol::decode(&body)?;
    let wait = std::time::Duration::from_millis(req.wait_ms.min(MAX_WAIT_MS));
    let gone = tokio::time::timeout(wait, scheduler(tenants)?.cancelled(req.id))
        .await
        .is_ok();
    Ok(Bytes::from(protocol::encode(&gone)?))
}
