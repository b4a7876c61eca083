//! A node's view of the cluster for its actors: the ingester ring built from
//! membership, replicated pushes acknowledged on quorum, and query fan-out to
//! the peers with the query's scope.
//!
//! A node without cluster configuration is a cluster of one
//! ([`ClusterContext::standalone`]): its writes and reads take the same
//! path, with this node as the only replica and no peer to ask.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ignis_cluster::roles::{COMPACTOR, INGESTER, STORE_GATEWAY};
use ignis_cluster::{Member, MemberState, Membership, Ring};
use ignis_query::Scope;
use ignis_storage::SplitProfile;
use parking_lot::Mutex;
use tracing::Instrument;
use xxhash_rust::xxh3::xxh3_64;

use crate::hints::Hints;
use crate::ingester::{AppendStats, IngesterError, IngesterShards};
use crate::metrics::Metrics;
use crate::peer::{Batch, PROTOCOL_VERSION, Peer, PeerSlice, Replica, SelectRequest, Transport};
use crate::querier::QueryFailure;

/// Replication settings.
#[derive(Debug, Clone, Copy)]
pub struct ReplicationSettings {
    /// Copies of each profile (clamped to the number of ingesters).
    pub replication_factor: usize,
    /// Ring tokens per ingester.
    pub tokens_per_ingester: usize,
    /// Memory for hinted replica writes (see [`crate::hints`]).
    pub max_hint_bytes: usize,
    /// How long one call to a peer may take in all, whatever its transport
    /// (attempts and retries included); past it the peer counts as
    /// unavailable: a replica write becomes a hint, a query goes on without
    /// it if its replicas cover it.
    pub call_deadline: Duration,
}

/// The ingesters as the ring sees them.
pub struct RingView {
    /// Consistent-hash ring over ingester node ids.
    pub ring: Ring,
    /// Ingesters in the ring, by node id.
    pub members: HashMap<String, Member>,
    /// Replication factor after clamping.
    pub replication_factor: usize,
}

impl RingView {
    /// Writes needed before a push is acknowledged.
    pub fn quorum(&self) -> usize {
        Ring::quorum(self.replication_factor)
    }

    /// Ingesters that may be unreachable with every acknowledged profile still readable.
    pub fn tolerated_failures(&self) -> usize {
        self.replication_factor - self.quorum()
    }
}

/// A ring and the member list it was built from.
type CachedRing = (Arc<Vec<Member>>, Arc<RingView>);

/// What a node needs to take part in the cluster.
pub struct ClusterContext {
    /// Gossip membership.
    pub membership: Arc<Membership>,
    /// How calls reach peers.
    pub transport: Arc<dyn Transport>,
    /// Replication settings.
    pub settings: ReplicationSettings,
    /// This node's id.
    pub node_id: String,
    metrics: Metrics,
    /// Replica writes to deliver when their node serves again.
    pub hints: Arc<Hints>,
    /// The ingester ring built for the last member list seen.
    cache: Mutex<Option<CachedRing>>,
    /// The store-gateway ring built for the last member list seen.
    sg_cache: Mutex<Option<CachedRing>>,
    /// The compactor ring built for the last member list seen.
    compactor_cache: Mutex<Option<CachedRing>>,
}

/// The routing key of a profile: tenant and its first series.
pub fn routing_key(tenant: &str, p: &SplitProfile) -> u64 {
    let fp = p.series.first().map_or(0, |s| s.labels.fingerprint());
    let mut buf = Vec::with_capacity(tenant.len() + 9);
    buf.extend_from_slice(tenant.as_bytes());
    buf.push(0);
    buf.extend_from_slice(&fp.to_le_bytes());
    xxh3_64(&buf)
}

impl ClusterContext {
    /// A context over `membership`, calling peers through `transport`.
    pub fn new(
        membership: Arc<Membership>,
        transport: Arc<dyn Transport>,
        settings: ReplicationSettings,
        node_id: String,
        metrics: Metrics,
    ) -> Self {
        Self {
            membership,
            transport,
            settings,
            node_id,
            hints: Arc::new(Hints::new(settings.max_hint_bytes, metrics.clone())),
            metrics,
            cache: Mutex::new(None),
            sg_cache: Mutex::new(None),
            compactor_cache: Mutex::new(None),
        }
    }

    /// A cluster of one: node `node_id` with every role, its own only
    /// replica (no peer is ever called).
    pub fn standalone(node_id: &str, http_addr: &str, roles: &[&str], metrics: Metrics) -> Self {
        Self::new(
            Arc::new(Membership::standalone(
                node_id,
                roles,
                http_addr,
                PROTOCOL_VERSION,
            )),
            Arc::new(NoPeers),
            ReplicationSettings {
                replication_factor: 1,
                tokens_per_ingester: ignis_cluster::DEFAULT_TOKENS_PER_MEMBER,
                max_hint_bytes: 0,
                call_deadline: Duration::from_secs(30),
            },
            node_id.to_string(),
            metrics,
        )
    }

    /// The peer `member`, reached through this node's transport.
    pub fn peer(&self, member: Member) -> Peer {
        Peer {
            member,
            transport: self.transport.clone(),
            deadline: self.settings.call_deadline,
        }
    }

    /// The current ring: ingesters that have not left (failed ones keep
    /// their place, so their replicas count as missing, not as moved).
    pub fn ring(&self) -> Arc<RingView> {
        self.cached_ring(INGESTER, &self.cache)
    }

    /// The store-gateways' ring: which of them serve which blocks.
    pub fn store_gateway_ring(&self) -> Arc<RingView> {
        self.cached_ring(STORE_GATEWAY, &self.sg_cache)
    }

    /// Whether this node's compactor runs the job of `tenant` named `job`
    /// (one compactor per job: the first the compactor ring gives).
    pub fn owns_compaction(&self, tenant: &str, job: &str) -> bool {
        let view = self.cached_ring(COMPACTOR, &self.compactor_cache);
        let key = xxh3_64(format!("{tenant}/{job}").as_bytes());
        view.ring.replicas(key, 1).first() == Some(&self.node_id.as_str())
    }

    /// Whether this node's store-gateway serves block `ulid` of `tenant`.
    pub fn owns_block(&self, tenant: &str, ulid: &str) -> bool {
        let view = self.store_gateway_ring();
        let key = xxh3_64(format!("{tenant}/{ulid}").as_bytes());
        view.ring
            .replicas(key, view.replication_factor)
            .contains(&self.node_id.as_str())
    }

    fn cached_ring(&self, role: &str, cache: &Mutex<Option<CachedRing>>) -> Arc<RingView> {
        let members = self.membership.members();
        let mut cache = cache.lock();
        if let Some((m, view)) = &*cache
            && Arc::ptr_eq(m, &members)
        {
            return view.clone();
        }
        let nodes: HashMap<String, Member> = members
            .iter()
            .filter(|m| m.has_role(role) && m.state != MemberState::Left && !m.leaving)
            .map(|m| (m.node_id.clone(), m.clone()))
            .collect();
        let rf = self.settings.replication_factor.max(1);
        let clamped = rf.min(nodes.len()).max(1);
        if clamped < rf && !nodes.is_empty() {
            tracing::debug!(
                role,
                replication_factor = rf,
                nodes = nodes.len(),
                "fewer nodes than the replication factor; replicating to all of them"
            );
        }
        let view = Arc::new(RingView {
            ring: Ring::new(nodes.keys().cloned(), self.settings.tokens_per_ingester),
            members: nodes,
            replication_factor: clamped,
        });
        *cache = Some((members, view.clone()));
        view
    }

    /// Stores `profiles` on their replicas and returns once every profile
    /// is on a quorum of them; fails (nothing acknowledged) when a quorum
    /// cannot be reached. `record` is the WAL record of all of them;
    /// `local` is this node's ingester of the tenant, if it runs one.
    pub async fn replicate(
        &self,
        tenant: &str,
        profiles: Arc<Vec<SplitProfile>>,
        record: Bytes,
        local: Option<IngesterShards>,
    ) -> Result<AppendStats, IngesterError> {
        let view = self.ring();
        if view.members.is_empty() {
            return Err(IngesterError::Unavailable(
                "no ingester in the ring: none has joined the cluster yet".into(),
            ));
        }
        let (rf, quorum) = (view.replication_factor, view.quorum());
        let mut groups: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, p) in profiles.iter().enumerate() {
            for node in view.ring.replicas(routing_key(tenant, p), rf) {
                groups.entry(node).or_default().push(i);
            }
        }
        let mut pending = FuturesUnordered::new();
        // Replicas of the same profiles share one encoding; `record` is the
        // one of all of them.
        let mut batches: HashMap<Vec<usize>, Batch> = HashMap::new();
        let all: Vec<usize> = (0..profiles.len()).collect();
        batches.insert(
            all,
            Batch {
                profiles: profiles.clone(),
                record,
            },
        );
        for (node, idx) in groups {
            let batch = match batches.get(&idx) {
                Some(b) => b.clone(),
                None => {
                    let b = Batch::subset(tenant, &profiles, &idx)
                        .map_err(|e| IngesterError::Storage(e.to_string()))?;
                    batches.insert(idx.clone(), b.clone());
                    b
                }
            };
            // This node's own ingester is an in-process call; any other
            // replica a peer, whose failed write becomes a hint.
            let (replica, to_peer): (Arc<dyn Replica>, bool) = match (&local, node == self.node_id)
            {
                (Some(ingester), true) => (Arc::new(ingester.clone()), false),
                _ => match view.members.get(node) {
                    Some(m) => (Arc::new(self.peer(m.clone())), true),
                    None => continue,
                },
            };
            let node = node.to_string();
            // Each replica write runs on its own task: the push returns at
            // quorum and the slower replicas finish in the background.
            let metrics = self.metrics.clone();
            let task = tokio::spawn(
                async move {
                    let hint = batch.record.clone();
                    let span = tracing::debug_span!("replica_write", peer = %node);
                    let res = replica.append(batch).instrument(span).await;
                    let outcome = if res.is_ok() { "ok" } else { "error" };
                    metrics
                        .replica_writes
                        .get_or_create(&vec![
                            ("node", node.clone()),
                            ("outcome", outcome.to_string()),
                        ])
                        .inc();
                    // A failed write to a peer becomes a hint if the push is acknowledged.
                    let hint = (res.is_err() && to_peer).then_some(hint);
                    (node, res, hint)
                }
                .in_current_span(),
            );
            pending.push(async move { (idx, task.await) });
        }
        let mut acks = vec![0usize; profiles.len()];
        let mut remaining = vec![rf; profiles.len()];
        let mut errors = Vec::new();
        let mut hints: Vec<(String, Bytes)> = Vec::new();
        while let Some((idx, joined)) = pending.next().await {
            let ok = match joined {
                Ok((_, Ok(_), _)) => true,
                Ok((node, Err(e), hint)) => {
                    errors.push(format!("{node}: {e}"));
                    if let Some(h) = hint {
                        hints.push((node, h));
                    }
                    false
                }
                Err(e) => {
                    errors.push(format!("replica task failed: {e}"));
                    false
                }
            };
            for &i in &idx {
                remaining[i] -= 1;
                if ok {
                    acks[i] += 1;
                }
            }
            if acks.iter().all(|&a| a >= quorum) {
                // Acknowledged: replicas that failed (now or later) get hints.
                let queue = self.hints.clone();
                for (node, h) in hints {
                    queue.push(&node, h);
                }
                if !pending.is_empty() {
                    tokio::spawn(async move {
                        while let Some((_, joined)) = pending.next().await {
                            if let Ok((node, Err(_), Some(h))) = joined {
                                queue.push(&node, h);
                            }
                        }
                    });
                }
                return Ok(stats_of(&profiles));
            }
            if acks.iter().zip(&remaining).any(|(&a, &r)| a + r < quorum) {
                break;
            }
        }
        self.metrics.quorum_failures.inc();
        Err(IngesterError::Unavailable(format!(
            "quorum not reached: each profile needs {quorum} of {rf} replicas; failures: {}",
            errors.join("; ")
        )))
    }

    /// Delivers hinted replica writes to their nodes once they serve again,
    /// checking every `every`; runs until the returned handle is aborted.
    pub fn spawn_hint_delivery(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                this.deliver_hints().await;
            }
        })
    }

    /// One round of hint delivery: each node that serves again gets its
    /// hinted writes in order, until one fails.
    pub async fn deliver_hints(&self) {
        for node in self.hints.nodes() {
            let view = self.ring();
            let Some(member) = view.members.get(&node).filter(|m| m.serving()) else {
                continue;
            };
            let peer = self.peer(member.clone());
            while let Some(record) = self.hints.front(&node) {
                match peer.push(record).await {
                    Ok(_) => self.hints.delivered(&node),
                    Err(e) => {
                        tracing::debug!(node, error = %e, "hint delivery failed; retrying later");
                        break;
                    }
                }
            }
        }
    }

    /// What the other ingesters and store-gateways hold of `scope` of
    /// `tenant` in `[start_ns, end_ns]`, one slice per peer (this node's
    /// own data is read in place by the caller; replicas are counted once
    /// by the engine). Fails when so many ingesters are unreachable that
    /// acknowledged profiles could be missing. A cluster of one asks no one.
    /// Peers skip the blocks in `read_here` (this node reads them).
    pub async fn select_peers(
        &self,
        tenant: &str,
        scope: &Scope,
        start_ns: i64,
        end_ns: i64,
        read_here: Vec<String>,
    ) -> Result<Vec<PeerSlice>, QueryFailure> {
        let view = self.ring();
        let sg_view = self.store_gateway_ring();
        // Every ingester (recent data) and store-gateway (blocks) but this node.
        let mut targets: HashMap<&String, &Member> = view.members.iter().collect();
        targets.extend(sg_view.members.iter());
        targets.remove(&self.node_id);
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let req = Arc::new(
            SelectRequest::new(tenant, scope, start_ns, end_ns).skipping_blocks(read_here),
        );
        let mut pending = FuturesUnordered::new();
        for (node, member) in targets {
            let (node, peer) = (node.clone(), self.peer(member.clone()));
            let span = tracing::debug_span!("select_peer", peer = %node);
            let req = req.clone();
            pending.push(tokio::spawn(
                async move { (node, peer.select(&req).await) }.instrument(span),
            ));
        }
        let mut answers = Vec::new();
        let mut errors = Vec::new();
        while let Some(joined) = pending.next().await {
            match joined {
                Ok((_, Ok(h))) => answers.push(h),
                Ok((node, Err(e))) => {
                    self.metrics
                        .fetch_failures
                        .get_or_create(&vec![("node", node.clone())])
                        .inc();
                    errors.push(format!("{node}: {e}"));
                }
                Err(e) => errors.push(format!("select task failed: {e}")),
            }
        }
        // Ingesters set the bound (a store-gateway needs only one of its
        // block's replicas, so it tolerates more).
        if errors.len() > view.tolerated_failures() {
            return Err(QueryFailure::Unavailable(format!(
                "{} of {} ingesters and store-gateways unreachable, more than replication factor {} tolerates: {}",
                errors.len(),
                view.members.len().max(sg_view.members.len()),
                view.replication_factor,
                errors.join("; ")
            )));
        }
        if !errors.is_empty() {
            tracing::warn!(errors = ?errors, "query answered without some ingesters (their replicas cover them)");
        }
        Ok(answers)
    }
}

/// The transport of a cluster of one: there is no peer to call.
struct NoPeers;

impl Transport for NoPeers {
    fn call(
        &self,
        addr: &str,
        _method: &str,
        _body: Bytes,
    ) -> futures::future::BoxFuture<'static, Result<Bytes, ignis_cluster::RpcError>> {
        let addr = addr.to_string();
        Box::pin(async move {
            Err(ignis_cluster::RpcError::Unreachable {
                addr,
                reason: "a standalone node has no peers".into(),
            })
        })
    }
}

fn stats_of(profiles: &[SplitProfile]) -> AppendStats {
    AppendStats {
        profiles: profiles.iter().map(|p| p.series.len() as u64).sum(),
        samples: profiles
            .iter()
            .flat_map(|p| &p.series)
            .map(|s| s.samples.len() as u64)
            .sum(),
    }
}
