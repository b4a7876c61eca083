//! Ignis: a Pyroscope-compatible continuous profiling server.
//!
//! [`run_node`] starts one node (its actors and HTTP API) on a thread of its
//! own, so tests can start several nodes in one process.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod grpc;
pub mod http;
pub mod loadgen;
pub use ignis_cluster::roles;
pub mod telemetry;
pub mod tls;

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use actix_web::dev::Service;
use actix_web::middleware::Compress;
use actix_web::{App, web};
use ignis_actors::{Metrics, Tenants};
use tracing::Instrument;

pub use config::Config;
use http::state::AppState;
use roles::Roles;

/// A node that could not start or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The HTTP listener could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The configured address.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("node failed: {0}")]
    Io(#[from] std::io::Error),
    /// The write-ahead log could not be opened or replayed.
    #[error("write-ahead log: {0}")]
    Wal(#[from] ignis_storage::WalError),
    /// The block store could not be opened or read.
    #[error("block storage: {0}")]
    Blocks(#[from] ignis_storage::block::BlockError),
    /// Loading blocks or replaying the WAL failed.
    #[error("loading data: {0}")]
    Load(#[from] ignis_actors::shipper::LoadError),
    /// The node could not join its cluster.
    #[error("cluster: {0}")]
    Cluster(String),
    /// The node thread panicked.
    #[error("node thread panicked")]
    Panicked,
}

/// A running node.
pub struct RunningNode {
    /// The bound HTTP address (useful with port 0).
    pub http_addr: SocketAddr,
    thread: JoinHandle<Result<(), NodeError>>,
}

impl RunningNode {
    /// Waits until the node has shut down.
    pub fn wait(self) -> Result<(), NodeError> {
        self.thread.join().map_err(|_| NodeError::Panicked)?
    }
}

/// Starts a node with `config` and returns once it serves (blocks loaded and
/// the WAL replayed); it runs until `shutdown` completes.
pub fn run_node<S>(config: Config, shutdown: S) -> Result<RunningNode, NodeError>
where
    S: Future<Output = ()> + Send + 'static,
{
    config.validate()?;
    let roles = Roles::parse(&config.target)
        .map_err(|e| config::ConfigError::Invalid(format!("target: {e}")))?;
    let address = config.server.http_listen_address.clone();
    let listener = TcpListener::bind(&address).map_err(|source| NodeError::Bind {
        address: address.clone(),
        source,
    })?;
    let http_addr = listener.local_addr()?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ignis-node".into())
        .spawn(move || {
            actix_web::rt::System::new()
                .block_on(serve(config, roles, listener, shutdown, ready_tx))
        })?;
    // Return once the node serves (blocks loaded, WAL replayed), or with the
    // error that stopped it from starting.
    match ready_rx.recv() {
        Ok(()) => Ok(RunningNode { http_addr, thread }),
        Err(_) => match thread.join() {
            Ok(Ok(())) => Err(NodeError::Io(std::io::Error::other(
                "node stopped during startup",
            ))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NodeError::Panicked),
        },
    }
}

/// Joins gossip and builds the node's cluster context (the node starts not ready).
async fn join_cluster(
    config: &Config,
    roles: &Roles,
    http_addr: SocketAddr,
    metrics: &Metrics,
) -> Result<Arc<ignis_actors::cluster::ClusterContext>, NodeError> {
    use ignis_cluster::{Membership, MembershipConfig, RpcClient};
    let c = &config.cluster;
    let bad = |m: String| NodeError::Cluster(m);
    let http = if c.http_advertise_address.is_empty() {
        if http_addr.ip().is_unspecified() {
            return Err(bad("cluster.http_advertise_address must be set when the HTTP server listens on an unspecified address".into()));
        }
        http_addr.to_string()
    } else {
        c.http_advertise_address.clone()
    };
    let listen: SocketAddr = c.gossip_listen_address.parse().map_err(|_| {
        bad(format!(
            "bad gossip_listen_address {:?}",
            c.gossip_listen_address
        ))
    })?;
    let advertise: SocketAddr = if c.gossip_advertise_address.is_empty() {
        listen
    } else {
        c.gossip_advertise_address.parse().map_err(|_| {
            bad(format!(
                "bad gossip_advertise_address {:?}",
                c.gossip_advertise_address
            ))
        })?
    };
    let node_id = if c.node_id.is_empty() {
        http.clone()
    } else {
        c.node_id.clone()
    };
    let membership = Membership::join(
        MembershipConfig {
            node_id: node_id.clone(),
            // Nodes of another secret gossip under another id: they never
            // see each other as members.
            cluster_id: if c.secret.is_empty() {
                c.cluster_id.clone()
            } else {
                format!("{}-{}", c.cluster_id, &auth::hash_secret(&c.secret)[..16])
            },
            listen_addr: listen,
            advertise_addr: advertise,
            seeds: c.seeds.clone(),
            gossip_interval: std::time::Duration::from_millis(c.gossip_interval_ms),
            dead_node_grace: std::time::Duration::from_secs(c.dead_node_grace_secs),
            roles: roles.names().iter().map(|r| r.to_string()).collect(),
            http_addr: http,
            protocol: ignis_actors::peer::PROTOCOL_VERSION,
        },
        &ignis_cluster::UdpTransport,
    )
    .await
    .map_err(|e| bad(e.to_string()))?;
    let membership = Arc::new(membership);
    let rpc = RpcClient::new(
        std::time::Duration::from_millis(c.rpc_timeout_ms.max(1)),
        c.rpc_retries,
        ignis_actors::peer::PROTOCOL_VERSION,
    )
    .map_err(|e| bad(e.to_string()))?
    .with_secret(&c.secret);
    // TLS on the HTTP listener: peers are called over HTTPS too.
    let rpc = match (config.server.tls_cert_file.as_str(), c.tls_ca_file.as_str()) {
        ("", _) => rpc,
        (cert, ca) => {
            let roots_file = if ca.is_empty() { cert } else { ca };
            let roots = std::fs::read(roots_file)
                .map_err(|e| bad(format!("reading {roots_file} (cluster TLS roots): {e}")))?;
            rpc.with_tls(&roots).map_err(|e| bad(e.to_string()))?
        }
    };
    // Keep the members gauge current.
    let mut watch = membership.watch();
    let gauge = metrics.cluster_members.clone();
    actix_web::rt::spawn(async move {
        while watch.changed().await.is_ok() {
            let members = watch.borrow().clone();
            for state in ["alive", "failed", "left"] {
                let n = members
                    .iter()
                    .filter(|m| format!("{:?}", m.state).eq_ignore_ascii_case(state))
                    .count();
                gauge
                    .get_or_create(&vec![("state", state.to_string())])
                    .set(n as i64);
            }
        }
    });
    Ok(Arc::new(ignis_actors::cluster::ClusterContext::new(
        membership,
        Arc::new(rpc),
        ignis_actors::cluster::ReplicationSettings {
            replication_factor: c.replication_factor,
            tokens_per_ingester: c.tokens_per_ingester,
            max_hint_bytes: c.max_hint_bytes,
            // Every attempt may take the timeout, plus the retry backoff.
            call_deadline: std::time::Duration::from_millis(
                c.rpc_timeout_ms
                    .max(1)
                    .saturating_mul(u64::from(c.rpc_retries) + 1)
                    .saturating_add(2_000),
            ),
        },
        node_id,
        metrics.clone(),
    )))
}

/// Starts one supervised scrape actor per `[[scrape.targets]]` entry.
fn start_scrapers(
    config: &Config,
    tenants: &Arc<Tenants>,
    status: &Arc<ignis_actors::scrape::ScrapeStatus>,
    metrics: &Metrics,
) -> Result<(), NodeError> {
    use ignis_actors::scrape::{ScrapeContext, Scraper};
    let client = reqwest::Client::builder()
        .user_agent(concat!("ignis/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NodeError::Io(std::io::Error::other(format!("scrape client: {e}"))))?;
    let ctx = ScrapeContext {
        config: Arc::new(config.scrape.clone()),
        tenants: tenants.clone(),
        limits: config.limits.clone(),
        default_tenant: config.tenancy.default_tenant.clone(),
        status: status.clone(),
        metrics: metrics.clone(),
        client,
    };
    for target in &config.scrape.targets {
        let (ctx, target) = (ctx.clone(), target.clone());
        actix::Supervisor::start(move |_| Scraper::new(ctx.clone(), target.clone()));
    }
    Ok(())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

async fn serve<S>(
    config: Config,
    roles: Roles,
    listener: TcpListener,
    shutdown: S,
    ready: std::sync::mpsc::Sender<()>,
) -> Result<(), NodeError>
where
    S: Future<Output = ()> + Send + 'static,
{
    let metrics = Metrics::new();
    let actor_threads = if config.server.actor_threads == 0 {
        cores()
    } else {
        config.server.actor_threads
    };
    let arbiters: Vec<actix::Arbiter> = (0..actor_threads).map(|_| actix::Arbiter::new()).collect();
    // Only ingesters keep a WAL (a standalone node is one).
    let runs_ingester = roles.has(roles::INGESTER);
    let wal = if runs_ingester {
        let wal_dir = config.storage.data_dir.join("wal");
        std::fs::create_dir_all(&wal_dir)?;
        let wal = ignis_storage::Wal::open(
            &wal_dir,
            config.storage.wal_sync,
            std::time::Duration::from_millis(config.storage.wal_flush_interval_ms),
        )?;
        wal.set_commit_window(std::time::Duration::from_micros(
            config.storage.wal_commit_window_us,
        ));
        Some(Arc::new(wal))
    } else {
        None
    };
    let store =
        ignis_storage::block::BlockStore::open(&config.storage.bucket, &config.storage.data_dir)?;
    let blocks_store = Some(store.clone());
    let secs = std::time::Duration::from_secs;
    let retention = ignis_actors::retention::Retention {
        default: secs(config.storage.retention_secs),
        per_tenant: config
            .storage
            .tenant_retention_secs
            .iter()
            .map(|(t, s)| (t.clone(), secs(*s)))
            .collect(),
    };
    let blocks = ignis_actors::BlockSettings {
        store: Some(store),
        max_block_duration: secs(config.storage.max_block_duration_secs),
        max_head_samples: config.storage.max_head_samples,
        max_head_bytes: config.storage.max_head_bytes,
        retention: retention.clone(),
        keep_shipped: secs(
            config
                .storage
                .block_sync_interval_secs
                .max(1)
                .saturating_mul(3),
        ),
    };
    // A standalone node is a cluster of one (config validation gave it
    // every role): the same write and read paths, with no peer to call.
    let cluster = if config.cluster.enabled {
        join_cluster(&config, &roles, listener.local_addr()?, &metrics).await?
    } else {
        let http = listener.local_addr()?.to_string();
        let node_id = if config.cluster.node_id.is_empty() {
            http.clone()
        } else {
            config.cluster.node_id.clone()
        };
        Arc::new(ignis_actors::cluster::ClusterContext::standalone(
            &node_id,
            &http,
            &roles.names(),
            metrics.clone(),
        ))
    };
    let tenant_limits = Arc::new(ignis_actors::overrides::TenantLimits::new(
        config.limits.clone(),
        config.query.limits(),
    ));
    if !config.overrides.file.is_empty() {
        tenant_limits
            .load(std::path::Path::new(&config.overrides.file))
            .map_err(|e| config::ConfigError::Invalid(format!("overrides.file: {e}")))?;
    }
    let mut tenants = Tenants::new(
        arbiters.iter().map(actix::Arbiter::handle).collect(),
        wal.clone(),
        blocks,
        metrics.clone(),
        config.query.limits(),
        config.query.max_concurrent_queries,
    )
    .with_ingester_shards(config.server.ingester_shards)
    .with_cluster(cluster.clone())
    .with_roles(roles.clone())
    .with_query_slots(
        config.query.max_concurrent_queries,
        config.query.max_concurrent_queries_per_tenant,
        config.query.max_queued_queries_per_tenant,
    )
    .with_limits(tenant_limits.clone())
    .with_split(ignis_actors::SplitSettings {
        max_query_parallelism: config.query.max_query_parallelism.max(1),
        sub_query_timeout: secs(config.query.sub_query_timeout_secs.max(1)),
        interval: secs(config.query.results_cache_interval_secs.max(60)),
    });
    ignis_query::lane::set_bulk_nice(config.query.bulk_nice);
    ignis_query::lane::set_bulk_idle(config.query.bulk_sched_idle);
    if roles.has(roles::QUERY_SCHEDULER) {
        tenants = tenants.with_scheduler(ignis_actors::scheduler::Scheduler::new(
            config.query.max_outstanding_per_tenant,
            metrics.clone(),
        ));
    }
    let store_gateway = match (&blocks_store, roles.has(roles::STORE_GATEWAY)) {
        (Some(store), true) => {
            let sg = Arc::new(ignis_actors::store_gateway::StoreGateway::open(
                store.clone(),
                &config.storage.data_dir.join("index"),
                config.storage.block_cache_bytes,
                config.storage.block_file_cache_bytes,
                config.storage.parquet_footer_cache_bytes,
                metrics.clone(),
            )?);
            sg.set_retention(retention.clone());
            let c = cluster.clone();
            sg.set_owner(Arc::new(move |tenant: &str, ulid: &str| {
                c.owns_block(tenant, ulid)
            }));
            tenants = tenants.with_store_gateway(sg.clone());
            Some(sg)
        }
        _ => None,
    };
    if store_gateway.is_some() && config.query.results_cache_bytes > 0 {
        // An interval is settled once its data is in blocks the
        // store-gateway indexed: a head cut, shipped and listed.
        let s = &config.storage;
        let settle = s
            .max_block_duration_secs
            .saturating_add(s.block_check_interval_secs)
            .saturating_add(s.block_sync_interval_secs.saturating_mul(2))
            .saturating_add(60);
        let cache = ignis_actors::results_cache::ResultsCache::open(
            &config.storage.data_dir.join("results-cache"),
            config.query.results_cache_bytes,
            secs(config.query.results_cache_interval_secs),
            secs(settle),
            metrics.clone(),
        )
        .map_err(|e| config::ConfigError::Invalid(format!("query.results_cache_bytes: {e}")))?;
        tenants = tenants.with_results_cache(cache);
    }
    let tenants = Arc::new(tenants);
    // Only ingesters and store-gateways hold data; other roles read it from them.
    if roles.has(roles::INGESTER) || roles.has(roles::STORE_GATEWAY) {
        let started = Instant::now();
        let (blocks_loaded, replayed) = tenants.load().await?;
        tracing::info!(
            blocks = blocks_loaded,
            wal_records = replayed.records,
            wal_profiles = replayed.profiles,
            wal_bytes = replayed.bytes,
            elapsed = ?started.elapsed(),
            "loaded blocks and replayed the WAL"
        );
    }
    let hint_loop = cluster.spawn_hint_delivery(std::time::Duration::from_millis(500));
    // Querier workers pull from every query-scheduler; a scheduler re-queues
    // the jobs of queriers that left.
    let worker_loop = (roles.has(roles::QUERIER) || roles.has(roles::QUERY_SCHEDULER)).then(|| {
        let per_scheduler = match config.query.querier_workers {
            0 => config.query.max_concurrent_queries,
            n => n,
        };
        ignis_actors::worker::spawn(
            tenants.clone(),
            per_scheduler.clamp(1, config::MAX_THREADS),
            std::time::Duration::from_secs(1),
        )
    });
    let compaction_loop = match (&blocks_store, roles.has(roles::COMPACTOR)) {
        (Some(store), true) => {
            let bucket = match &store_gateway {
                Some(sg) => sg.bucket(),
                None => Arc::new(ignis_query::bucket::Bucket::new(
                    store.operator().clone(),
                    usize::try_from(config.storage.parquet_footer_cache_bytes)
                        .unwrap_or(usize::MAX),
                )),
            };
            let compactor = Arc::new(
                ignis_actors::compactor::Compactor::new(
                    store.clone(),
                    Arc::new(ignis_query::block_read::BlockReader::new(bucket)?),
                    cluster.clone(),
                    config.compactor.settings(),
                    store_gateway.clone(),
                    metrics.clone(),
                )
                .with_retention(retention.clone()),
            );
            Some(ignis_actors::compactor::spawn_loop(
                compactor,
                secs(config.compactor.interval_secs.max(1)),
            ))
        }
        _ => None,
    };
    let sync_loop = store_gateway.map(|sg| {
        let every = secs(config.storage.block_sync_interval_secs.max(1));
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                match sg.refresh().await {
                    Ok(r) if r.added + r.removed > 0 => {
                        tracing::info!(
                            blocks = r.blocks,
                            added = r.added,
                            removed = r.removed,
                            "block index refreshed"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "listing the bucket failed; the index is kept")
                    }
                }
            }
        })
    });
    let overrides_loop = (!config.overrides.file.is_empty()).then(|| {
        let (t, m) = (tenants.clone(), metrics.clone());
        actix_web::rt::spawn(ignis_actors::overrides::watch(
            tenant_limits.clone(),
            config.overrides.file.clone().into(),
            secs(config.overrides.reload_secs.max(1)),
            move |changed| t.apply_limits(changed),
            move |_| {
                m.overrides_reload_failures.inc();
            },
        ))
    });
    let flush_loop = ignis_actors::shipper::spawn_flush_loop(
        tenants.clone(),
        secs(config.storage.block_check_interval_secs.max(1)),
    );
    let scrape_status = Arc::new(ignis_actors::scrape::ScrapeStatus::default());
    if roles.serves_writes() && !config.scrape.targets.is_empty() {
        start_scrapers(&config, &tenants, &scrape_status, &metrics)?;
    }
    let workers = if config.server.http_workers == 0 {
        cores()
    } else {
        config.server.http_workers
    };
    let ui = config.ui.enabled;
    let config = Arc::new(config);
    let tenants_for_shutdown = tenants.clone();
    let state = web::Data::new(AppState {
        tenants,
        config: config.clone(),
        metrics: metrics.clone(),
        scrape: scrape_status,
    });
    tracing::info!(address = %listener.local_addr()?, roles = ?roles.names(), "ignis node listening");
    let auth = Arc::new(config.auth.clone());
    let tls = match (
        config.server.tls_cert_file.as_str(),
        config.server.tls_key_file.as_str(),
    ) {
        ("", _) => None,
        (cert, key) => Some(
            tls::ReloadingCert::open(cert.as_ref(), key.as_ref())
                .map_err(|e| config::ConfigError::Invalid(format!("server.tls_cert_file: {e}")))?,
        ),
    };
    // The OTLP port (off by default): one more listener of the same
    // server, answering only the OTLP export paths (gRPC and OTLP/HTTP).
    let mut listeners = vec![grpc::mux::Listener {
        socket: listener,
        only: None,
    }];
    match config.server.otlp_grpc_listen_address.as_str() {
        address if !address.is_empty() && roles.serves_writes() => {
            let socket = TcpListener::bind(address).map_err(|source| NodeError::Bind {
                address: address.to_string(),
                source,
            })?;
            tracing::info!(address = %socket.local_addr()?, "OTLP listening (gRPC and HTTP)");
            listeners.push(grpc::mux::Listener {
                socket,
                only: Some(&http::otlp::PATHS),
            });
        }
        _ => {}
    }
    let tls_loop = tls
        .as_ref()
        .map(|t| t.spawn_reloader(secs(config.server.tls_reload_secs.max(1))));
    // The App the main port serves: HTTP/1.1 through actix-http, HTTP/2
    // (h2c or TLS; gRPC needs its trailers) through hyper (src/grpc).
    let app = move || {
        let metrics = metrics.clone();
        let auth = auth.clone();
        let roles = roles.clone();
        App::new()
            .app_data(state.clone())
            .configure(move |cfg| http::routes(cfg, &roles, ui))
            .default_service(web::to(http::not_found))
            .wrap_fn({
                let auth = auth.clone();
                move |req, srv| {
                    let checked = if auth.enabled {
                        auth::check(&auth, &req)
                    } else {
                        Ok(())
                    };
                    let fut = checked.map(|()| srv.call(req));
                    async move {
                        match fut {
                            Ok(fut) => fut.await,
                            Err(e) => Err(actix_web::Error::from(e)),
                        }
                    }
                }
            })
            .wrap_fn(move |req, srv| {
                let start = Instant::now();
                let route = req
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".to_string());
                let method = req.method().to_string();
                let span = tracing::debug_span!("http", %method, %route);
                let fut = srv.call(req);
                let metrics = metrics.clone();
                async move {
                    let res = fut.await?;
                    let elapsed = start.elapsed();
                    let status = res.status().as_u16();
                    tracing::debug!(status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
                    let labels = vec![
                        ("route", route),
                        ("method", method),
                        ("status", status.to_string()),
                    ];
                    metrics
                        .request_duration
                        .get_or_create(&labels)
                        .observe(elapsed.as_secs_f64());
                    Ok(res)
                }
                .instrument(span)
            })
            .wrap(Compress::default())
            .wrap(grpc::web::GrpcWeb)
    };
    let (stopping, stop_rx) = tokio::sync::watch::channel(false);
    let server = grpc::mux::server(
        listeners,
        workers,
        app,
        tls.as_ref().map(|cert| Arc::new(cert.server_config())),
        stop_rx,
    )?;
    let handle = server.handle();
    cluster.membership.set_ready(true).await;
    let _ = ready.send(());
    let leaving = cluster.clone();
    actix_web::rt::spawn(async move {
        shutdown.await;
        // Leave the ring first, so peers stop sending before this node stops.
        leaving.membership.leave().await;
        let _ = stopping.send(true);
        handle.stop(true).await;
    });
    server.await?;
    flush_loop.abort();
    if let Some(l) = tls_loop {
        l.abort();
    }
    if let Some(l) = overrides_loop {
        l.abort();
    }
    if let Some(l) = compaction_loop {
        l.abort();
    }
    if let Some(l) = sync_loop {
        l.abort();
    }
    hint_loop.abort();
    if let Some(l) = worker_loop {
        l.abort();
    }
    let flushed = tenants_for_shutdown.flush(true).await;
    tracing::info!(?flushed, "flushed heads to blocks");
    if let Some(w) = &wal {
        w.flush()?;
    }
    // Stop the actor threads and wait for them, so every handle on the WAL is
    // gone (and its file lock released) when this returns.
    drop(tenants_for_shutdown);
    for a in &arbiters {
        a.stop();
    }
    for a in arbiters {
        if a.join().is_err() {
            tracing::error!("an actor thread panicked during shutdown");
        }
    }
    let wal_handles = wal.as_ref().map_or(0, Arc::strong_count);
    if wal_handles > 1 {
        tracing::warn!(wal_handles, "WAL still referenced at shutdown");
    }
    drop(wal);
    tracing::info!("ignis node stopped");
    Ok(())
}
