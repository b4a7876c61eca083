//! The write-ahead log: every accepted push is appended here (rkyv records in
//! a sled tree, keyed by a big-endian sequence number) before it is
//! acknowledged, and replayed into the heads when a node starts.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
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
    /// Syncing to disk failed: the record may not be durable.
    #[error("WAL sync failed: {0}")]
    Sync(String),
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
    group: Arc<GroupCommit>,
    sync_thread: Option<std::thread::JoinHandle<()>>,
}

/// Group commit: appends wait for the next fsync that starts after they
/// were written, and one fsync serves every append waiting for it, so
/// concurrent pushes share disk syncs and no actor thread blocks on one.
///
/// Under load, syncs start at most once per commit window (see
/// [`Wal::set_commit_window`]): each sync then covers every append of its
/// window. A sync costs far more than its disk write (sled seals a buffer
/// and wakes its IO threads), so a sync per push would spend a fifth of the
/// node's CPU on it. An append after a quiet spell is synced at once.
struct GroupCommit {
    state: Mutex<GroupState>,
    /// Wakes the sync thread.
    kick: Condvar,
    /// Number of completed syncs; waiters watch it.
    done: tokio::sync::watch::Sender<GroupDone>,
    /// The least time between the starts of two syncs, in microseconds.
    window_us: AtomicU64,
}

#[derive(Default)]
struct GroupState {
    /// Syncs started so far.
    started: u64,
    /// A sync has been asked for and not started yet.
    wanted: bool,
    /// The WAL was dropped: the sync thread exits.
    closed: bool,
}

/// The last completed sync: its number and, if it failed, why.
#[derive(Clone, Default)]
struct GroupDone {
    completed: u64,
    error: Option<String>,
}

impl GroupCommit {
    fn new() -> Self {
        Self {
            state: Mutex::new(GroupState::default()),
            kick: Condvar::new(),
            done: tokio::sync::watch::Sender::new(GroupDone::default()),
            window_us: AtomicU64::new(DEFAULT_COMMIT_WINDOW.as_micros() as u64),
        }
    }

    /// Asks for a sync and returns the number of the first sync that will
    /// cover everything written before this call.
    fn request(&self) -> u64 {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.wanted = true;
        self.kick.notify_one();
        st.started + 1
    }

    /// The sync thread: waits for requests and runs one flush for all of them.
    fn run(&self, db: &sled::Db) {
        let mut last_start: Option<Instant> = None;
        loop {
            if !self.wait_wanted() {
                return;
            }
            // Under load, let the window since the last sync fill up:
            // appends arriving meanwhile join this sync (they ask for the
            // one numbered `started + 1`, which is the one about to start).
            let window = Duration::from_micros(self.window_us.load(Ordering::Relaxed));
            if let Some(rest) = last_start.and_then(|t| window.checked_sub(t.elapsed())) {
                std::thread::sleep(rest);
            }
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.closed {
                    return;
                }
                st.wanted = false;
                st.started += 1;
            }
            last_start = Some(Instant::now());
            let error = db.flush().err().map(|e| e.to_string());
            if let Some(e) = &error {
                tracing::error!(error = %e, "WAL sync failed");
            }
            self.done.send_modify(|d| {
                d.completed += 1;
                d.error = error;
            });
        }
    }

    /// Blocks until a sync is wanted (true) or the WAL closed (false).
    fn wait_wanted(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while !st.wanted && !st.closed {
            st = self.kick.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        !st.closed
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.kick.notify_one();
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.group.close();
        // The thread holds a handle on the database: wait for it, so the
        // directory can be opened again as soon as this returns.
        if let Some(t) = self.sync_thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits until an appended record is on disk (see [`Wal::durable`]).
pub struct Durable {
    target: Option<u64>,
    rx: tokio::sync::watch::Receiver<GroupDone>,
}

impl Durable {
    /// Resolves once the record is durable, or with the sync's error.
    pub async fn wait(mut self) -> Result<(), WalError> {
        let Some(target) = self.target else {
            return Ok(());
        };
        let done = self
            .rx
            .wait_for(|d| d.completed >= target)
            .await
            .map_err(|_| WalError::Sync("the WAL was closed".into()))?;
        match &done.error {
            // The sync that covered this record failed.
            Some(e) if done.completed == target => Err(WalError::Sync(e.clone())),
            _ => Ok(()),
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

/// Bytes of the WAL's pages sled keeps in memory. The WAL is written and
/// then only read back on replay: sled's default (1 GiB) held every
/// record since the last cut in memory, which under sustained ingest was
/// most of the node's resident memory.
const WAL_CACHE_BYTES: u64 = 32 << 20;

/// The default commit window of [`WalSync::Always`]: at most one sync per
/// millisecond under load (an acknowledgement waits at most this much longer).
pub const DEFAULT_COMMIT_WINDOW: Duration = Duration::from_millis(1);

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
    /// Opens (or creates) the WAL in `dir`.
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
        let group = Arc::new(GroupCommit::new());
        let sync_thread = if sync == WalSync::Always {
            let (g, d) = (group.clone(), db.clone());
            let t = std::thread::Builder::new()
                .name("wal-sync".into())
                .spawn(move || g.run(&d))
                .map_err(|e| WalError::Sync(format!("cannot start the sync thread: {e}")))?;
            Some(t)
        } else {
            None
        };
        Ok(Self {
            db,
            epoch,
            sync,
            group,
            sync_thread,
        })
    }

    /// Sets the least time between the starts of two group-commit syncs
    /// ([`WalSync::Always`]); zero syncs as soon as asked.
    pub fn set_commit_window(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.group.window_us.store(us, Ordering::Relaxed);
    }

    /// Identifies this WAL: sequence numbers are only comparable within one epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    fn tree(&self, tenant: &str) -> Result<sled::Tree, WalError> {
        Ok(self.db.open_tree(format!("{TREE_PREFIX}{tenant}"))?)
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
        let seq = self.insert(tenant, &bytes)?;
        if self.sync == WalSync::Always {
            self.db.flush()?;
        }
        Ok((seq, bytes.len()))
    }

    /// Appends a record already encoded with [`encode_record`] to `stream`
    /// (a tenant's [`stream_name`]; the encoding can happen off the
    /// caller's thread) without waiting
    /// for the disk: returns its sequence number and a [`Durable`] to await
    /// before acknowledging. With [`WalSync::Always`] concurrent appends
    /// share one fsync (group commit); with [`WalSync::Batched`] it resolves
    /// at once.
    pub fn append_record(&self, stream: &str, record: &[u8]) -> Result<(u64, Durable), WalError> {
        let seq = self.insert(stream, record)?;
        Ok((seq, self.durable()))
    }

    fn insert(&self, tenant: &str, record: &[u8]) -> Result<u64, WalError> {
        let seq = self.db.generate_id()?;
        self.tree(tenant)?.insert(seq.to_be_bytes(), record)?;
        Ok(seq)
    }

    /// A wait for everything appended so far to be on disk (immediate with
    /// [`WalSync::Batched`]).
    pub fn durable(&self) -> Durable {
        let target = (self.sync == WalSync::Always).then(|| self.group.request());
        Durable {
            target,
            rx: self.group.done.subscribe(),
        }
    }

    /// Forces everything appended so far to disk.
    pub fn flush(&self) -> Result<(), WalError> {
        self.db.flush()?;
        Ok(())
    }

    /// Calls `f(seq, stream, profiles)` for every record, stream by stream
    /// ([`stream_name`]: a tenant, or a shard of one) in append order,
    /// logging progress every few seconds.
    pub fn replay(
        &self,
        mut f: impl FnMut(u64, &str, Vec<SplitProfile>),
    ) -> Result<ReplayStats, WalError> {
        let mut stats = ReplayStats::default();
        let started = Instant::now();
        let mut last_log = Instant::now();
        for name in self.db.tree_names() {
            let Some(stream) = std::str::from_utf8(&name)
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
                f(seq, stream, profiles);
                if last_log.elapsed() > Duration::from_secs(2) {
                    last_log = Instant::now();
                    tracing::info!(records = stats.records, stream, elapsed = ?started.elapsed(), "replaying WAL");
                }
            }
        }
        Ok(stats)
    }

    /// Deletes the records of `stream` (a tenant's [`stream_name`]) up to
    /// and including `seq` (once they are in a block).
    pub fn truncate_through(&self, stream: &str, seq: u64) -> Result<u64, WalError> {
        let tree = self.tree(stream)?;
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

    #[test]
    fn stream_names_round_trip_and_the_first_is_the_tenant() {
        assert_eq!(stream_name("acme", 0), "acme");
        assert_eq!(stream_name("acme", 3), "acme#3");
        for (tenant, shard) in [("acme", 0), ("acme", 3), ("a.b-c", 12)] {
            assert_eq!(
                parse_stream(&stream_name(tenant, shard)),
                Some((tenant, shard))
            );
        }
        for bad in ["acme#0", "acme#x", "#2", "acme#"] {
            assert_eq!(parse_stream(bad), None, "{bad}");
        }
    }
    use crate::head::SeriesSplit;
    use crate::labels::Labels;
    use crate::proto::google::v1 as pprof;

    fn profile(ts: i64, value: i64) -> SplitProfile {
        SplitProfile {
            profile_id: crate::ProfileId::generate(),
            profile: crate::FlatProfile::from_proto(&pprof::Profile {
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
            })
            .unwrap(),
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
                        p.profile.sample(0).unwrap().values[0],
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

    /// Appends from several threads at once, each waiting for its group
    /// commit: every one resolves, fewer syncs than appends run, and all
    /// records are there after a reopen.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn group_commit_makes_concurrent_appends_durable() {
        let dir = tempfile::tempdir().unwrap();
        let wal = Arc::new(
            Wal::open(dir.path(), WalSync::Always, Duration::from_millis(10_000)).unwrap(),
        );
        let record = encode_record("t", &[profile(1, 5)]).unwrap();
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (wal, record) = (wal.clone(), record.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..25 {
                    let (_, durable) = wal.append_record("t", &record).unwrap();
                    durable.wait().await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let syncs = wal.group.done.borrow().completed;
        assert!((1..=200).contains(&syncs), "{syncs} syncs for 200 appends");
        // Batched mode never waits.
        drop(Arc::try_unwrap(wal).ok().unwrap());
        let wal = Wal::open(dir.path(), WalSync::Batched, Duration::from_millis(100)).unwrap();
        assert!(wal.durable().target.is_none());
        let stats = wal.replay(|_, _, _| {}).unwrap();
        assert_eq!(stats.records, 200);
    }
}
