//! The distributor: routes a tenant's validated profiles to its ingesters.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use ignis_storage::{SplitProfile, encode_record};

use crate::cluster::ClusterContext;
use crate::ingester::{AppendStats, IngesterError, IngesterShards};
use crate::metrics::Metrics;
use crate::rate::{IngestRate, TokenBucket};
use crate::series_limit::ActiveSeries;
use crate::supervisor::Backoff;

/// Stores profiles decoded from one request.
#[derive(Message)]
#[rtype(result = "Result<AppendStats, IngesterError>")]
pub struct Distribute {
    /// The profiles, already validated and split into series.
    pub profiles: Vec<SplitProfile>,
    /// The same profiles as a WAL record ([`ignis_storage::encode_record`]
    /// for this tenant), when the sender encoded it on its own thread;
    /// encoded on a blocking thread otherwise.
    pub record: Option<Bytes>,
    /// The HTTP endpoint they came from (a metric label).
    pub endpoint: &'static str,
}

/// New ingest limits for a running distributor (its tenant's overrides
/// changed); the rate bucket starts full again.
#[derive(Message, Debug, Clone, PartialEq)]
#[rtype(result = "()")]
pub struct SetLimits {
    /// The ingest rate (`None`: unlimited).
    pub rate: Option<IngestRate>,
    /// Most active series (0: unlimited).
    pub max_series: usize,
}

impl SetLimits {
    /// The distributor's part of `limits`.
    pub fn of(limits: &ignis_ingest::Limits) -> Self {
        Self {
            rate: limits
                .ingest_rate_bytes()
                .map(|(bytes_per_sec, burst)| IngestRate {
                    bytes_per_sec,
                    burst,
                }),
            max_series: limits.max_global_series_per_tenant,
        }
    }
}

/// Routes profiles to the replicas the hash ring picks (acknowledged on
/// quorum); on a standalone node, a ring of one, that is its own ingester.
pub struct Distributor {
    tenant: String,
    ingester: Option<IngesterShards>,
    cluster: Arc<ClusterContext>,
    metrics: Metrics,
    backoff: Backoff,
    /// The tenant's ingest rate limit, if it has one.
    bucket: Option<TokenBucket>,
    /// The tenant's active series, if it has a series limit.
    series: Option<ActiveSeries>,
}

impl Distributor {
    /// A distributor replicating through `cluster`; `ingester` is this
    /// node's, if it runs one (its replica writes are in-process calls).
    pub fn new(
        tenant: String,
        ingester: Option<IngesterShards>,
        cluster: Arc<ClusterContext>,
        metrics: Metrics,
    ) -> Self {
        Self {
            tenant,
            ingester,
            cluster,
            metrics,
            backoff: Backoff::default(),
            bucket: None,
            series: None,
        }
    }

    /// Applies `limits`: pushes over the rate (bytes of their WAL records)
    /// are refused with [`IngesterError::RateLimited`], pushes that would
    /// make more than `max_series` series active ([`crate::series_limit`])
    /// with [`IngesterError::SeriesLimit`], before anything is stored.
    pub fn with_limits(mut self, limits: SetLimits) -> Self {
        self.set_limits(limits);
        self
    }

    /// Replaces the limits; the rate bucket starts full, series already
    /// active stay active.
    fn set_limits(&mut self, limits: SetLimits) {
        self.bucket = limits
            .rate
            .map(|r| TokenBucket::new(r, std::time::Instant::now()));
        match (&mut self.series, limits.max_series) {
            (_, 0) => self.series = None,
            (Some(active), n) => active.set_limit(n),
            (None, n) => self.series = Some(ActiveSeries::new(n)),
        }
    }
}

impl Actor for Distributor {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
        self.backoff.on_start();
    }
}

impl Supervised for Distributor {
    fn restarting(&mut self, ctx: &mut Self::Context) {
        let delay = self.backoff.on_restart();
        self.metrics
            .actor_restarts
            .get_or_create(&vec![
                ("component", "distributor".to_string()),
                ("tenant", self.tenant.clone()),
            ])
            .inc();
        ctx.wait(actix::fut::wrap_future(tokio::time::sleep(delay)));
    }
}

impl Handler<SetLimits> for Distributor {
    type Result = ();

    fn handle(&mut self, msg: SetLimits, _ctx: &mut Self::Context) {
        self.set_limits(msg);
    }
}

impl Handler<Distribute> for Distributor {
    type Result = ResponseFuture<Result<AppendStats, IngesterError>>;

    fn handle(&mut self, msg: Distribute, _ctx: &mut Self::Context) -> Self::Result {
        let plain: u64 = msg
            .profiles
            .iter()
            .map(|p| p.profile.plain_len() as u64)
            .sum();
        if let Some(bucket) = &mut self.bucket {
            // What a push weighs against the rate, as Pyroscope counts it:
            // the decompressed profiles and their series labels (the
            // record holds the client's compressed bytes, which would let
            // a well-compressed push pass for a fraction of its size).
            let labels: u64 = msg
                .profiles
                .iter()
                .flat_map(|p| &p.series)
                .flat_map(|s| s.labels.iter())
                .map(|(k, v)| (k.len() + v.len()) as u64)
                .sum();
            if let Err(over) = bucket.take(plain + labels, std::time::Instant::now()) {
                return Box::pin(async move { Err(IngesterError::RateLimited(over)) });
            }
        }
        if let Some(active) = &mut self.series {
            let fingerprints: Vec<u64> = msg
                .profiles
                .iter()
                .flat_map(|p| &p.series)
                .map(|s| s.labels.fingerprint())
                .collect();
            if let Err(over) = active.admit(&fingerprints, crate::now_ns()) {
                return Box::pin(async move { Err(IngesterError::SeriesLimit(over)) });
            }
        }
        let ingester = self.ingester.clone();
        let metrics = self.metrics.clone();
        let labels = vec![
            ("tenant", self.tenant.clone()),
            ("endpoint", msg.endpoint.to_string()),
        ];
        let profiles = Arc::new(msg.profiles);
        let cluster = self.cluster.clone();
        let tenant = self.tenant.clone();
        let record = msg.record;
        Box::pin(async move {
            // Encoded once, off this actor's thread, for the WAL and replicas.
            let record = match record {
                Some(r) => r,
                None => {
                    let (t, p) = (tenant.clone(), profiles.clone());
                    tokio::task::spawn_blocking(move || encode_record(&t, p.iter()))
                        .await
                        .map_err(|e| IngesterError::Storage(e.to_string()))?
                        .map(Bytes::from)
                        .map_err(|e| IngesterError::Storage(e.to_string()))?
                }
            };
            let stats = cluster
                .replicate(&tenant, profiles, record, ingester)
                .await?;
            metrics
                .ingested_profiles
                .get_or_create(&labels)
                .inc_by(stats.profiles);
            metrics
                .ingested_samples
                .get_or_create(&labels)
                .inc_by(stats.samples);
            metrics
                .ingested_decompressed_bytes
                .get_or_create(&labels)
                .inc_by(plain);
            Ok(stats)
        })
    }
}
