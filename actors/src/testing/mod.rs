//! In-process clusters for tests (feature `testing`, and this crate's own
//! tests): [`Sandbox`] starts N nodes in one process with a fixed member
//! list (gossip has its own tests; here a node fails by its transport, so
//! no failure detector's timing decides a test), calling each other over
//! [`MemTransport`] (the same messages and server handlers as HTTP; a node
//! can be taken down and brought back) and sharing one in-memory bucket. Multi-node logic (quorum, hinted handoff, fan-out tolerance,
//! replica dedup, scoped reads) is tested here without processes or ports;
//! the process-level cluster tests in `integration/` stay as end-to-end
//! checks.
//!
//! Time: where deadlines matter, a test pauses tokio's clock
//! (`tokio::time::pause()` under `#[actix::test]`; every node runs on the
//! test's own arbiter). The clock then moves only when every task waits,
//! straight to the next timer: a node that hangs costs a test
//! [`CALL_DEADLINE`] of virtual time, none of real time, and the test can
//! assert exactly when a call gave up.

pub mod fixtures;
#[cfg(test)]
mod peer_rollup_tests;
#[cfg(test)]
mod scheduler_tests;
#[cfg(test)]
mod tests;

/// A store-gateway over `store` for tests: its index under `dir/index`,
/// 1 GiB of block cache, no disk cache of files, 1 MiB of footers.
pub fn store_gateway(
    store: ignis_storage::block::BlockStore,
    dir: &std::path::Path,
    metrics: &crate::metrics::Metrics,
) -> crate::store_gateway::StoreGateway {
    crate::store_gateway::StoreGateway::open(
        store,
        &dir.join("index"),
        1 << 30,
        0,
        1 << 20,
        metrics.clone(),
    )
    .expect("store-gateway")
}

/// A sample's value in `m`'s Prometheus text (0 when absent).
pub fn metric(m: &crate::metrics::Metrics, name: &str) -> f64 {
    m.encode()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

use std::sync::Arc;
use std::time::Duration;

use ignis_cluster::roles::{QUERIER, QUERY_SCHEDULER, STORE_GATEWAY};
use ignis_cluster::{Member, Membership};
use ignis_query::{Engine, QueryError, QueryLimits};
use ignis_storage::SplitProfile;
use ignis_storage::block::BlockStore;

use crate::cluster::{ClusterContext, ReplicationSettings};
use crate::distributor::Distribute;
use crate::ingester::{AppendStats, IngesterError};
use crate::metrics::Metrics;
use crate::peer::{MemTransport, PROTOCOL_VERSION, Transport};
use crate::querier::QueryFailure;
use crate::store_gateway::StoreGateway;
use crate::{BlockSettings, Tenants};

/// How long a call between sandbox nodes may take before the callee counts
/// as unavailable.
pub const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// One node of a [`Sandbox`].
pub struct SandboxNode {
    /// Its node id, `node-<i>`, which is also its transport address.
    pub id: String,
    /// Its tenants: distributors, ingesters, queriers, its store-gateway.
    pub tenants: Arc<Tenants>,
    /// Its cluster context (ring, peers, hints).
    pub cluster: Arc<ClusterContext>,
    /// Its store-gateway.
    pub store_gateway: Arc<StoreGateway>,
    /// Its metrics.
    pub metrics: Metrics,
    _workers: Option<AbortOnDrop>,
    _dir: tempfile::TempDir,
}

/// A task stopped when its node is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The roles of a sandbox node unless a test gives others: all but the
/// query-scheduler (a frontend then merges its sub-queries itself).
pub const SANDBOX_ROLES: [&str; 6] = [
    ignis_cluster::roles::DISTRIBUTOR,
    ignis_cluster::roles::INGESTER,
    ignis_cluster::roles::COMPACTOR,
    ignis_cluster::roles::QUERY_FRONTEND,
    ignis_cluster::roles::QUERIER,
    ignis_cluster::roles::STORE_GATEWAY,
];

/// N nodes with every role in one process (see the module docs).
pub struct Sandbox {
    /// The nodes, in start order.
    pub nodes: Vec<SandboxNode>,
    /// The calls between them.
    pub transport: Arc<MemTransport>,
    /// The bucket they share.
    pub bucket: BlockStore,
}

/// A sandbox that could not start.
#[derive(Debug, thiserror::Error)]
#[error("sandbox: {0}")]
pub struct SandboxError(String);

impl Sandbox {
    /// Starts `n` nodes with [`SANDBOX_ROLES`], all ready, replicating each
    /// profile to `replication_factor` of them. Runs on the current actix
    /// system (e.g. `#[actix::test]`).
    pub async fn start(n: usize, replication_factor: usize) -> Result<Self, SandboxError> {
        Self::start_with_roles(n, replication_factor, |_| SANDBOX_ROLES.to_vec()).await
    }

    /// [`Sandbox::start`] where node `i` runs `roles(i)`: a node with the
    /// query-scheduler role runs one, and querier workers pull from every
    /// scheduler.
    pub async fn start_with_roles(
        n: usize,
        replication_factor: usize,
        roles: impl Fn(usize) -> Vec<&'static str>,
    ) -> Result<Self, SandboxError> {
        let fail = |e: String| SandboxError(e);
        let transport = Arc::new(MemTransport::default());
        let bucket = BlockStore::memory().map_err(|e| fail(e.to_string()))?;
        let members: Vec<Member> = (0..n)
            .map(|i| {
                let id = format!("node-{i}");
                let mut m = Member::alive(&id, &roles(i), &id, PROTOCOL_VERSION);
                m.ready = true;
                m
            })
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let id = format!("node-{i}");
            let dir = tempfile::tempdir().map_err(|e| fail(e.to_string()))?;
            let membership = Membership::fixed(members.clone(), &id);
            let metrics = Metrics::new();
            let cluster = Arc::new(ClusterContext::new(
                Arc::new(membership),
                Arc::new(transport.clone()) as Arc<dyn Transport>,
                ReplicationSettings {
                    replication_factor,
                    tokens_per_ingester: ignis_cluster::DEFAULT_TOKENS_PER_MEMBER,
                    max_hint_bytes: 64 << 20,
                    call_deadline: CALL_DEADLINE,
                },
                id.clone(),
                metrics.clone(),
            ));
            let store_gateway = Arc::new(
                StoreGateway::open(
                    bucket.clone(),
                    &dir.path().join("index"),
                    256 << 20,
                    0,
                    16 << 20,
                    metrics.clone(),
                )
                .map_err(|e| fail(e.to_string()))?,
            );
            let owner = cluster.clone();
            store_gateway.set_owner(Arc::new(move |tenant: &str, ulid: &str| {
                owner.owns_block(tenant, ulid)
            }));
            let blocks = BlockSettings {
                store: Some(bucket.clone()),
                max_block_duration: Duration::from_secs(3600),
                ..Default::default()
            };
            let node_roles = ignis_cluster::Roles::parse(&roles(i).join(",")).map_err(fail)?;
            let mut built = Tenants::new(
                vec![actix::Arbiter::current()],
                None,
                blocks,
                metrics.clone(),
                QueryLimits::default(),
                8,
            )
            .with_cluster(cluster.clone())
            .with_roles(node_roles.clone());
            if node_roles.has(STORE_GATEWAY) {
                built = built.with_store_gateway(store_gateway.clone());
            }
            if node_roles.has(QUERY_SCHEDULER) {
                built =
                    built.with_scheduler(crate::scheduler::Scheduler::new(256, metrics.clone()));
            }
            let tenants = Arc::new(built);
            let workers = (node_roles.has(QUERIER) || node_roles.has(QUERY_SCHEDULER)).then(|| {
                AbortOnDrop(crate::worker::spawn(
                    tenants.clone(),
                    4,
                    Duration::from_millis(100),
                ))
            });
            transport.register(&id, &tenants);
            cluster.membership.set_ready(true).await;
            nodes.push(SandboxNode {
                id,
                tenants,
                cluster,
                store_gateway,
                metrics,
                _workers: workers,
                _dir: dir,
            });
        }
        Ok(Self {
            nodes,
            transport,
            bucket,
        })
    }

    /// Stops node `i`'s querier workers (as if its process died; a job one
    /// was running is never answered).
    pub fn stop_workers(&mut self, i: usize) {
        self.nodes[i]._workers = None;
    }

    /// Starts node `i`'s querier workers again (a new process: a new
    /// worker id).
    pub fn start_workers(&mut self, i: usize) {
        self.nodes[i]._workers = Some(AbortOnDrop(crate::worker::spawn(
            self.nodes[i].tenants.clone(),
            4,
            Duration::from_millis(100),
        )));
    }

    /// Marks node `i` failed (or alive again) in every node's member list,
    /// as their failure detectors would.
    pub fn set_failed(&self, i: usize, failed: bool) {
        let state = if failed {
            ignis_cluster::MemberState::Failed
        } else {
            ignis_cluster::MemberState::Alive
        };
        for n in &self.nodes {
            n.cluster
                .membership
                .set_member_state(&self.nodes[i].id, state);
        }
    }

    /// Takes node `i` down (its peers' calls fail as unreachable, while
    /// membership still lists it, as before a failure detector notices) or
    /// back up.
    pub fn set_up(&self, i: usize, up: bool) {
        self.transport.set_up(&self.nodes[i].id, up);
    }

    /// Makes node `i` hang (its peers' calls get no answer until their
    /// deadline, [`CALL_DEADLINE`]) or answer again.
    pub fn set_hung(&self, i: usize, hung: bool) {
        self.transport.set_hung(&self.nodes[i].id, hung);
    }

    /// Pushes `profiles` of `tenant` through node `via`'s distributor.
    pub async fn push(
        &self,
        via: usize,
        tenant: &str,
        profiles: Vec<SplitProfile>,
    ) -> Result<AppendStats, IngesterError> {
        let distributor = self.nodes[via]
            .tenants
            .get_or_start(tenant)
            .distributor
            .ok_or_else(|| IngesterError::Unavailable("no distributor".into()))?;
        distributor
            .send(Distribute {
                profiles,
                record: None,
                endpoint: "sandbox",
            })
            .await
            .map_err(|e| IngesterError::Unavailable(e.to_string()))?
    }

    /// Runs query `f` over all of `tenant`'s data through node `via`.
    pub async fn query<R, F>(&self, via: usize, tenant: &str, f: F) -> Result<R, QueryFailure>
    where
        R: Send + 'static,
        F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
    {
        self.nodes[via].tenants.query(tenant, f).await
    }

    /// Cuts every node's heads into blocks, uploads them and has every
    /// store-gateway index the bucket (as its sync loop would).
    pub async fn flush_to_blocks(&self) -> Result<(), SandboxError> {
        for node in &self.nodes {
            node.tenants.flush(true).await;
        }
        for node in &self.nodes {
            node.store_gateway
                .refresh()
                .await
                .map_err(|e| SandboxError(e.to_string()))?;
        }
        Ok(())
    }
}
