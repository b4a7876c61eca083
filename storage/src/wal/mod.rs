//! The write-ahead log: every accepted push is appended here before it is
//! acknowledged, and replayed into the heads when a node starts.
//!
//! Records (rkyv, [`crate::record`]) are appended to segment files
//! ([`segment`]: framed, checksummed, one `write` each) and made durable by
//! group commit ([`group`]); sled keeps the WAL's small state. Records used
//! to be values in sled trees, which rewrote each one about five times as
//! its B-tree leaves were consolidated and split (6.7x the bytes received
//! reached the disk); a WAL written that way still replays.

mod group;
mod log;
mod segment;
mod spare;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use group::GroupCommit;
pub use group::{DEFAULT_COMMIT_WINDOW, Durable};
pub use log::DEFAULT_SEGMENT_BYTES;
use log::{SegmentLog, SyncFiles};

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
    /// Syncing to disk failed: the record may not be durable.
    #[error("WAL sync failed: {0}")]
    Sync(String),
    /// A segment file could not be read or written.
    #[error("WAL file error: {0}")]
    Io(String),
    /// A stored record is corrupt.
    #[error("WAL record {seq} is corrupt: {reason}")]
    Corrupt {
        /// Its sequence number.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

impl From<std::io::Error> for WalError {
    fn from(e: std::io::Error) -> Self {
        WalError::Io(e.to_string())
    }
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

/// A node's write-ahead log: records of every stream appended to segment
/// files in one node-wide order (sequence numbers), with sled keeping the
/// WAL's own state (its epoch, each stream's truncation mark, the sequence
/// floor) and the records of WALs written before segments, which still
/// replay and truncate.
pub struct Wal {
    db: sled::Db,
    epoch: String,
    sync: WalSync,
    log: Mutex<SegmentLog>,
    files: Arc<SyncFiles>,
    group: Arc<GroupCommit>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.group.close();
        if let Some(t) = self.sync_thread.take() {
            let _ = t.join();
        }
        // A clean stop leaves everything appended on disk.
        if let Err(e) = self.files.sync() {
            tracing::error!(error = %e, "WAL sync at close failed");
        }
    }
}

const TREE_PREFIX: &str = "tenant/";

/// Separates a tenant from its shard in a stream name (`#` is not valid in
/// a tenant id).
const SHARD_SEPARATOR: char = '#';

/// The WAL stream of shard `shard` of `tenant`'s ingesters: the tenant
/// itself for the first (so a WAL written before tenants had shards is the
/// first shard's), `<tenant>#<shard>` for the others. Each stream is
/// truncated on its own, so one shard's cut never drops another's records.
pub fn stream_name(tenant: &str, shard: usize) -> String {
    if shard == 0 {
        tenant.to_string()
    } else {
        format!("{tenant}{SHARD_SEPARATOR}{shard}")
    }
}

/// Bytes of sled's pages kept in memory: sled holds only the WAL's own
/// state and, until they are truncated, records of an older WAL.
const WAL_CACHE_BYTES: u64 = 8 << 20;

/// The directory of the segment files, inside the WAL's.
const SEGMENTS_DIR: &str = "segments";

/// sled key prefix of the streams' truncation marks.
const MARK_PREFIX: &str = "truncated/";

/// sled key of a sequence number past every one used when segments were
/// last deleted (so numbers keep growing when no segment is left).
const SEQ_FLOOR: &str = "seq_floor";

/// The tenant and shard a stream name stands for ([`stream_name`]);
/// `None` when it names no shard.
pub fn parse_stream(stream: &str) -> Option<(&str, usize)> {
    match stream.rsplit_once(SHARD_SEPARATOR) {
        None => Some((stream, 0)),
        Some((tenant, shard)) => {
            let shard: usize = shard.parse().ok()?;
            (shard > 0 && !tenant.is_empty()).then_some((tenant, shard))
        }
    }
}

impl Wal {
    /// Opens (or creates) the WAL in `dir`: indexes its segments (cutting a
    /// torn last record off) and deletes those holding nothing left.
    pub fn open(dir: &Path, sync: WalSync, flush_interval: Duration) -> Result<Self, WalError> {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(WAL_CACHE_BYTES)
            .flush_every_ms(Some(flush_interval.as_millis().max(1) as u64));
        let db = crate::sled_open::open(&config)?;
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
        let mut marks = HashMap::new();
        for item in db.scan_prefix(MARK_PREFIX) {
            let (k, v) = item?;
            if let (Some(stream), Some(seq)) = (
                std::str::from_utf8(&k[MARK_PREFIX.len()..]).ok(),
                seq_of(&v),
            ) {
                marks.insert(stream.to_string(), seq);
            }
        }
        let (mut log, stats) = SegmentLog::open(&dir.join(SEGMENTS_DIR), marks)?;
        if stats.torn > 0 || stats.deleted > 0 {
            tracing::info!(
                torn = stats.torn,
                deleted = stats.deleted,
                "opened the WAL's segments"
            );
        }
        // Past every number used: in segments, when segments were last
        // deleted, and by the sled-keyed records of an older WAL.
        let floor = db.get(SEQ_FLOOR)?.and_then(|v| seq_of(&v)).unwrap_or(0);
        log.set_next_seq(floor.max(db.generate_id()?));
        if let Some(max) = stats.max_seq {
            log.set_next_seq(max + 1);
        }
        let files = log.sync_files();
        let group = Arc::new(GroupCommit::new());
        let period = (sync == WalSync::Batched).then_some(flush_interval);
        let (g, f) = (group.clone(), files.clone());
        let sync_thread = std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || g.run(period, || f.sync()))
            .map_err(|e| WalError::Sync(format!("cannot start the sync thread: {e}")))?;
        Ok(Self {
            db,
            epoch,
            sync,
            log: Mutex::new(log),
            files,
            group,
            sync_thread: Some(sync_thread),
        })
    }

    /// Sets the least time between the starts of two group-commit syncs
    /// ([`WalSync::Always`]); zero syncs as soon as asked.
    pub fn set_commit_window(&self, window: Duration) {
        self.group.set_window(window);
    }

    /// Sets the size past which a segment file is closed and the next one
    /// started (default [`DEFAULT_SEGMENT_BYTES`]).
    pub fn set_segment_bytes(&self, bytes: u64) {
        self.log().set_segment_bytes(bytes);
    }

    /// Identifies this WAL: sequence numbers are only comparable within one epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn log(&self) -> std::sync::MutexGuard<'_, SegmentLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends one push of `tenant` to its first stream; returns its
    /// sequence number and size.
    /// With [`WalSync::Always`] the record is on disk when this returns.
    pub fn append(
        &self,
        tenant: &str,
        profiles: &[SplitProfile],
    ) -> Result<(u64, usize), WalError> {
        let bytes = encode_record(tenant, profiles).map_err(|e| WalError::Encode(e.to_string()))?;
        let seq = self.log().append(tenant, &bytes)?;
        if self.sync == WalSync::Always {
            self.files
                .sync()
                .map_err(|e| WalError::Sync(e.to_string()))?;
        }
        Ok((seq, bytes.len()))
    }

    /// Appends a record already encoded with [`encode_record`] to `stream`
    /// (a tenant's [`stream_name`]; the encoding can happen off the
    /// caller's thread) without waiting
    /// for the disk: returns its sequence number and a [`Durable`] to await
    /// before acknowledging. With [`WalSync::Always`] concurrent appends
    /// share one sync (group commit); with [`WalSync::Batched`] it resolves
    /// at once.
    pub fn append_record(&self, stream: &str, record: &[u8]) -> Result<(u64, Durable), WalError> {
        let seq = self.log().append(stream, record)?;
        Ok((seq, self.durable()))
    }

    /// A wait for everything appended so far to be on disk (immediate with
    /// [`WalSync::Batched`]).
    pub fn durable(&self) -> Durable {
        match self.sync {
            WalSync::Always => self.group.durable(),
            WalSync::Batched => Durable::now(&self.group),
        }
    }

    /// Forces everything appended so far to disk.
    pub fn flush(&self) -> Result<(), WalError> {
        self.files
            .sync()
            .map_err(|e| WalError::Sync(e.to_string()))?;
        self.db.flush()?;
        Ok(())
    }

    /// Calls `f(seq, stream, profiles)` for every record not truncated, in
    /// append order (a stream's records in the order of their sequence
    /// numbers), logging progress every few seconds.
    pub fn replay(
        &self,
        mut f: impl FnMut(u64, &str, Vec<SplitProfile>),
    ) -> Result<ReplayStats, WalError> {
        let mut stats = ReplayStats::default();
        let started = Instant::now();
        let mut last_log = Instant::now();
        let mut each = |seq: u64, stream: &str, record: &[u8]| -> Result<(), WalError> {
            let (_, profiles) = decode_record(record).map_err(|e| WalError::Corrupt {
                seq,
                reason: e.to_string(),
            })?;
            stats.records += 1;
            stats.profiles += profiles.len() as u64;
            stats.bytes += record.len() as u64;
            f(seq, stream, profiles);
            if last_log.elapsed() > Duration::from_secs(2) {
                last_log = Instant::now();
                tracing::info!(records = stats.records, stream, elapsed = ?started.elapsed(), "replaying WAL");
            }
            Ok(())
        };
        // Records of a WAL written before segments: numbered before any
        // segment's.
        for (stream, tree) in self.legacy_trees()? {
            for item in tree.iter() {
                let (k, v) = item?;
                let seq = seq_of(&k).ok_or_else(|| WalError::Corrupt {
                    seq: 0,
                    reason: "bad key".into(),
                })?;
                each(seq, &stream, &v)?;
            }
        }
        let (paths, marks) = {
            let log = self.log();
            (log.segment_paths(), log.marks().clone())
        };
        for path in paths {
            let read = segment::read_segment::<WalError>(&path, |frame| {
                if marks.get(frame.stream).is_some_and(|&m| frame.seq <= m) {
                    return Ok(());
                }
                each(frame.seq, frame.stream, frame.record)
            });
            match read {
                Ok(_) => {}
                // Deleted by a truncation meanwhile.
                Err(WalError::Io(e)) if !path.exists() => {
                    tracing::debug!(segment = %path.display(), error = %e, "segment gone");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(stats)
    }

    /// The sled trees holding records of a WAL written before segments, by stream.
    fn legacy_trees(&self) -> Result<Vec<(String, sled::Tree)>, WalError> {
        let mut trees = Vec::new();
        for name in self.db.tree_names() {
            if let Some(stream) = std::str::from_utf8(&name)
                .ok()
                .and_then(|n| n.strip_prefix(TREE_PREFIX))
            {
                trees.push((stream.to_string(), self.db.open_tree(&name)?));
            }
        }
        Ok(trees)
    }

    /// Deletes the records of `stream` (a tenant's [`stream_name`]) up to
    /// and including `seq` (once they are in a block): returns how many.
    /// Segment files whose every record is truncated are deleted.
    pub fn truncate_through(&self, stream: &str, seq: u64) -> Result<u64, WalError> {
        let mut removed = 0;
        let legacy = format!("{TREE_PREFIX}{stream}");
        if self.db.tree_names().iter().any(|n| n == legacy.as_bytes()) {
            let tree = self.db.open_tree(&legacy)?;
            for item in tree.range(..=seq.to_be_bytes()) {
                let (k, _) = item?;
                tree.remove(k)?;
                removed += 1;
            }
            if tree.is_empty() {
                drop(tree);
                self.db.drop_tree(&legacy)?;
            }
        }
        let (n, settled, mark, next) = {
            let mut log = self.log();
            let (n, settled) = log.truncate(stream, seq);
            (n, settled, log.mark(stream).unwrap_or(seq), log.next_seq())
        };
        removed += n;
        self.db
            .insert(format!("{MARK_PREFIX}{stream}"), &mark.to_be_bytes())?;
        self.db.insert(SEQ_FLOOR, &next.to_be_bytes())?;
        self.db.flush()?;
        for path in &settled {
            log::remove_segment(path);
        }
        Ok(removed)
    }

    /// Records currently in the WAL, over all tenants.
    pub fn len(&self) -> usize {
        let legacy: usize = self
            .legacy_trees()
            .map(|trees| trees.iter().map(|(_, t)| t.len()).sum())
            .unwrap_or(0);
        legacy + self.log().len()
    }

    /// True when the WAL holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Segment files on disk.
    pub fn segments(&self) -> usize {
        self.log().segment_paths().len()
    }
}

fn seq_of(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}
