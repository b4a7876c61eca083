//! Querier workers: a node with the querier role pulls sub-queries from
//! every query-scheduler of the cluster ([`crate::scheduler`]), runs each
//! with the query's scope over the ingesters (recent data) and the
//! store-gateways (blocks), as any query runs ([`Tenants::query_direct`]),
//! and hands the merges back. More querier nodes, more sub-queries at once.
//!
//! [`SchedulerLink`] is how frontends and workers reach a scheduler: this
//! node's own is a call in process, another node's a [`Peer`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use ignis_cluster::roles::{QUERIER, QUERY_SCHEDULER};
use ignis_query::lane::{self, Lane};
use ignis_query::timeseries::{SeriesGroups, SeriesPlan};
use ignis_query::{MergedStacks, Selection};
use tokio::task::JoinHandle;

use crate::Tenants;
use crate::peer::protocol::{
    self, CancelledRequest, DoneRequest, NextReply, NextRequest, SubAnswer, SubQuery, WireFailure,
    WireSelection, WireSeriesGroup, WireSeriesPlan,
};
use crate::peer::{Peer, PeerError};
use crate::querier::{QueryFailure, in_lane_blocking};
use crate::scheduler::Scheduler;

/// How long a worker's request for work waits at the scheduler.
const POLL_WAIT: Duration = Duration::from_secs(2);

/// A query-scheduler as frontends and querier workers reach it.
pub trait SchedulerLink: Send + Sync {
    /// Queues `query`; resolves with its answer once a querier ran it.
    fn enqueue(&self, query: SubQuery) -> BoxFuture<'static, Result<SubAnswer, PeerError>>;
    /// The next job for `worker`, or none within `wait`.
    fn next(
        &self,
        worker: &str,
        wait: Duration,
    ) -> BoxFuture<'static, Result<Option<(u64, SubQuery)>, PeerError>>;
    /// Hands back the answer of job `id`.
    fn done(
        &self,
        id: u64,
        worker: &str,
        answer: SubAnswer,
    ) -> BoxFuture<'static, Result<(), PeerError>>;
    /// Resolves once job `id` is no longer wanted (its frontend went away).
    fn cancelled(&self, id: u64) -> BoxFuture<'static, ()>;
}

/// This node's scheduler: calls in process.
impl SchedulerLink for Arc<Scheduler> {
    fn enqueue(&self, query: SubQuery) -> BoxFuture<'static, Result<SubAnswer, PeerError>> {
        let s = self.clone();
        Box::pin(async move { Ok(Scheduler::enqueue(&s, query).await) })
    }

    fn next(
        &self,
        worker: &str,
        wait: Duration,
    ) -> BoxFuture<'static, Result<Option<(u64, SubQuery)>, PeerError>> {
        let (s, worker) = (self.clone(), worker.to_string());
        Box::pin(async move { Ok(Scheduler::next(&s, &worker, wait).await) })
    }

    fn done(
        &self,
        id: u64,
        worker: &str,
        answer: SubAnswer,
    ) -> BoxFuture<'static, Result<(), PeerError>> {
        Scheduler::done(self, id, worker, answer);
        Box::pin(async { Ok(()) })
    }

    fn cancelled(&self, id: u64) -> BoxFuture<'static, ()> {
        let s = self.clone();
        Box::pin(async move { Scheduler::cancelled(&s, id).await })
    }
}

/// Another node's scheduler; `timeout` bounds a sub-query's wait for its answer.
pub struct RemoteScheduler {
    /// The scheduler's node.
    pub peer: Peer,
    /// How long a frontend waits for a sub-query's answer.
    pub timeout: Duration,
}

impl SchedulerLink for RemoteScheduler {
    fn enqueue(&self, query: SubQuery) -> BoxFuture<'static, Result<SubAnswer, PeerError>> {
        let (peer, timeout, body) = (self.peer.clone(), self.timeout, protocol::encode(&query));
        Box::pin(async move {
            let bytes = peer
                .call_long(protocol::ENQUEUE, Bytes::from(body?), timeout)
                .await?;
            protocol::decode::<SubAnswer>(&bytes)
        })
    }

    fn next(
        &self,
        worker: &str,
        wait: Duration,
    ) -> BoxFuture<'static, Result<Option<(u64, SubQuery)>, PeerError>> {
        let req = NextRequest {
            worker: worker.to_string(),
            wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        };
        let (peer, body) = (self.peer.clone(), protocol::encode(&req));
        Box::pin(async move {
            let bytes = peer
                .call_long(protocol::NEXT, Bytes::from(body?), wait + peer.deadline)
                .await?;
            Ok(protocol::decode::<NextReply>(&bytes)?.job)
        })
    }

    fn done(
        &self,
        id: u64,
        worker: &str,
        answer: SubAnswer,
    ) -> BoxFuture<'static, Result<(), PeerError>> {
        let req = DoneRequest {
            id,
            worker: worker.to_string(),
            answer,
        };
        let (peer, body) = (self.peer.clone(), protocol::encode(&req));
        Box::pin(async move {
            peer.call_long(protocol::DONE, Bytes::from(body?), peer.deadline)
                .await?;
            Ok(())
        })
    }

    fn cancelled(&self, id: u64) -> BoxFuture<'static, ()> {
        let peer = self.peer.clone();
        let wait = Duration::from_secs(10);
        Box::pin(async move {
            let req = CancelledRequest {
                id,
                wait_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            };
            loop {
                let body = match protocol::encode(&req) {
                    Ok(b) => Bytes::from(b),
                    Err(_) => return std::future::pending().await,
                };
                match peer
                    .call_long(protocol::CANCELLED, body, wait + peer.deadline)
                    .await
                    .and_then(|b| protocol::decode::<bool>(&b))
                {
                    Ok(true) => return,
                    Ok(false) => {}
                    // The scheduler out of reach: the job runs on (its
                    // answer may still be delivered).
                    Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                }
            }
        })
    }
}

/// The merges of `selections` from a scheduler's answer.
pub(crate) async fn merges_of(
    answer: SubAnswer,
    selections: usize,
) -> Result<Vec<MergedStacks>, QueryFailure> {
    match answer {
        SubAnswer::Failed(f) => Err(QueryFailure::from(f)),
        SubAnswer::Merged(parts) if parts.len() == selections => {
            in_lane_blocking("decoding merges", move || {
                parts
                    .iter()
                    .map(|p| MergedStacks::decode(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| QueryFailure::Internal(format!("a querier's merge: {e}")))
            })
            .await?
        }
        SubAnswer::Merged(parts) => Err(QueryFailure::Internal(format!(
            "a querier answered {} merges for {selections} selections",
            parts.len()
        ))),
        SubAnswer::Series(_) => Err(QueryFailure::Internal(
            "a querier answered series for a merge".into(),
        )),
    }
}

/// The bucketed totals in a scheduler's answer to a series sub-query, one
/// set per of its `selections`.
pub(crate) fn groups_of(
    answer: SubAnswer,
    selections: usize,
) -> Result<Vec<SeriesGroups>, QueryFailure> {
    match answer {
        SubAnswer::Failed(f) => Err(QueryFailure::from(f)),
        SubAnswer::Series(parts) if parts.len() == selections => Ok(parts
            .into_iter()
            .map(WireSeriesGroup::into_groups)
            .collect()),
        SubAnswer::Series(parts) => Err(QueryFailure::Internal(format!(
            "a querier answered {} series parts for {selections} selections",
            parts.len()
        ))),
        SubAnswer::Merged(_) => Err(QueryFailure::Internal(
            "a querier answered merges for a series".into(),
        )),
    }
}

/// The series sub-query of `tenant` bucketing each of `selections` (within
/// `[start_ns, end_ns]`) as `plan` does.
pub(crate) fn series_query(
    tenant: &str,
    start_ns: i64,
    end_ns: i64,
    plan: &SeriesPlan,
    selections: &[Selection],
) -> SubQuery {
    SubQuery {
        tenant: tenant.to_string(),
        start_ns,
        end_ns,
        selections: selections.iter().map(WireSelection::of).collect(),
        series: Some(WireSeriesPlan::of(plan)),
        bulk: lane::current() == Lane::Bulk,
    }
}

/// The sub-query of `tenant` merging `selections` within `[start_ns, end_ns]`.
pub(crate) fn sub_query(
    tenant: &str,
    start_ns: i64,
    end_ns: i64,
    selections: &[Selection],
) -> SubQuery {
    SubQuery {
        tenant: tenant.to_string(),
        start_ns,
        end_ns,
        selections: selections.iter().map(WireSelection::of).collect(),
        series: None,
        bulk: lane::current() == Lane::Bulk,
    }
}

/// Runs one sub-query on this node, as a querier, in the lane it names.
pub async fn run(tenants: &Tenants, query: SubQuery) -> SubAnswer {
    let lane = if query.bulk {
        Lane::Bulk
    } else {
        Lane::Interactive
    };
    lane::in_lane(lane, answer(tenants, query))
        .await
        .unwrap_or_else(|f| SubAnswer::Failed(WireFailure::from(&f)))
}

async fn answer(tenants: &Tenants, query: SubQuery) -> Result<SubAnswer, QueryFailure> {
    let invalid = |m: String| QueryFailure::Query(ignis_query::QueryError::Invalid(m));
    crate::validate_tenant_id(&query.tenant).map_err(invalid)?;
    let selections = query
        .selections
        .iter()
        .map(WireSelection::selection)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    let (tenant, start_ns, end_ns) = (&query.tenant, query.start_ns, query.end_ns);
    if let Some(wire) = query.series {
        let plans: Vec<SeriesPlan> = selections
            .into_iter()
            .map(|sel| wire.clone().plan(sel))
            .collect();
        let groups = tenants
            .query_direct(tenant, start_ns, end_ns, move |e| {
                Ok(plans.iter().map(|p| e.series_groups(p)).collect::<Vec<_>>())
            })
            .await?;
        return Ok(SubAnswer::Series(
            groups.into_iter().map(WireSeriesGroup::of).collect(),
        ));
    }
    let merged = tenants
        .query_direct(tenant, start_ns, end_ns, move |e| {
            Ok(selections
                .iter()
                .map(|s| e.merge(s))
                .collect::<Vec<MergedStacks>>())
        })
        .await?;
    let parts = in_lane_blocking("encoding merges", move || {
        merged
            .iter()
            .map(MergedStacks::encode)
            .collect::<Result<Vec<_>, _>>()
    })
    .await?
    .map_err(|e| QueryFailure::Internal(format!("encoding merges: {e}")))?;
    Ok(SubAnswer::Merged(parts))
}

/// This process's id among queriers: the node id and a nonce, so a
/// scheduler tells a restarted querier from the one it handed jobs to.
pub fn process_id(node_id: &str) -> String {
    format!("{node_id}#{:x}", crate::now_ns())
}

/// The id of worker `k` of process `process` ([`process_id`]): each worker
/// its own, so a scheduler knows which one holds a job.
pub fn worker_id(process: &str, k: usize) -> String {
    format!("{process}/{k}")
}

/// The node id of worker `id`.
pub fn worker_node(id: &str) -> &str {
    id.rsplit_once('#').map_or(id, |(node, _)| node)
}

/// The process ([`process_id`]) of worker `id`.
pub fn worker_process(id: &str) -> &str {
    id.rsplit_once('/').map_or(id, |(process, _)| process)
}

/// One worker: pulls jobs from `link` and runs them, until aborted.
async fn pull(tenants: Arc<Tenants>, link: Arc<dyn SchedulerLink>, worker: String) {
    loop {
        match link.next(&worker, POLL_WAIT).await {
            Ok(Some((id, query))) => {
                tracing::debug!(id, worker, "querier: running a sub-query");
                // A job whose frontend went away stops: its block reads
                // and peer calls are dropped.
                let work = std::pin::pin!(run(&tenants, query));
                let gone = link.cancelled(id);
                match futures::future::select(work, gone).await {
                    futures::future::Either::Left((answer, _)) => {
                        tracing::debug!(id, worker, "querier: sub-query ran");
                        tenants.metrics().querier_sub_queries.inc();
                        if let Err(e) = link.done(id, &worker, answer).await {
                            tracing::warn!(error = %e, "querier: the scheduler took no answer");
                        }
                    }
                    futures::future::Either::Right(_) => {
                        tracing::debug!(id, worker, "querier: sub-query cancelled");
                        tenants.metrics().querier_sub_queries_cancelled.inc();
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "querier: no work from the scheduler");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A scheduler's workers, stopped when dropped.
struct Workers(Vec<JoinHandle<()>>);

impl Drop for Workers {
    fn drop(&mut self) {
        self.0.iter().for_each(JoinHandle::abort);
    }
}

/// Runs `per_scheduler` workers for every query-scheduler of the cluster
/// (this node's included), following membership; when it runs a
/// scheduler itself, re-queues the jobs of queriers that left.
pub fn spawn(tenants: Arc<Tenants>, per_scheduler: usize, every: Duration) -> JoinHandle<()> {
    let cluster = tenants.cluster().clone();
    let process = process_id(&cluster.node_id);
    let runs_querier = tenants.roles().has(QUERIER);
    actix::spawn(async move {
        // Aborting this task drops the workers, which stops them.
        let mut running: HashMap<String, Workers> = HashMap::new();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let members = cluster.membership.members();
            if let Some(s) = tenants.scheduler() {
                let mut alive: HashSet<String> = members
                    .iter()
                    .filter(|m| m.serving())
                    .map(|m| m.node_id.clone())
                    .collect();
                alive.insert(cluster.node_id.clone());
                s.requeue_lost(&alive);
            }
            if !runs_querier {
                continue;
            }
            let mut links: HashMap<String, Arc<dyn SchedulerLink>> = HashMap::new();
            if let Some(s) = tenants.scheduler() {
                links.insert(cluster.node_id.clone(), Arc::new(s.clone()));
            }
            for m in members.iter() {
                if m.has_role(QUERY_SCHEDULER) && m.serving() && m.node_id != cluster.node_id {
                    let peer = cluster.peer(m.clone());
                    // Keyed by process (node and generation): a node that
                    // restarted, perhaps on another address, gets workers
                    // of its own instead of the old process's, which would
                    // poll an address nobody answers on.
                    links.insert(
                        format!("{}/{}", m.node_id, m.generation),
                        Arc::new(RemoteScheduler {
                            peer,
                            timeout: POLL_WAIT,
                        }),
                    );
                }
            }
            running.retain(|node, _| links.contains_key(node));
            for (node, link) in links {
                running.entry(node).or_insert_with(|| {
                    Workers(
                        (0..per_scheduler.max(1))
                            .map(|k| {
                                let worker = worker_id(&process, k);
                                actix::spawn(pull(tenants.clone(), link.clone(), worker))
                            })
                            .collect(),
                    )
                });
            }
        }
    })
}
