//! The write-ahead log: every accepted push is appended here (rkyv records in
//! a sled tree, keyed by a big-endian sequence number) before it is
//! acknowledged, and replayed into the heads when a node starts.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::head::SplitProfile;
use crate::record::{decode_record, encode_record};

/// When an append is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WalSync {
    /// fsync before the append returns: an acknowledged push survives a crash.
    Always,
    /// fsync every `flush_interval`: faster, but a crash loses up to that much.
    Batched,
}

/// A WAL that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// The underlying store failed.
    #[error("WAL storage error: {0}")]
    Store(#[from] sled::Error),
    /// A record could not be encoded.
    #[error("WAL record encoding failed: {0}")]
    Encode(String),
    /// A stored record is corrupt.
    #[error("WAL record {seq} is corrupt: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

/// What a replay read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Records read.
    pub records: u64,
    /// Profiles in them.
    pub profiles: u64,
    /// Record bytes read.
    pub bytes: u64,
}

/// A node's write-ahead log: one sled tree per tenant, records keyed by a
/// node-wide monotonic sequence number.
pub struct Wal {
    db: sled::Db,
    epoch: String,
    sync: WalSync,
}

const TREE_PREFIX: &str = "tenant/";

impl Wal {
    /// Opens (or creates) the WAL in `dir`.
    pub fn open(dir: &Path, sync: WalSync, flush_interval: Duration) -> Result<Self, WalError> {
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(Some(flush_interval.as_millis().max(1) as u64))
            .open()?;
        let epoch = match db.get("epoch")? {
            Some(v) => String::from_utf8_lossy(&v).into_owned(),
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let seed = format!("{}/{now}/{}", dir.display(), std::process::id());
                let epoch = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()));
                db.insert("epoch", epoch.as_bytes())?;
                db.flush()?;
                epoch
            }
        };
        Ok(Self { db, epoch, sync })
    }

    /// Identifies this WAL: sequence numbers are only comparable within one epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn tree(&self, tenant: &str) -> Result<sled::Tree, WalError> {
        Ok(self.db.open_tree(format!("{TREE_PREFIX}{tenant}"))?)
    }

    /// Appends one push of `tenant`; returns its sequence number and size.
    /// With [`WalSync::Always`] the record is on disk when this returns.
    pub fn append(
        &self,
        tenant: &str,
        profiles: &[SplitProfile],
    ) -> Result<(u64, usize), WalError> {
        let bytes = encode_record(tenant, profiles).map_err(|e| WalError::Encode(e.to_string()))?;
        let seq = self.db.generate_id()?;
        self.tree(tenant)?
            .insert(seq.to_be_bytes(), bytes.as_slice())?;
        if self.sync == WalSync::Always {
            self.db.flush()?;
        }
        Ok((seq, bytes.len()))
    }

    /// Forces everything appended so far to disk.
    pub fn flush(&self) -> Result<(), WalError> {
        self.db.flush()?;
        Ok(())
    }

    /// Calls `f(seq, tenant, profiles)` for every record, tenant by tenant in
    /// append order, logging progress every few seconds.
    pub fn replay(
        &self,
        mut f: impl FnMut(u64, &str, Vec<SplitProfile>),
    ) -> Result<ReplayStats, WalError> {
        let mut stats = ReplayStats::default();
        let started = Instant::now();
        let mut last_log = Instant::now();
        for name in self.db.tree_names() {
            let Some(tenant) = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| n.strip_prefix(TREE_PREFIX))
            else {
                continue;
            };
            let tree = self.db.open_tree(&name)?;
            for item in tree.iter() {
                let (k, v) = item?;
                let seq = seq_of(&k).ok_or_else(|| WalError::Corrupt {
                    seq: 0,
                    reason: "bad key".into(),
                })?;
                let (_, profiles) = decode_record(&v).map_err(|e| WalError::Corrupt {
                    seq,
                    reason: e.to_string(),
                })?;
                stats.records += 1;
                stats.profiles += profiles.len() as u64;
                stats.bytes += v.len() as u64;
                f(seq, tenant, profiles);
                if last_log.elapsed() > Duration::from_secs(2) {
                    last_log = Instant::now();
                    tracing::info!(records = stats.records, tenant, elapsed = ?started.elapsed(), "replaying WAL");
                }
            }
        }
        Ok(stats)
    }

    /// Deletes `tenant`'s records up to and including `seq` (once they are in a block).
    pub fn truncate_through(&self, tenant: &str, seq: u64) -> Result<u64, WalError> {
        let tree = self.tree(tenant)?;
        let mut removed = 0;
        for item in tree.range(..=seq.to_be_bytes()) {
            let (k, _) = item?;
            tree.remove(k)?;
            removed += 1;
        }
        self.db.flush()?;
        Ok(removed)
    }

    /// Records currently in the WAL, over all tenants.
    pub fn len(&self) -> usize {
        self.db
            .tree_names()
            .iter()
            .filter(|n| n.starts_with(TREE_PREFIX.as_bytes()))
            .filter_map(|n| self.db.open_tree(n).ok())
            .map(|t| t.len())
            .sum()
    }

    /// True when the WAL holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::head::SeriesSplit;
    use crate::labels::Labels;
    use crate::proto::google::v1 as pprof;

    fn profile(ts: i64, value: i64) -> SplitProfile {
        SplitProfile {
            profile_id: crate::record::new_profile_id(),
            profile: pprof::Profile {
                string_table: vec!["".into(), "f".into()],
                function: vec![pprof::Function {
                    id: 1,
                    name: 1,
                    ..Default::default()
                }],
                location: vec![pprof::Location {
                    id: 1,
                    line: vec![pprof::Line {
                        function_id: 1,
                        line: 3,
                    }],
                    ..Default::default()
                }],
                sample: vec![pprof::Sample {
                    location_id: vec![1],
                    value: vec![value],
                    label: vec![],
                }],
                ..Default::default()
            },
            timestamp_ns: ts,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([("a", "b")]),
                value_index: 0,
                samples: vec![0],
            }],
        }
    }

    #[test]
    fn appends_survive_reopen_in_order_and_truncate() {
        let dir = tempfile::tempdir().unwrap();
        {
            let wal = Wal::open(dir.path(), WalSync::Always, Duration::from_millis(100)).unwrap();
            assert_eq!(wal.append("t1", &[profile(1, 5)]).unwrap().0, 0);
            assert_eq!(
                wal.append("t2", &[profile(2, 6), profile(3, 7)]).unwrap().0,
                1
            );
        }
        let wal = Wal::open(dir.path(), WalSync::Always, Duration::from_millis(100)).unwrap();
        let mut seen = Vec::new();
        let stats = wal
            .replay(|seq, tenant, ps| {
                for p in ps {
                    seen.push((
                        seq,
                        tenant.to_string(),
                        p.timestamp_ns,
                        p.profile.sample[0].value[0],
                        p.series[0].labels.clone(),
                    ));
                }
            })
            .unwrap();
        assert_eq!(stats.records, 2);
        assert_eq!(stats.profiles, 3);
        assert_eq!(seen[2].1, "t2");
        assert_eq!(
            (seen[2].2, seen[2].3, &seen[2].4),
            (3, 7, &Labels::from_pairs([("a", "b")]))
        );
        let last_t2 = seen[2].0;
        let (seq, _) = wal.append("t1", &[profile(4, 1)]).unwrap();
        assert!(
            seq > seen.iter().map(|s| s.0).max().unwrap(),
            "sequence grows across reopen"
        );
        let epoch = wal.epoch().to_string();
        assert_eq!(wal.truncate_through("t2", last_t2).unwrap(), 1);
        assert_eq!(wal.len(), 2);
        assert_eq!(wal.truncate_through("t1", seq).unwrap(), 2);
        assert!(wal.is_empty());
        drop(wal);
        let wal = Wal::open(dir.path(), WalSync::Always, Duration::from_millis(100)).unwrap();
        assert_eq!(wal.epoch(), epoch);
    }
}
