//! The scrape actor: one per target, pulling each of its profiles on the
//! configured interval and storing them through the tenant's distributor.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use ignis_storage::{Labels, SplitProfile, names};
use parking_lot::Mutex;

use super::config::{ScrapeConfig, ScrapeTargetConfig};
use super::delta::{DeltaOutcome, DeltaState};
use super::kind::ProfileKind;
use super::status::{ProfileHealth, ScrapeStatus};
use crate::Tenants;
use crate::distributor::Distribute;
use crate::metrics::Metrics;
use ignis_ingest::Limits;
use ignis_ingest::legacy::decode_pprof;
use ignis_ingest::split::{SplitInput, split_proto};

/// Everything a scraper needs besides its target.
#[derive(Clone)]
pub struct ScrapeContext {
    /// Intervals, timeouts and size limits.
    pub config: Arc<ScrapeConfig>,
    /// Where scraped profiles go.
    pub tenants: Arc<Tenants>,
    /// Ingest limits (the same as for pushed profiles).
    pub limits: Limits,
    /// Tenant of targets that name none.
    pub default_tenant: String,
    /// Health shown on `/scrape`.
    pub status: Arc<ScrapeStatus>,
    /// Node metrics.
    pub metrics: Metrics,
    /// HTTP client shared by all scrapers.
    pub client: reqwest::Client,
}

/// Scrapes one target.
pub struct Scraper {
    ctx: ScrapeContext,
    target: Arc<ScrapeTargetConfig>,
    key: String,
    tenant: String,
    labels: Labels,
    deltas: HashMap<ProfileKind, Arc<Mutex<DeltaState>>>,
    in_flight: HashSet<ProfileKind>,
}

impl Scraper {
    /// A scraper of `target` (validated by [`ScrapeConfig::validate`]).
    pub fn new(ctx: ScrapeContext, target: ScrapeTargetConfig) -> Self {
        let key = target.base_url().unwrap_or_else(|_| target.url.clone());
        let tenant = target
            .tenant
            .clone()
            .unwrap_or_else(|| ctx.default_tenant.clone());
        let mut labels = Labels::default();
        for (k, v) in &target.labels {
            labels.insert(k, v);
        }
        labels.insert(names::SERVICE_NAME, target.service());
        labels.insert("instance", target.instance());
        for &kind in &target.profiles {
            ctx.status.register(ProfileHealth {
                url: key.clone(),
                profile: kind,
                service_name: target.service(),
                tenant: tenant.clone(),
                health: "unknown",
                last_scrape_ms: 0,
                last_duration_ms: 0,
                last_error: String::new(),
                last_outcome: "",
                scrapes: 0,
                failures: 0,
                stored: 0,
            });
        }
        Self {
            ctx,
            target: Arc::new(target),
            key,
            tenant,
            labels,
            deltas: HashMap::new(),
            in_flight: HashSet::new(),
        }
    }

    /// Whether this node scrapes the target: always on a single node; in a
    /// cluster, the live write node that rendezvous hashing picks for it, so
    /// exactly one node scrapes each target (and keeps its delta baseline).
    fn owns_target(&self) -> bool {
        let cluster = self.ctx.tenants.cluster();
        let members = cluster.membership.members();
        let owner = members
            .iter()
            .filter(|m| {
                m.state == ignis_cluster::MemberState::Alive
                    && !m.leaving
                    && m.has_role(ignis_cluster::roles::DISTRIBUTOR)
            })
            .max_by_key(|m| {
                xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{}", self.key, m.node_id).as_bytes())
            });
        owner.is_none_or(|m| m.node_id == cluster.node_id)
    }

    fn tick(&mut self, kind: ProfileKind, ctx: &mut Context<Self>) {
        let delta = self.deltas.entry(kind).or_default().clone();
        if !self.owns_target() {
            delta.lock().clear();
            self.ctx
                .status
                .update(&self.key, kind, |h| h.health = "elsewhere");
            return;
        }
        if !self.in_flight.insert(kind) {
            tracing::debug!(target = %self.key, %kind, "previous scrape still running; skipped");
            return;
        }
        let job = Job {
            url: self.target.url_for(kind, self.ctx.config.cpu_seconds()),
            timeout: self.ctx.config.timeout(kind),
            kind,
            labels: self.labels.clone(),
            tenant: self.tenant.clone(),
            delta,
            ctx: self.ctx.clone(),
        };
        let started = Instant::now();
        let fut = job.run().into_actor(self).map(move |result, act, _| {
            act.in_flight.remove(&kind);
            act.record(kind, started.elapsed(), result);
        });
        ctx.spawn(fut);
    }

    fn record(&self, kind: ProfileKind, took: Duration, result: Result<Outcome, String>) {
        let m = &self.ctx.metrics;
        let labels = vec![
            ("target", self.key.clone()),
            ("profile", kind.as_str().to_string()),
        ];
        m.scrape_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        let ok = result.is_ok();
        m.scrape_up.get_or_create(&labels).set(i64::from(ok));
        let mut with_outcome = labels.clone();
        with_outcome.push((
            "outcome",
            match &result {
                Ok(o) => o.as_str().to_string(),
                Err(_) => "error".to_string(),
            },
        ));
        m.scrapes.get_or_create(&with_outcome).inc();
        if let Err(e) = &result {
            tracing::warn!(target = %self.key, %kind, error = %e, "scrape failed");
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.ctx.status.update(&self.key, kind, |h| {
            h.scrapes += 1;
            h.last_scrape_ms = now_ms;
            h.last_duration_ms = took.as_millis() as u64;
            match result {
                Ok(outcome) => {
                    h.health = "up";
                    h.last_error.clear();
                    h.last_outcome = outcome.as_str();
                    if outcome == Outcome::Stored {
                        h.stored += 1;
                    }
                }
                Err(e) => {
                    h.health = "down";
                    h.failures += 1;
                    h.last_error = e;
                }
            }
        });
    }
}

impl Actor for Scraper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let interval = self.ctx.config.interval();
        let interval_ms = interval.as_millis().max(1) as u64;
        for kind in self.target.profiles.clone() {
            // Spread the targets' scrapes over the interval, the same offset
            // every time for a given target and profile.
            let offset =
                xxhash_rust::xxh3::xxh3_64(format!("{}/{kind}", self.key).as_bytes()) % interval_ms;
            ctx.run_later(Duration::from_millis(offset), move |act, ctx| {
                act.tick(kind, ctx);
                ctx.run_interval(interval, move |act, ctx| act.tick(kind, ctx));
            });
        }
        tracing::info!(target = %self.key, profiles = ?self.target.profiles, "scraping");
    }
}

impl Supervised for Scraper {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        self.in_flight.clear();
        self.ctx
            .metrics
            .actor_restarts
            .get_or_create(&vec![
                ("component", "scraper".to_string()),
                ("tenant", self.tenant.clone()),
            ])
            .inc();
    }
}

/// What a successful scrape did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// A profile was stored.
    Stored,
    /// First scrape of a cumulative profile: kept as the baseline.
    Baseline,
    /// A counter went backwards (the target restarted): new baseline.
    Reset,
    /// Nothing happened since the last scrape.
    Empty,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Baseline => "baseline",
            Outcome::Reset => "reset",
            Outcome::Empty => "empty",
        }
    }
}

/// One scrape of one profile.
struct Job {
    url: String,
    timeout: Duration,
    kind: ProfileKind,
    labels: Labels,
    tenant: String,
    delta: Arc<Mutex<DeltaState>>,
    ctx: ScrapeContext,
}

impl Job {
    async fn run(self) -> Result<Outcome, String> {
        let body = self.fetch().await?;
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        let limits = self.ctx.limits.clone();
        let (kind, delta) = (self.kind, self.delta.clone());
        let mut labels = self.labels.clone();
        labels.insert(names::METRIC_NAME, kind.metric());
        // Decoding and diffing cost a few ms of CPU: keep them off the actor thread.
        let split = tokio::task::spawn_blocking(
            move || -> Result<Result<SplitProfile, Outcome>, String> {
                let p = decode_pprof(&body, &limits).map_err(|e| e.message)?;
                let p = if kind.needs_delta() {
                    let flags: Vec<bool> = p
                        .sample_type
                        .iter()
                        .map(|st| {
                            let name = p
                                .string_table
                                .get(usize::try_from(st.r#type).unwrap_or(usize::MAX))
                                .map_or("", String::as_str);
                            kind.is_cumulative(name)
                        })
                        .collect();
                    match delta.lock().apply(p, &flags) {
                        DeltaOutcome::Baseline => return Ok(Err(Outcome::Baseline)),
                        DeltaOutcome::Reset => return Ok(Err(Outcome::Reset)),
                        DeltaOutcome::Delta(p) => *p,
                    }
                } else {
                    p
                };
                let input = SplitInput {
                    labels,
                    fallback_time_ns: now_ns,
                    now_ns,
                };
                match split_proto(&p, input, &limits).map_err(|e| e.message)? {
                    Some(split) => Ok(Ok(split)),
                    None => Ok(Err(Outcome::Empty)),
                }
            },
        )
        .await
        .map_err(|e| format!("decoding task failed: {e}"))??;
        let split = match split {
            Ok(split) => split,
            Err(outcome) => return Ok(outcome),
        };
        let distributor = self
            .ctx
            .tenants
            .get_or_start(&self.tenant)
            .distributor
            .ok_or("this node does not run the distributor role")?;
        distributor
            .send(Distribute {
                profiles: vec![split],
                record: None,
                endpoint: "scrape",
            })
            .await
            .map_err(|e| format!("distributor unavailable: {e}"))?
            .map_err(|e| format!("not stored: {e}"))?;
        Ok(Outcome::Stored)
    }

    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let mut resp = self
            .ctx
            .client
            .get(&self.url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(format!("GET {}: HTTP {status}", self.url));
        }
        let max = self.ctx.config.max_response_bytes;
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?
        {
            if body.len() + chunk.len() > max {
                return Err(format!(
                    "GET {}: response larger than scrape.max_response_bytes ({max})",
                    self.url
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}
