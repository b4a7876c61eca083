//! A tenant's ingesters on one node: its series spread over several
//! [`Ingester`] actors (shards), each on its own actor thread with its own
//! head, WAL stream and cuts, so one busy tenant uses every core.
//!
//! A profile goes to the shard its routing key picks (the key the hash
//! ring places it by: tenant and first series), so a series always lands
//! on the same shard. Readers take a snapshot of every shard.

use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;
use futures::future::join_all;
use ignis_storage::SplitProfile;

use super::{Append, AppendStats, Appended, Ingester, IngesterError, Snapshot, TakeSnapshot};
use crate::peer::Batch;

/// The ingesters of one tenant on this node; cheap to clone.
#[derive(Clone)]
pub struct IngesterShards {
    tenant: Arc<str>,
    /// Every shard: those new profiles are routed to first, then any
    /// started only to hold what the WAL replayed of a shard that no
    /// longer takes writes (the node had more shards before).
    addrs: Arc<[Addr<Ingester>]>,
    /// How many of `addrs` take new profiles.
    routing: usize,
}

impl IngesterShards {
    /// Shards of `tenant`: new profiles go to the first `routing` of
    /// `addrs` (at least one).
    pub fn new(tenant: &str, addrs: Vec<Addr<Ingester>>, routing: usize) -> Self {
        let routing = routing.clamp(1, addrs.len().max(1));
        Self {
            tenant: tenant.into(),
            addrs: addrs.into(),
            routing,
        }
    }

    /// Every shard's ingester, the ones taking writes first.
    pub fn all(&self) -> &[Addr<Ingester>] {
        &self.addrs
    }

    /// How many shards take new profiles.
    pub fn routing(&self) -> usize {
        self.routing
    }

    /// These shards and `extra` more (started to hold replayed data);
    /// routing is unchanged.
    pub fn with_extra(&self, extra: Vec<Addr<Ingester>>) -> Self {
        let mut addrs = self.addrs.to_vec();
        addrs.extend(extra);
        Self {
            tenant: self.tenant.clone(),
            addrs: addrs.into(),
            routing: self.routing,
        }
    }

    /// The shard `p` goes to.
    pub fn shard_of(&self, p: &SplitProfile) -> usize {
        if self.routing == 1 {
            return 0;
        }
        // The ring picks nodes by the key's position; the shard by its
        // remainder, so the two choices do not correlate.
        (crate::cluster::routing_key(&self.tenant, p) % self.routing as u64) as usize
    }

    /// Appends `profiles` (whose WAL record, `encode_record` for this
    /// tenant, is `record`): each to its shard, all at once. A batch whose
    /// profiles go to several shards is split, each part with its own
    /// record; it fails if any part fails (the parts stored stay stored, as
    /// a replica's write does).
    pub async fn append(
        &self,
        profiles: Arc<Vec<SplitProfile>>,
        record: Bytes,
    ) -> Result<AppendStats, IngesterError> {
        let mut parts: Vec<Vec<usize>> = vec![Vec::new(); self.routing];
        for (i, p) in profiles.iter().enumerate() {
            parts[self.shard_of(p)].push(i);
        }
        let used: Vec<usize> = (0..self.routing)
            .filter(|&s| !parts[s].is_empty())
            .collect();
        let sends: Vec<_> = match used.as_slice() {
            [] => return Ok(AppendStats::default()),
            [one] => vec![self.addrs[*one].send(Append {
                profiles,
                record: Some(record),
            })],
            many => {
                let mut sends = Vec::with_capacity(many.len());
                for &s in many {
                    let part = Batch::subset(&self.tenant, &profiles, &parts[s])
                        .map_err(|e| IngesterError::Storage(e.to_string()))?;
                    sends.push(self.addrs[s].send(Append {
                        profiles: part.profiles,
                        record: Some(part.record),
                    }));
                }
                sends
            }
        };
        let mut appended = Vec::with_capacity(sends.len());
        for res in join_all(sends).await {
            appended.push(res.map_err(|e| {
                IngesterError::Unavailable(format!("ingester of {}: {e}", self.tenant))
            })??);
        }
        let mut total = AppendStats::default();
        for stats in join_all(appended.into_iter().map(Appended::durable)).await {
            let stats =
                stats.inspect_err(|e| tracing::error!(tenant = %self.tenant, error = %e))?;
            total.profiles += stats.profiles;
            total.samples += stats.samples;
        }
        Ok(total)
    }

    /// What every shard holds, as one snapshot (each shard's segments and
    /// sealed heads side by side; they hold different series).
    pub async fn snapshot(&self) -> Result<Snapshot, MailboxError> {
        let mut out = Snapshot {
            heads: Vec::new(),
            sealed: Vec::new(),
        };
        for s in join_all(self.addrs.iter().map(|a| a.send(TakeSnapshot))).await {
            let s = s?;
            out.heads.extend(s.heads);
            out.sealed.extend(s.sealed);
        }
        Ok(out)
    }
}
