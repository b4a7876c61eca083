//! The ingester: owns a tenant's head and the heads cut from it, appends
//! accepted profiles, and hands readers immutable [`Snapshot`]s. Nothing
//! else holds its state: queries, peers, SQL, WAL replay and the shipper
//! reach it through its messages.

mod segments;
mod shards;

use std::sync::Arc;

use actix::prelude::*;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ignis_storage::block::new_ulid;
use ignis_storage::wal::Durable;
use ignis_storage::{Head, SplitProfile, Wal, encode_record};

use crate::metrics::Metrics;
use crate::sealed::Sealed;
use crate::supervisor::Backoff;

pub use segments::{MergeJob, Segments, Snapshot};
pub use shards::IngesterShards;

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
    /// The tenant's ingest rate limit refused the push (nothing stored).
    #[error("{}", .0.message)]
    RateLimited(crate::rate::OverRate),
    /// The push would make more series active than the tenant may have
    /// (nothing stored).
    #[error("{}", .0.message())]
    SeriesLimit(crate::series_limit::OverSeries),
}

/// Appends validated profiles to the WAL and the head; answers once they
/// are written, with the wait for them to be durable ([`Appended`]).
#[derive(Message)]
#[rtype(result = "Result<Appended, IngesterError>")]
pub struct Append {
    /// The profiles.
    pub profiles: Arc<Vec<SplitProfile>>,
    /// The same profiles as a WAL record ([`ignis_storage::encode_record`]
    /// for this tenant), encoded by the sender so the ingester's thread does
    /// not; encoded here when absent.
    pub record: Option<Bytes>,
}

impl Append {
    /// An append of `profiles` whose record the ingester encodes itself.
    pub fn new(profiles: Arc<Vec<SplitProfile>>) -> Self {
        Self {
            profiles,
            record: None,
        }
    }
}

/// What an [`Append`] stored, and the wait until its WAL record is on
/// disk: the sender acknowledges only after [`Appended::durable`], and the
/// wait (a group commit shared with concurrent appends) wakes the sender
/// directly, not the ingester's thread.
pub struct Appended {
    /// Counters of the append.
    pub stats: AppendStats,
    /// The WAL sync that covers it (none without a WAL).
    durable: Option<Durable>,
}

impl Appended {
    /// Waits until the append is durable; its counters then (a failed
    /// sync is an [`IngesterError::Storage`]).
    pub async fn durable(self) -> Result<AppendStats, IngesterError> {
        if let Some(durable) = self.durable {
            durable
                .wait()
                .await
                .map_err(|e| IngesterError::Storage(e.to_string()))?;
        }
        Ok(self.stats)
    }
}

/// Asks the ingester to stop as it does on an unrecoverable error; its
/// supervisor starts it again with backoff, with its state (tests).
#[cfg(any(test, feature = "testing"))]
#[derive(Message)]
#[rtype(result = "()")]
pub struct Restart;

/// Hands the ingester the head WAL replay rebuilt from its records up to
/// `last_seq`, so the block cut from it records that position and the WAL
/// is truncated behind it (otherwise replayed data would be replayed again
/// at every start).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Replayed {
    /// The replayed profiles.
    pub head: Head,
    /// Highest replayed WAL sequence number of the tenant.
    pub last_seq: u64,
}

/// Asks for a [`Snapshot`] of everything the ingester holds (it answers
/// after every append it received before).
#[derive(Message)]
#[rtype(result = "Snapshot")]
pub struct TakeSnapshot;

/// Asks for the sealed heads, oldest first (the shipper uploads them).
#[derive(Message)]
#[rtype(result = "Vec<Arc<Sealed>>")]
pub struct SealedHeads;

/// Lets go of sealed heads: those stored as blocks `handed_over` (a
/// store-gateway serves them now), and those uploaded longer than `keep` ago.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseSealed {
    /// Blocks a store-gateway has indexed.
    pub handed_over: Vec<String>,
    /// How long an uploaded head stays in memory otherwise.
    pub keep: Duration,
}

/// Holds a tenant's head (or, when the tenant is spread over several
/// ingesters, the head of its share of the series: [`IngesterShards`]).
pub struct Ingester {
    tenant: String,
    /// The WAL stream it appends to ([`ignis_storage::wal::stream_name`]).
    stream: String,
    /// Cut the head once it holds this many bytes (0: no bound).
    max_bytes: u64,
    /// What it last added to the tenant's head gauges (its share of them).
    reported: HeadGauges,
    segments: Segments,
    sealed: Vec<Arc<Sealed>>,
    wal: Option<Arc<Wal>>,
    metrics: Metrics,
    backoff: Backoff,
    /// Last WAL sequence number appended (its data is in `head`).
    last_seq: Option<u64>,
    /// When the current head received its first profile.
    head_since: Option<Instant>,
}

/// Cuts the head into a [`Sealed`] one when it is old or big enough (or always, with `force`).
#[derive(Message)]
#[rtype(result = "Option<Arc<Sealed>>")]
pub struct Cut {
    /// Cut any non-empty head.
    pub force: bool,
    /// Cut a head whose first profile arrived this long ago.
    pub max_age: Duration,
    /// Cut a head holding this many samples.
    pub max_samples: u64,
}

/// An ingester's share of its tenant's head gauges.
#[derive(Debug, Default, Clone, Copy)]
struct HeadGauges {
    series: i64,
    stacks: i64,
    bytes: i64,
}

impl Ingester {
    /// An empty ingester appending to `wal` (when given), then to its head.
    pub fn new(tenant: String, wal: Option<Arc<Wal>>, metrics: Metrics) -> Self {
        Self {
            stream: tenant.clone(),
            tenant,
            max_bytes: 0,
            reported: HeadGauges::default(),
            segments: Segments::default(),
            sealed: Vec::new(),
            wal,
            last_seq: None,
            head_since: None,
            metrics,
            backoff: Backoff::default(),
        }
    }

    /// Appends to WAL stream `stream` (a tenant's shard other than its
    /// first has its own, so each shard's cuts truncate only its records).
    pub fn with_stream(mut self, stream: String) -> Self {
        self.stream = stream;
        self
    }

    /// Cuts the head as soon as it holds `bytes` ([`Head::approx_bytes`];
    /// 0: only the shipper's rounds cut it).
    pub fn with_max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = bytes;
        self
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
        // Futures spawned on the old context (a segment merge) are gone.
        self.segments.cancel_merge();
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
    type Result = Result<Appended, IngesterError>;

    fn handle(&mut self, msg: Append, ctx: &mut Self::Context) -> Self::Result {
        // Written to the WAL and the head in arrival order here (so a cut's
        // WAL position covers exactly what its head holds); the sender
        // acknowledges once the WAL is on disk, a wait shared with
        // concurrent appends (group commit) that does not hold this thread.
        let durable = self.write_wal(&msg)?;
        let stats = self.insert(&msg.profiles, ctx)?;
        Ok(Appended { stats, durable })
    }
}

impl Ingester {
    /// Appends the record of `msg` to the WAL, if there is one.
    fn write_wal(&mut self, msg: &Append) -> Result<Option<Durable>, IngesterError> {
        let Some(wal) = &self.wal else {
            return Ok(None);
        };
        let fail = |e: String| {
            tracing::error!(tenant = %self.tenant, error = %e, "WAL append failed");
            IngesterError::Storage(e)
        };
        let encoded;
        let record = match &msg.record {
            Some(r) => r.as_ref(),
            None => {
                encoded = encode_record(&self.tenant, msg.profiles.iter())
                    .map_err(|e| fail(e.to_string()))?;
                encoded.as_slice()
            }
        };
        let (seq, durable) = wal
            .append_record(&self.stream, record)
            .map_err(|e| fail(e.to_string()))?;
        let tenant = vec![("tenant", self.tenant.clone())];
        self.metrics.wal_appends.get_or_create(&tenant).inc();
        self.metrics
            .wal_bytes
            .get_or_create(&tenant)
            .inc_by(record.len() as u64);
        self.last_seq = Some(seq);
        Ok(Some(durable))
    }

    /// Inserts `profiles` into the head.
    fn insert(
        &mut self,
        profiles: &[SplitProfile],
        ctx: &mut Context<Self>,
    ) -> Result<AppendStats, IngesterError> {
        let mut stats = AppendStats::default();
        self.head_since.get_or_insert_with(Instant::now);
        let head = self.segments.active_mut();
        for p in profiles {
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
        if self.max_bytes > 0 && self.segments.approx_bytes() >= self.max_bytes {
            // Bounded memory: cut here, at the bound, not at the shipper's
            // next round (which may come after many more pushes).
            self.cut("size");
        } else {
            self.report_gauges();
        }
        Ok(stats)
    }

    /// Moves the tenant's head gauges by what changed in this ingester's
    /// share (shards of one tenant add up).
    fn report_gauges(&mut self) {
        let hs = self.segments.stats();
        let now = HeadGauges {
            series: hs.series as i64,
            stacks: hs.stacks as i64,
            bytes: self.segments.approx_bytes() as i64,
        };
        let tenant = vec![("tenant", self.tenant.clone())];
        let m = &self.metrics;
        m.head_series
            .get_or_create(&tenant)
            .inc_by(now.series - self.reported.series);
        m.head_stacks
            .get_or_create(&tenant)
            .inc_by(now.stacks - self.reported.stacks);
        m.head_bytes
            .get_or_create(&tenant)
            .inc_by(now.bytes - self.reported.bytes);
        self.reported = now;
    }

    /// Cuts the head into a [`Sealed`] one, now (it must hold a profile).
    fn cut(&mut self, why: &'static str) -> Arc<Sealed> {
        let profiles = self.segments.stats().profiles;
        let cut = Arc::new(Sealed::new(
            self.segments.take_all(),
            new_ulid(),
            self.last_seq,
            self.stream.clone(),
        ));
        self.sealed.push(cut.clone());
        self.head_since = None;
        self.report_gauges();
        tracing::info!(tenant = %self.tenant, stream = %self.stream, ulid = %cut.ulid, profiles, why, "cut head");
        cut
    }
}

impl Drop for Ingester {
    fn drop(&mut self) {
        // Its share of the gauges leaves with it (a restarted ingester
        // starts from an empty head and reports afresh).
        self.segments = Segments::default();
        self.report_gauges();
    }
}

impl Handler<Cut> for Ingester {
    type Result = Option<Arc<Sealed>>;

    fn handle(&mut self, msg: Cut, _ctx: &mut Self::Context) -> Self::Result {
        let stats = self.segments.stats();
        if stats.profiles == 0 {
            return None;
        }
        let old = self.head_since.is_some_and(|t| t.elapsed() >= msg.max_age);
        let big = msg.max_samples > 0 && stats.samples >= msg.max_samples;
        if !(msg.force || old || big) {
            return None;
        }
        let why = if msg.force {
            "forced"
        } else if old {
            "age"
        } else {
            "samples"
        };
        Some(self.cut(why))
    }
}

impl Handler<TakeSnapshot> for Ingester {
    type Result = MessageResult<TakeSnapshot>;

    fn handle(&mut self, _: TakeSnapshot, ctx: &mut Self::Context) -> Self::Result {
        let heads = self.segments.freeze();
        self.start_merge(ctx);
        MessageResult(Snapshot {
            heads,
            sealed: self.sealed.clone(),
        })
    }
}

impl Ingester {
    /// Merges frozen segments on the blocking pool when enough piled up.
    fn start_merge(&mut self, ctx: &mut Context<Self>) {
        let Some(job) = self.segments.plan_merge() else {
            return;
        };
        let parts = job.parts.clone();
        let merge = tokio::task::spawn_blocking(move || Head::merged(parts.iter().map(|h| &**h)));
        ctx.spawn(actix::fut::wrap_future(merge).map(
            move |merged, act: &mut Self, _ctx| match merged {
                Ok(head) => {
                    if act.segments.finish_merge(job, head) {
                        tracing::debug!(tenant = %act.tenant, segments = act.segments.frozen_len(), "merged head segments");
                    }
                }
                Err(e) => {
                    act.segments.cancel_merge();
                    tracing::error!(tenant = %act.tenant, error = %e, "merging head segments failed");
                }
            },
        ));
    }
}

impl Handler<SealedHeads> for Ingester {
    type Result = MessageResult<SealedHeads>;

    fn handle(&mut self, _: SealedHeads, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.sealed.clone())
    }
}

impl Handler<ReleaseSealed> for Ingester {
    type Result = ();

    fn handle(&mut self, msg: ReleaseSealed, _ctx: &mut Self::Context) {
        self.sealed.retain(|s| {
            !msg.handed_over.contains(&s.ulid) && s.uploaded_for().is_none_or(|t| t < msg.keep)
        });
    }
}

impl Handler<Replayed> for Ingester {
    type Result = ();

    fn handle(&mut self, msg: Replayed, _ctx: &mut Self::Context) {
        self.segments.adopt(msg.head);
        self.last_seq = Some(self.last_seq.map_or(msg.last_seq, |s| s.max(msg.last_seq)));
        if self.segments.stats().profiles > 0 {
            // The head's age counts from the restart, so it is cut by
            // max_block_duration like one filled by pushes.
            self.head_since.get_or_insert_with(Instant::now);
        }
        self.report_gauges();
    }
}

#[cfg(any(test, feature = "testing"))]
impl Handler<Restart> for Ingester {
    type Result = ();

    fn handle(&mut self, _: Restart, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
