//! The ingester: owns a tenant's head and appends accepted profiles to it.

use std::sync::Arc;

use actix::prelude::*;
use ignis_storage::{Head, SplitProfile, Wal};
use parking_lot::RwLock;

use crate::metrics::Metrics;
use crate::supervisor::Backoff;

/// Counters of one append.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppendStats {
    /// Profile rows stored (one per series).
    pub profiles: u64,
    /// `(stack, value)` pairs stored.
    pub samples: u64,
}

/// An append that could not be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngesterError {
    /// The head refused the data; the ingester restarts.
    #[error("ingester failed to store the profile: {0}")]
    Storage(String),
    /// The ingester is not running.
    #[error("ingester unavailable: {0}")]
    Unavailable(String),
}

/// Appends validated profiles to the head.
#[derive(Message)]
#[rtype(result = "Result<AppendStats, IngesterError>")]
pub struct Append(pub Arc<Vec<SplitProfile>>);

/// Asks the ingester to stop; its supervisor starts it again with backoff,
/// keeping the head. Sent on unrecoverable errors, and by tests.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

/// Holds a tenant's head.
pub struct Ingester {
    tenant: String,
    head: Arc<RwLock<Head>>,
    wal: Option<Arc<Wal>>,
    metrics: Metrics,
    backoff: Backoff,
}

impl Ingester {
    /// An ingester appending to `wal` (when given), then to `head`.
    pub fn new(
        tenant: String,
        head: Arc<RwLock<Head>>,
        wal: Option<Arc<Wal>>,
        metrics: Metrics,
    ) -> Self {
        Self {
            tenant,
            head,
            wal,
            metrics,
            backoff: Backoff::default(),
        }
    }
}

impl Actor for Ingester {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.backoff.on_start();
        tracing::debug!(tenant = %self.tenant, "ingester started");
    }
}

impl Supervised for Ingester {
    fn restarting(&mut self, ctx: &mut Self::Context) {
        let delay = self.backoff.on_restart();
        tracing::warn!(tenant = %self.tenant, ?delay, restarts = self.backoff.restarts(), "restarting ingester");
        self.metrics
            .actor_restarts
            .get_or_create(&vec![
                ("component", "ingester".to_string()),
                ("tenant", self.tenant.clone()),
            ])
            .inc();
        ctx.wait(actix::fut::wrap_future(tokio::time::sleep(delay)));
    }
}

impl Handler<Append> for Ingester {
    type Result = Result<AppendStats, IngesterError>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        let mut stats = AppendStats::default();
        if let Some(wal) = &self.wal {
            // Durable first: only what is in the WAL is acknowledged.
            let (_, bytes) = wal.append(&self.tenant, &msg.0).map_err(|e| {
                tracing::error!(tenant = %self.tenant, error = %e, "WAL append failed");
                IngesterError::Storage(e.to_string())
            })?;
            let tenant = vec![("tenant", self.tenant.clone())];
            self.metrics.wal_appends.get_or_create(&tenant).inc();
            self.metrics
                .wal_bytes
                .get_or_create(&tenant)
                .inc_by(bytes as u64);
        }
        let mut head = self.head.write();
        for p in msg.0.iter() {
            match head.insert(p) {
                Ok(s) => {
                    stats.profiles += s.profiles;
                    stats.samples += s.samples;
                }
                Err(e) => {
                    // The distributor validates every reference, so this is a bug or
                    // corrupted state: fail loudly and let the supervisor restart us.
                    tracing::error!(tenant = %self.tenant, error = %e, "head rejected a validated profile");
                    ctx.stop();
                    return Err(IngesterError::Storage(e.to_string()));
                }
            }
        }
        let hs = head.stats();
        let tenant = vec![("tenant", self.tenant.clone())];
        self.metrics
            .head_series
            .get_or_create(&tenant)
            .set(hs.series as i64);
        self.metrics
            .head_stacks
            .get_or_create(&tenant)
            .set(hs.stacks as i64);
        Ok(stats)
    }
}

impl Handler<Restart> for Ingester {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
