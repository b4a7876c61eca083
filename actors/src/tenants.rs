//! Per-tenant actors: each tenant gets a distributor, an ingester and a
//! querier, each under an actix `Supervisor` that restarts it with backoff.
//! Tenants are spread over a fixed set of arbiters (threads) by hash.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use ignis_query::{Engine, MemoryBudget, QueryError, QueryLimits, Scope, Source};
use ignis_storage::Wal;
use ignis_storage::block::{BlockMeta, BlockStore};
use parking_lot::Mutex;
use tracing::Instrument;

use ignis_cluster::Roles;
use ignis_cluster::roles::{DISTRIBUTOR, INGESTER};

use crate::cluster::ClusterContext;
use crate::distributor::{Distributor, SetLimits};
use crate::fair::{Entered, FairSlots, InFlight};
use crate::ingester::{Ingester, IngesterShards, Snapshot};
use crate::metrics::Metrics;
use crate::overrides::TenantLimits;
use crate::peer::PeerSlice;
use crate::querier::{Querier, QueryFailure, RunQuery};
use crate::scheduler::Scheduler;
use crate::settings::SettingsStore;
use crate::store_gateway::StoreGateway;
use ignis_query::lane::Lane;

/// The running actors of one tenant: those of the node's roles.
#[derive(Clone)]
pub struct TenantActors {
    /// Entry point for writes (nodes with the distributor role).
    pub distributor: Option<Addr<Distributor>>,
    /// Holders of the head, the tenant's series spread over them (nodes
    /// with the ingester role).
    pub ingester: Option<IngesterShards>,
    /// Entry point for reads (nodes with the querier role).
    pub querier: Option<Addr<Querier>>,
}

/// Where and when heads become blocks.
#[derive(Clone, Default)]
pub struct BlockSettings {
    /// The object store; without one, heads are never cut.
    pub store: Option<BlockStore>,
    /// Cut a head whose first profile arrived this long ago.
    pub max_block_duration: Duration,
    /// Cut a head holding this many samples (0: no size limit).
    pub max_head_samples: u64,
    /// Cut a tenant's head (on this node) as soon as it holds this many
    /// bytes, each shard its share (0: no bound).
    pub max_head_bytes: u64,
    /// How long blocks are kept (store-gateways stop serving expired
    /// blocks; the compactor deletes them).
    pub retention: crate::retention::Retention,
    /// Without a store-gateway on this node, an ingester keeps a shipped
    /// head in memory this long (until store-gateways have indexed it).
    pub keep_shipped: Duration,
}

/// Starts and finds tenant actors.
pub struct Tenants {
    tenants: Mutex<HashMap<String, TenantActors>>,
    arbiters: Vec<ArbiterHandle>,
    pub(crate) wal: Option<Arc<Wal>>,
    pub(crate) blocks: BlockSettings,
    pub(crate) metrics: Metrics,
    /// The node's query slots, shared fairly among tenants.
    query_slots: Arc<FairSlots>,
    /// Queries in flight per tenant (their lanes).
    in_flight: Arc<InFlight>,
    cluster: Arc<ClusterContext>,
    pub(crate) store_gateway: Option<Arc<StoreGateway>>,
    roles: Roles,
    /// Each tenant's ingest limits (defaults and overrides).
    limits: Arc<TenantLimits>,
    /// The query-frontend's results cache, when this node keeps one.
    pub(crate) results_cache: Option<Arc<crate::results_cache::ResultsCache>>,
    /// This node's query-scheduler, when it runs one.
    scheduler: Option<Arc<Scheduler>>,
    /// How the query-frontend splits a query into sub-queries.
    pub(crate) split: SplitSettings,
    /// Ingesters each tenant's series are spread over (at least one).
    ingester_shards: usize,
    /// Tenants' settings, kept in the bucket (none without one).
    settings: Option<Arc<SettingsStore>>,
}

/// How the query-frontend hands the parts of a query to querier workers.
#[derive(Debug, Clone, Copy)]
pub struct SplitSettings {
    /// Sub-queries one query is split into at most (when its range has
    /// that many intervals to read); 1 reads each run of missing intervals
    /// in one.
    pub max_query_parallelism: usize,
    /// How long a sub-query may wait and run before the query fails as
    /// unavailable.
    pub sub_query_timeout: Duration,
    /// The intervals cuts fall on when this node keeps no results cache
    /// (else the cache's).
    pub interval: Duration,
}

impl Default for SplitSettings {
    fn default() -> Self {
        Self {
            max_query_parallelism: 4,
            sub_query_timeout: Duration::from_secs(300),
            interval: Duration::from_secs(3600),
        }
    }
}

/// The tenants a tenant spec names: one id, or several joined by `|` (a
/// federated read; `|` is not valid in an id).
pub fn tenant_ids(spec: &str) -> impl Iterator<Item = &str> {
    spec.split('|')
}

/// Tenant ids as Pyroscope accepts them (dskit rules).
pub fn validate_tenant_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("tenant id is empty".into());
    }
    if id.len() > 150 {
        return Err(format!(
            "tenant id is {} characters long; the limit is 150",
            id.len()
        ));
    }
    if id == "." || id == ".." {
        return Err(format!("tenant id {id:?} is not allowed"));
    }
    if let Some(c) = id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(c)))
    {
        return Err(format!(
            "tenant id {id:?} contains the unsupported character {c:?}"
        ));
    }
    Ok(())
}

impl Tenants {
    /// A registry starting actors on `arbiters` (at least one).
    pub fn new(
        arbiters: Vec<ArbiterHandle>,
        wal: Option<Arc<Wal>>,
        blocks: BlockSettings,
        metrics: Metrics,
        query_limits: QueryLimits,
        max_concurrent_queries: usize,
    ) -> Self {
        let settings = blocks
            .store
            .clone()
            .map(|store| Arc::new(SettingsStore::new(store)));
        Self {
            tenants: Mutex::new(HashMap::new()),
            arbiters,
            wal,
            settings,
            blocks,
            metrics: metrics.clone(),
            query_slots: FairSlots::new(max_concurrent_queries, 0, 0),
            in_flight: Arc::default(),
            cluster: Arc::new(ClusterContext::standalone(
                "local",
                "",
                &ignis_cluster::roles::ALL_ROLES,
                metrics,
            )),
            store_gateway: None,
            roles: Roles::all(),
            limits: Arc::new(TenantLimits::new(
                ignis_ingest::Limits::default(),
                query_limits,
            )),
            results_cache: None,
            scheduler: None,
            split: SplitSettings::default(),
            ingester_shards: 1,
        }
    }

    /// Spreads each tenant's series over `n` ingesters (0: one per actor
    /// thread), each on its own thread with its own head and WAL stream.
    pub fn with_ingester_shards(mut self, n: usize) -> Self {
        self.ingester_shards = if n == 0 { self.arbiters.len() } else { n }.max(1);
        self
    }

    /// Ingesters each tenant's series are spread over.
    pub fn ingester_shards(&self) -> usize {
        self.ingester_shards
    }

    /// Runs a query-scheduler on this node ([`crate::scheduler`]).
    pub fn with_scheduler(mut self, scheduler: Arc<Scheduler>) -> Self {
        self.scheduler = Some(scheduler);
        self
    }

    /// This node's query-scheduler, when it runs one.
    pub fn scheduler(&self) -> Option<&Arc<Scheduler>> {
        self.scheduler.as_ref()
    }

    /// How the query-frontend splits queries into sub-queries.
    pub fn with_split(mut self, split: SplitSettings) -> Self {
        self.split = split;
        self
    }

    /// The roles this node runs.
    pub fn roles(&self) -> &Roles {
        &self.roles
    }

    /// The scheduler the query-frontend hands `tenant`'s sub-queries to:
    /// this node's, else one of the cluster's (a tenant always the same
    /// one, so its outstanding limit holds); none when no querier serves
    /// (the frontend then merges them itself).
    fn scheduler_for(&self, tenant: &str) -> Option<Arc<dyn crate::worker::SchedulerLink>> {
        use ignis_cluster::roles::{QUERIER, QUERY_SCHEDULER};
        let members = self.cluster.membership.members();
        let me = &self.cluster.node_id;
        let queriers = members
            .iter()
            .any(|m| m.has_role(QUERIER) && (m.serving() || &m.node_id == me));
        if !queriers {
            return None;
        }
        if let Some(s) = &self.scheduler {
            return Some(Arc::new(s.clone()));
        }
        let mut schedulers: Vec<&ignis_cluster::Member> = members
            .iter()
            .filter(|m| m.has_role(QUERY_SCHEDULER) && m.serving())
            .collect();
        if schedulers.is_empty() {
            return None;
        }
        schedulers.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        let at = xxhash_rust::xxh3::xxh3_64(tenant.as_bytes()) % schedulers.len() as u64;
        let peer = self.cluster.peer(schedulers[at as usize].clone());
        Some(Arc::new(crate::worker::RemoteScheduler {
            peer,
            timeout: self.split.sub_query_timeout,
        }))
    }

    /// Whether `tenant`'s sub-queries go to querier workers.
    pub(crate) fn has_queriers(&self, tenant: &str) -> bool {
        self.scheduler_for(tenant).is_some()
    }

    /// The answer to `query` (a part of a query of one tenant): run by a
    /// querier worker through a query-scheduler, at most
    /// `sub_query_timeout`; here when no querier serves.
    pub(crate) async fn ask(
        &self,
        query: crate::peer::protocol::SubQuery,
    ) -> Result<crate::peer::protocol::SubAnswer, QueryFailure> {
        let Some(link) = self.scheduler_for(&query.tenant) else {
            return Ok(crate::worker::run(self, query).await);
        };
        let timeout = self.split.sub_query_timeout;
        tokio::time::timeout(timeout, link.enqueue(query))
            .await
            .map_err(|_| {
                QueryFailure::Unavailable(format!(
                    "no querier answered a sub-query within {timeout:?}"
                ))
            })?
            .map_err(|e| QueryFailure::Unavailable(format!("query-scheduler unavailable: {e}")))
    }

    /// Shares the node's `total` query slots fairly: each tenant waits in
    /// its own queue and freed slots go round the tenants; one runs at most
    /// `per_tenant` queries at once (0: all slots but one) and has at most
    /// `queued` waiting (0: no limit; past it a query fails at once with
    /// [`QueryFailure::TooManyQueries`]).
    pub fn with_query_slots(mut self, total: usize, per_tenant: usize, queued: usize) -> Self {
        self.query_slots = FairSlots::new(total, per_tenant, queued);
        self
    }

    /// The query slot limits in force for `tenant` on this node: queries it
    /// may run at once and have waiting (0: no limit).
    pub fn query_slot_limits(&self, tenant: &str) -> (usize, usize) {
        self.query_slots.tenant_limits(tenant)
    }

    /// Queries running and waiting on this node.
    pub fn query_load(&self) -> (usize, usize) {
        self.query_slots.load()
    }

    /// Applies `limits` to each tenant's ingest (its distributor's rate and
    /// active series limits; the decoders read them per request) and
    /// queries (read per query; its share of the query slots). Their query
    /// defaults replace the ones given to [`Tenants::new`].
    pub fn with_limits(mut self, limits: Arc<TenantLimits>) -> Self {
        self.limits = limits;
        let all: Vec<String> = self.limits.overridden();
        self.apply_slot_limits(&all);
        self
    }

    fn apply_slot_limits(&self, tenants: &[String]) {
        for tenant in tenants {
            let s = self.limits.slots(tenant);
            self.query_slots.set_tenant_limits(
                tenant,
                s.max_concurrent_queries_per_tenant,
                s.max_queued_queries_per_tenant,
            );
        }
    }

    /// The ingest limits of `tenant`.
    pub fn limits(&self, tenant: &str) -> Arc<ignis_ingest::Limits> {
        self.limits.get(tenant)
    }

    /// The limits registry (defaults and overrides).
    pub fn tenant_limits(&self) -> &Arc<TenantLimits> {
        &self.limits
    }

    /// Tells the running distributors and the query slots of `tenants`
    /// their limits changed.
    pub fn apply_limits(&self, tenants: &[String]) {
        self.apply_slot_limits(tenants);
        for tenant in tenants {
            if let Some(d) = self.get(tenant).and_then(|t| t.distributor) {
                d.do_send(SetLimits::of(&self.limits.get(tenant)));
            }
        }
    }

    /// Answers settled intervals of stack merges from `cache` (the
    /// query-frontend's results cache; needs this node's store-gateway,
    /// whose block index keys the entries).
    pub fn with_results_cache(mut self, cache: Arc<crate::results_cache::ResultsCache>) -> Self {
        self.results_cache = Some(cache);
        self
    }

    /// Starts only the actors of `roles` for each tenant (distributors,
    /// ingesters, and queriers for the read roles).
    pub fn with_roles(mut self, roles: Roles) -> Self {
        self.roles = roles;
        self
    }

    /// Whether this node runs ingesters.
    pub fn runs_ingester(&self) -> bool {
        self.roles.has(INGESTER)
    }

    /// Serves historical blocks through `sg` (which also takes over the
    /// blocks this node uploads, so ingesters can drop them from memory).
    pub fn with_store_gateway(mut self, sg: Arc<StoreGateway>) -> Self {
        self.store_gateway = Some(sg);
        self
    }

    /// Tenants' settings, when this node has a bucket.
    pub fn settings(&self) -> Option<&Arc<SettingsStore>> {
        self.settings.as_ref()
    }

    /// The store-gateway, when this node runs one.
    pub fn store_gateway(&self) -> Option<&Arc<StoreGateway>> {
        self.store_gateway.as_ref()
    }

    /// What a SQL query over `tenant` in `[start_ns, end_ns]` reads on this
    /// node: the blocks its store-gateway serves in that range (by their
    /// meta) and the ingester's data still in memory, as the same tables.
    pub async fn sql_input(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<ignis_query::sql::SqlInput, QueryFailure> {
        let blocks = self.local_blocks(tenant, start_ns, end_ns);
        let bucket = self.store_gateway.as_ref().map(|sg| sg.bucket());
        let local = self.snapshot(tenant).await?;
        let heads = tokio::task::spawn_blocking(move || {
            local
                .iter()
                .flat_map(Snapshot::all_heads)
                .filter(|h| !h.is_empty())
                .map(ignis_storage::block::head_tables)
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| QueryFailure::Unavailable(e.to_string()))?
        .map_err(|e| QueryFailure::Unavailable(e.to_string()))?;
        Ok(ignis_query::sql::SqlInput {
            bucket,
            blocks,
            heads,
        })
    }

    /// A fresh memory budget for one query of `tenant` on this node
    /// (`max_query_memory_bytes` of its query limits).
    pub fn query_budget(&self, tenant: &str) -> MemoryBudget {
        MemoryBudget::new(self.limits.query(tenant).max_query_memory_bytes)
    }

    /// The blocks this node's store-gateway serves for `tenant` that overlap
    /// `[start_ns, end_ns]`.
    pub fn local_blocks(&self, tenant: &str, start_ns: i64, end_ns: i64) -> Vec<BlockMeta> {
        self.store_gateway
            .as_ref()
            .map(|sg| sg.metas(tenant, start_ns, end_ns))
            .unwrap_or_default()
    }

    /// What `scope` needs of `blocks` (this node's, [`Tenants::local_blocks`]):
    /// pruned reads or whole blocks (see
    /// [`store_gateway::reads`](crate::store_gateway::reads)).
    pub async fn block_sources(
        &self,
        blocks: Vec<BlockMeta>,
        scope: &Scope,
        budget: &MemoryBudget,
    ) -> Result<Vec<Arc<dyn Source>>, QueryFailure> {
        match &self.store_gateway {
            Some(sg) if !blocks.is_empty() => sg.sources_within(blocks, scope, budget).await,
            _ => Ok(Vec::new()),
        }
    }

    /// Routes writes and reads through `cluster` (by default, a cluster of
    /// this node alone).
    pub fn with_cluster(mut self, cluster: Arc<ClusterContext>) -> Self {
        self.cluster = cluster;
        self
    }

    /// The cluster this node is part of (itself alone when standalone).
    pub fn cluster(&self) -> &Arc<ClusterContext> {
        &self.cluster
    }

    /// What this node's ingester holds of `tenant` (its head and sealed
    /// heads, immutable), if it runs one for the tenant.
    pub async fn snapshot(&self, tenant: &str) -> Result<Option<Snapshot>, QueryFailure> {
        let Some(shards) = self.get(tenant).and_then(|t| t.ingester) else {
            return Ok(None);
        };
        let snapshot = shards
            .snapshot()
            .await
            .map_err(|e| QueryFailure::Unavailable(format!("ingester of {tenant}: {e}")))?;
        Ok(Some(snapshot))
    }

    /// The actors of `tenant`, if it has data.
    pub fn get(&self, tenant: &str) -> Option<TenantActors> {
        self.tenants.lock().get(tenant).cloned()
    }

    /// Every tenant with running actors, sorted.
    pub fn all(&self) -> Vec<(String, TenantActors)> {
        let mut all: Vec<_> = self
            .tenants
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The actors of `tenant`, started on first use.
    pub fn get_or_start(&self, tenant: &str) -> TenantActors {
        self.get_or_start_shards(tenant, 0)
    }

    /// The actors of `tenant`, started on first use, with at least `shards`
    /// ingesters (WAL replay starts one for every stream it found; those
    /// beyond [`Tenants::ingester_shards`] hold replayed data and take no
    /// new profiles).
    pub fn get_or_start_shards(&self, tenant: &str, shards: usize) -> TenantActors {
        let mut tenants = self.tenants.lock();
        if let Some(t) = tenants.get_mut(tenant) {
            if let Some(have) = &t.ingester
                && have.all().len() < shards
            {
                let extra = (have.all().len()..shards)
                    .map(|k| self.start_ingester(tenant, k))
                    .collect();
                t.ingester = Some(have.with_extra(extra));
            }
            return t.clone();
        }
        let arbiter = &self.arbiters[self.arbiter_of(tenant, 0)];
        let ingester = self.roles.has(INGESTER).then(|| {
            let n = self.ingester_shards.max(shards);
            let addrs = (0..n).map(|k| self.start_ingester(tenant, k)).collect();
            IngesterShards::new(tenant, addrs, self.ingester_shards)
        });
        let (t, i, c, m, l) = (
            tenant.to_string(),
            ingester.clone(),
            self.cluster.clone(),
            self.metrics.clone(),
            self.limits.clone(),
        );
        let distributor = self.roles.has(DISTRIBUTOR).then(|| {
            Supervisor::start_in_arbiter(arbiter, move |_| {
                // Read when (re)started, so a restart keeps overrides.
                Distributor::new(t.clone(), i.clone(), c.clone(), m.clone())
                    .with_limits(SetLimits::of(&l.get(&t)))
            })
        });
        let querier = self
            .roles
            .serves_reads()
            .then(|| Supervisor::start_in_arbiter(arbiter, |_| Querier));
        tracing::info!(tenant, "started tenant actors");
        let actors = TenantActors {
            distributor,
            ingester,
            querier,
        };
        tenants.insert(tenant.to_string(), actors.clone());
        actors
    }

    /// The arbiter of shard `shard` of `tenant` (shard 0 also runs its
    /// distributor and querier): tenants spread by hash, a tenant's shards
    /// over consecutive arbiters.
    fn arbiter_of(&self, tenant: &str, shard: usize) -> usize {
        let n = self.arbiters.len().max(1);
        let first = (xxhash_rust::xxh3::xxh3_64(tenant.as_bytes()) % n as u64) as usize;
        (first + shard) % n
    }

    /// Starts ingester shard `shard` of `tenant`, appending to its WAL
    /// stream, its head bounded by its share of `max_head_bytes`.
    fn start_ingester(&self, tenant: &str, shard: usize) -> Addr<Ingester> {
        let arbiter = &self.arbiters[self.arbiter_of(tenant, shard)];
        let (t, w, m) = (tenant.to_string(), self.wal.clone(), self.metrics.clone());
        let stream = ignis_storage::wal::stream_name(tenant, shard);
        let max_bytes = self.blocks.max_head_bytes / self.ingester_shards.max(1) as u64;
        Supervisor::start_in_arbiter(arbiter, move |_| {
            Ingester::new(t, w, m)
                .with_stream(stream)
                .with_max_bytes(max_bytes)
        })
    }

    /// Runs `f` against all of the tenant's data; a tenant without data gets an empty engine.
    pub async fn query<R, F>(&self, tenant: &str, f: F) -> Result<R, QueryFailure>
    where
        R: Send + 'static,
        F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
    {
        self.query_range(tenant, i64::MIN, i64::MAX, f).await
    }

    /// Runs `f` against the tenant's data in `[start_ns, end_ns]`: through
    /// the query-frontend's results cache when this node has one and the
    /// query only merges stacks ([`crate::frontend`]), else directly
    /// ([`Tenants::query_direct`]).
    pub async fn query_range<R, F>(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
        f: F,
    ) -> Result<R, QueryFailure>
    where
        R: Send + 'static,
        F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
    {
        let limits = self.limits.query(tenant);
        let scope = Scope::record(&limits, &f)?;
        // Its work, and its sub-queries' on the queriers, run in its lane
        // (the caller's, when it entered the query itself).
        let (cell, entered) = match ignis_query::lane::current_cell() {
            Some(cell) => (cell, None),
            None => {
                let entered = self.enter_query(tenant);
                (entered.cell(), Some(entered))
            }
        };
        ignis_query::lane::in_cell(cell, async move {
            let _entered = entered;
            if let Some(sel) = crate::frontend::listable(self, tenant, &limits, &scope) {
                return crate::frontend::query_listing(
                    self,
                    tenant,
                    sel,
                    limits,
                    (start_ns, end_ns),
                    f,
                )
                .await;
            }
            if let Some(plans) = crate::frontend::splittable_series(self, tenant, &limits, &scope) {
                return crate::frontend::query_series(
                    self, tenant, plans, limits, start_ns, end_ns, f,
                )
                .await;
            }
            match crate::frontend::cacheable(self, tenant, &limits, &scope) {
                Some(cacheable) => {
                    crate::frontend::query_cached(self, cacheable, tenant, start_ns, end_ns, f)
                        .await
                }
                None => {
                    self.query_planned(tenant, limits, &scope, start_ns, end_ns, f)
                        .await
                }
            }
        })
        .await
    }

    /// Counts a query of `tenant` in flight until the guard is dropped; its
    /// lane is bulk when the tenant has another query in flight. A caller
    /// that runs the query inside [`ignis_query::lane::in_lane`] with that
    /// lane (and on that lane's threads) enters it itself.
    pub fn enter_query(&self, tenant: &str) -> Entered {
        let entered = self.in_flight.enter(tenant);
        self.metrics
            .query_lanes
            .get_or_create(&vec![("lane", entered.lane().name().to_string())])
            .inc();
        entered
    }

    /// [`Tenants::query_range`] without the results cache: plans `f` and
    /// runs it ([`Tenants::query_planned`]).
    pub(crate) async fn query_direct<R, F>(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
        f: F,
    ) -> Result<R, QueryFailure>
    where
        R: Send + 'static,
        F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
    {
        let limits = self.limits.query(tenant);
        let scope = Scope::record(&limits, &f)?;
        self.query_planned(tenant, limits, &scope, start_ns, end_ns, f)
            .await
    }

    /// Runs `f` against the tenant's data in `[start_ns, end_ns]` (the
    /// query's own range), on every node the same way: plan, sources, merge.
    /// `tenant` may name several tenants joined by `|` (a federated read,
    /// as `X-Scope-OrgID: a|b` asks): their data is merged as one.
    ///
    /// - Plan: `f` ran first over no data, to record the selections it
    ///   makes (`scope`, from [`Scope::record`]; a query that fails fails
    ///   there, before anything is read).
    /// - Sources: the peers (other ingesters and store-gateways; none on a
    ///   standalone node) answer only what that scope selects, and this
    ///   node's blocks are read for it (pruned); peers skip the blocks this
    ///   node reads, so a block held by several store-gateways is read
    ///   once. This node's ingester hands out a snapshot of its heads, read
    ///   in place.
    /// - Merge: `f` runs again over all of them on the tenant's querier,
    ///   which counts a profile held by several sources once.
    async fn query_planned<R, F>(
        &self,
        tenant: &str,
        limits: Arc<QueryLimits>,
        scope: &Scope,
        start_ns: i64,
        end_ns: i64,
        f: F,
    ) -> Result<R, QueryFailure>
    where
        R: Send + 'static,
        F: Fn(&Engine<'_>) -> Result<R, QueryError> + Send + Sync + 'static,
    {
        // A federated read (`a|b`) takes its turns as one tenant.
        let slot = self
            .query_slots
            .acquire(tenant)
            .await
            .map_err(|e| QueryFailure::TooManyQueries(e.to_string()))?;
        // The query's lane cell (its caller's): bulk from here on when the
        // slot says so, or when its tenant starts another query meanwhile.
        let cell = ignis_query::lane::current_cell().unwrap_or_default();
        if slot.lane() == Lane::Bulk {
            cell.demote();
        }
        let ids: Vec<&str> = tenant_ids(tenant).collect();
        let budget = Arc::new(MemoryBudget::new(limits.max_query_memory_bytes));
        let parts = ignis_query::lane::in_cell(
            cell.clone(),
            futures::future::try_join_all(
                ids.iter()
                    .map(|id| self.sources_of(id, scope, start_ns, end_ns, &budget)),
            ),
        )
        .await?;
        let mut query = RunQuery {
            query: Box::new(f),
            local: Vec::new(),
            blocks: Vec::new(),
            remote: Vec::new(),
            budget,
            limits,
            lane: cell.get(),
        };
        for (remote, blocks, local) in parts {
            query.remote.extend(remote);
            query.blocks.extend(blocks);
            query.local.extend(local);
        }
        let span = tracing::debug_span!("merge", tenant);
        let querier = match ids.as_slice() {
            [one] => self.get(one).and_then(|t| t.querier),
            _ => None,
        };
        match querier {
            Some(querier) => querier
                .send(query)
                .instrument(span)
                .await
                .map_err(|e| QueryFailure::Unavailable(e.to_string()))?,
            // No actor holds data of the tenant here (nothing of it is in
            // memory, so no querier is started for a read), or the read
            // is federated: merged on the blocking pool directly.
            None => crate::querier::merge(query).instrument(span).await,
        }
    }

    /// The sources of one tenant for `scope`: the peers' answers, this
    /// node's block reads and its ingester's snapshot.
    async fn sources_of(
        &self,
        tenant: &str,
        scope: &Scope,
        start_ns: i64,
        end_ns: i64,
        budget: &MemoryBudget,
    ) -> Result<(Vec<PeerSlice>, Vec<Arc<dyn Source>>, Option<Snapshot>), QueryFailure> {
        // A merge that rollups can answer reads overlapping blocks (replicas
        // before compaction) here, whoever serves them: together they
        // answer from rollups, apart their owners would send rows.
        let here = match (&self.store_gateway, scope.rollup_segments()) {
            (Some(sg), Some(_)) => sg.metas_with_replicas(tenant, start_ns, end_ns),
            _ => self.local_blocks(tenant, start_ns, end_ns),
        };
        let read_here: Vec<String> = here.iter().map(|m| m.ulid.clone()).collect();
        let (remote, blocks, local) = futures::try_join!(
            self.cluster
                .select_peers(tenant, scope, start_ns, end_ns, read_here)
                .instrument(tracing::debug_span!("select_peers", tenant)),
            self.block_sources(here.clone(), scope, budget)
                .instrument(tracing::debug_span!("read_blocks", tenant)),
            self.snapshot(tenant),
        )?;
        for peer in &remote {
            budget.charge(peer.held_bytes(), "a peer's answer")?;
        }
        // Blocks answering from rollups where other sources hold data too
        // claim the profiles they pre-merged there. A peer's bounds cover
        // all it holds; the rows it sent for this scope are what can overlap.
        let rows_bounds = |h: &ignis_storage::Head| {
            let st = h.stats();
            st.min_time_ns.zip(st.max_time_ns)
        };
        let others: Vec<(i64, i64)> = remote
            .iter()
            .filter_map(|p| rows_bounds(&p.head))
            .chain(
                local
                    .iter()
                    .flat_map(Snapshot::sources)
                    .filter_map(|s| s.time_bounds()),
            )
            .collect();
        let blocks = match &self.store_gateway {
            Some(sg) if blocks.iter().any(|b| !b.rollup_spans().is_empty()) => {
                sg.claim_overlaps(&here, blocks, scope, &others).await?
            }
            _ => blocks,
        };
        Ok((remote, blocks, local))
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distributor::Distribute;
    use crate::ingester::Restart;
    use ignis_storage::{Labels, SeriesSplit, SplitProfile};

    fn profile(ts: i64) -> SplitProfile {
        profile_of("svc", ts)
    }

    /// Tenants on this thread's arbiter, with two query slots.
    fn one_thread(wal: Option<Arc<Wal>>, blocks: BlockSettings) -> Tenants {
        Tenants::new(
            vec![actix::Arbiter::current()],
            wal,
            blocks,
            Metrics::new(),
            QueryLimits::default(),
            2,
        )
    }

    fn profile_of(service: &str, ts: i64) -> SplitProfile {
        SplitProfile {
            profile_id: ignis_storage::ProfileId::generate(),
            profile: ignis_storage::FlatProfile::from_proto(
                &ignis_storage::testing::one_frame_profile("main", 1, 7),
            )
            .expect("encodes"),
            timestamp_ns: ts,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([
                    ("service_name", service),
                    ("__profile_type__", "a:b:c:d:e"),
                ]),
                value_index: 0,
                samples: vec![0],
            }],
        }
    }

    #[actix::test]
    async fn a_tenant_spread_over_shards_keeps_a_series_on_one_and_a_wal_stream_each() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(
            Wal::open(
                dir.path(),
                ignis_storage::WalSync::Batched,
                Duration::from_secs(1),
            )
            .unwrap(),
        );
        let tenants =
            one_thread(Some(wal.clone()), BlockSettings::default()).with_ingester_shards(3);
        let t = tenants.get_or_start("t1");
        let shards = t.ingester.clone().unwrap();
        assert_eq!((shards.all().len(), shards.routing()), (3, 3));
        let distributor = t.distributor.clone().unwrap();
        // 30 single-profile pushes over 10 series, then one push of 10
        // profiles of 10 more series (split over the shards it spans).
        for i in 0..30 {
            let p = profile_of(&format!("svc-{}", i % 10), 1_000 + i);
            distributor
                .send(Distribute {
                    profiles: vec![p],
                    record: None,
                    endpoint: "test",
                })
                .await
                .unwrap()
                .unwrap();
        }
        let batch: Vec<SplitProfile> = (0..10)
            .map(|i| profile_of(&format!("other-{i}"), 5_000 + i))
            .collect();
        let stats = distributor
            .send(Distribute {
                profiles: batch,
                record: None,
                endpoint: "test",
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.profiles, 10);

        // Every profile is held once; a series lives on one shard only.
        let mut held = 0;
        let mut owner: HashMap<String, usize> = HashMap::new();
        for (k, addr) in shards.all().iter().enumerate() {
            let snap = addr.send(crate::ingester::TakeSnapshot).await.unwrap();
            held += snap.profiles();
            for h in snap.all_heads() {
                for s in h.series() {
                    let svc = s.labels.get("service_name").unwrap().to_string();
                    assert_eq!(
                        *owner.entry(svc.clone()).or_insert(k),
                        k,
                        "{svc} on two shards"
                    );
                }
            }
        }
        assert_eq!(held, 40);
        assert_eq!(owner.len(), 20);
        let used: std::collections::HashSet<usize> = owner.values().copied().collect();
        assert!(used.len() >= 2, "20 series all on one shard: {owner:?}");
        assert_eq!(
            tenants.snapshot("t1").await.unwrap().unwrap().profiles(),
            40
        );

        // Each shard wrote its own WAL stream, which holds exactly its profiles.
        let mut by_stream: HashMap<String, u64> = HashMap::new();
        wal.replay(|_, stream, profiles| {
            *by_stream.entry(stream.to_string()).or_default() += profiles.len() as u64;
        })
        .unwrap();
        for (stream, n) in &by_stream {
            let (tenant, shard) = ignis_storage::wal::parse_stream(stream).unwrap();
            assert_eq!(tenant, "t1");
            let on_shard = owner.values().filter(|&&k| k == shard).count() as u64;
            assert!(on_shard > 0, "stream {stream} of a shard holding nothing");
            assert!(
                *n >= on_shard,
                "{stream}: {n} profiles for {on_shard} series"
            );
        }
        assert_eq!(by_stream.values().sum::<u64>(), 40);
    }

    #[actix::test]
    async fn a_head_is_cut_at_its_byte_bound_not_after() {
        let tenants = one_thread(
            None,
            BlockSettings {
                max_head_bytes: 64 << 10,
                ..BlockSettings::default()
            },
        );
        let t = tenants.get_or_start("t1");
        let distributor = t.distributor.clone().unwrap();
        let ingester = t.ingester.clone().unwrap().all()[0].clone();
        let mut cuts = 0;
        for i in 0..400 {
            distributor
                .send(Distribute {
                    profiles: vec![profile_of(&format!("svc-{i}"), 1_000 + i)],
                    record: None,
                    endpoint: "test",
                })
                .await
                .unwrap()
                .unwrap();
            let snap = ingester.send(crate::ingester::TakeSnapshot).await.unwrap();
            let head: u64 = snap.heads.iter().map(|h| h.approx_bytes()).sum();
            assert!(head < 64 << 10, "head of {head} bytes past its bound");
            cuts = snap.sealed.len();
        }
        assert!(cuts >= 2, "400 series in 64 KiB heads cut {cuts} times");
        let snap = tenants.snapshot("t1").await.unwrap().unwrap();
        assert_eq!(snap.profiles(), 400, "cut heads are still served");
        let metrics = tenants.metrics().encode();
        assert!(
            metrics.contains("ignis_head_bytes{tenant=\"t1\"}"),
            "{metrics}"
        );
    }

    #[actix::test]
    async fn a_stopped_ingester_is_restarted_with_its_head() {
        let metrics = Metrics::new();
        let tenants = Tenants::new(
            vec![actix::Arbiter::current()],
            None,
            BlockSettings::default(),
            metrics.clone(),
            QueryLimits::default(),
            2,
        );
        let t = tenants.get_or_start("t1");
        let distributor = t.distributor.clone().unwrap();
        let stats = distributor
            .send(Distribute {
                profiles: vec![profile(2_000_000)],
                record: None,
                endpoint: "test",
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.profiles, 1);
        t.ingester.clone().unwrap().all()[0]
            .send(Restart)
            .await
            .unwrap();
        // The supervisor restarts the ingester after a backoff; the next append waits for it.
        let stats = distributor
            .send(Distribute {
                profiles: vec![profile(3_000_000)],
                record: None,
                endpoint: "test",
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stats.samples, 1);
        let held = tenants.snapshot("t1").await.unwrap().expect("an ingester");
        assert_eq!(held.profiles(), 2);
        assert!(
            metrics
                .encode()
                .contains("ignis_actor_restarts_total{component=\"ingester\",tenant=\"t1\"} 1")
        );
        // Queries see both profiles, and an unknown tenant sees none.
        let total = tenants
            .query("t1", |e| {
                let (_, sel) = e.typed_selection("a:b:c:d:e", "{}", 1, 10)?;
                Ok(e.merge(&sel).total())
            })
            .await
            .unwrap();
        assert_eq!(total, 14);
        let none = tenants
            .query("nobody", |e| {
                let (_, sel) = e.typed_selection("a:b:c:d:e", "{}", 1, 10)?;
                Ok(e.merge(&sel).total())
            })
            .await
            .unwrap();
        assert_eq!(none, 0);
    }

    #[actix::test]
    async fn a_tenant_over_its_query_slots_waits_and_past_its_queue_is_refused() {
        let tenants = Arc::new(
            Tenants::new(
                vec![actix::Arbiter::current()],
                None,
                BlockSettings::default(),
                Metrics::new(),
                QueryLimits::default(),
                8,
            )
            .with_query_slots(8, 1, 1),
        );
        // A query whose merge (its second run; the first is the plan) takes
        // a while on the blocking pool.
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let slow = {
            let runs = runs.clone();
            move |_: &Engine<'_>| {
                if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
                    std::thread::sleep(Duration::from_millis(400));
                }
                Ok(1)
            }
        };
        let t = tenants.clone();
        let running = tokio::task::spawn_local(async move { t.query("busy", slow).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        // busy's second query waits for its first; a third is one too many.
        let t = tenants.clone();
        let waiting = tokio::task::spawn_local(async move { t.query("busy", |_| Ok(2)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(tenants.query_load(), (1, 1));
        match tenants.query("busy", |_| Ok(3)).await {
            Err(QueryFailure::TooManyQueries(m)) => assert!(m.contains("busy"), "{m}"),
            other => panic!("expected too many queries, got {other:?}"),
        }
        assert_eq!(
            tenants.query("calm", |_| Ok(4)).await.unwrap(),
            4,
            "others run at once"
        );
        assert_eq!(running.await.unwrap().unwrap(), 1);
        assert_eq!(waiting.await.unwrap().unwrap(), 2, "the waiting query ran");
        assert_eq!(tenants.query_load(), (0, 0));
    }

    #[test]
    fn tenant_ids() {
        assert!(validate_tenant_id("team-a_1.(x)").is_ok());
        assert!(validate_tenant_id("").is_err());
        assert!(validate_tenant_id("..").is_err());
        assert!(validate_tenant_id("a/b").is_err());
        assert!(validate_tenant_id(&"x".repeat(151)).is_err());
    }
}
