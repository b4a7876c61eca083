//! The query-frontend's results cache: the merged stacks of one selection
//! over one settled interval (an aligned hour, by default), on local disk
//! (sled), bounded in bytes.
//!
//! An entry's key names the tenant, the selection (matchers, in order), the
//! interval and the blocks that held the interval's data when it was
//! computed (their ULIDs). Compaction replaces blocks, and a late block adds
//! one: either changes the key, so an entry is never served after the
//! blocks under it changed; the old entry ages out. Only intervals the
//! ingesters can no longer add to (older than the settle time: a block cut,
//! shipped and indexed) are cached.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ignis_query::{MergedStacks, Selection};
use parking_lot::Mutex;

use crate::metrics::Metrics;

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("results cache {path}: {reason}")]
pub struct CacheError {
    /// Its directory.
    pub path: String,
    /// What failed.
    pub reason: String,
}

/// Version of the key and value layout: bump to drop old entries.
const LAYOUT: u8 = 1;

/// Merged stacks per (tenant, selection, interval, blocks), on disk.
pub struct ResultsCache {
    /// key → encoded merged stacks.
    entries: sled::Tree,
    /// insertion sequence (big-endian) → key: the eviction order.
    order: sled::Tree,
    max_bytes: u64,
    bytes: AtomicU64,
    next: AtomicU64,
    /// Serializes evictions.
    evicting: Mutex<()>,
    /// Length of the aligned intervals a query is split into.
    pub interval: Duration,
    /// How long after its end an interval is settled.
    pub settle: Duration,
    metrics: Metrics,
}

/// The key of one interval's merge.
pub fn key(tenant: &str, sel: &Selection, blocks: &[String]) -> [u8; 17] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(tenant.as_bytes());
    for m in &sel.matchers {
        field(m.name.as_bytes());
        field(format!("{:?}", m.op).as_bytes());
        field(m.value.as_bytes());
    }
    field(&sel.start_ns.to_le_bytes());
    field(&sel.end_ns.to_le_bytes());
    for b in blocks {
        field(b.as_bytes());
    }
    let mut out = [0u8; 17];
    out[0] = LAYOUT;
    out[1..].copy_from_slice(&h.digest128().to_le_bytes());
    out
}

impl ResultsCache {
    /// Opens (or creates) the cache in `dir`, holding at most `max_bytes`.
    pub fn open(
        dir: &std::path::Path,
        max_bytes: u64,
        interval: Duration,
        settle: Duration,
        metrics: Metrics,
    ) -> Result<Arc<Self>, CacheError> {
        let err = |e: sled::Error| CacheError {
            path: dir.display().to_string(),
            reason: e.to_string(),
        };
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 << 20)
            .open()
            .map_err(err)?;
        let entries = db.open_tree("entries").map_err(err)?;
        let order = db.open_tree("order").map_err(err)?;
        // Entries of another layout (or whose order record was lost) go.
        let mut bytes = 0u64;
        let mut stale = Vec::new();
        for kv in entries.iter() {
            let (k, v) = kv.map_err(err)?;
            if k.first() != Some(&LAYOUT) {
                stale.push(k);
            } else {
                bytes += (k.len() + v.len()) as u64;
            }
        }
        for k in stale {
            entries.remove(k).map_err(err)?;
        }
        let next = order
            .last()
            .map_err(err)?
            .and_then(|(k, _)| <[u8; 8]>::try_from(k.as_ref()).ok())
            .map_or(0, |b| u64::from_be_bytes(b) + 1);
        metrics.results_cache_bytes.set(bytes as i64);
        let cache = Arc::new(Self {
            entries,
            order,
            max_bytes,
            bytes: AtomicU64::new(bytes),
            next: AtomicU64::new(next),
            evicting: Mutex::new(()),
            interval: interval.max(Duration::from_secs(60)),
            settle,
            metrics,
        });
        cache.evict();
        Ok(cache)
    }

    /// The merged stacks stored under `key`, if any (a damaged entry is
    /// dropped and missed).
    pub fn get(&self, key: &[u8]) -> Option<MergedStacks> {
        let bytes = self.entries.get(key).ok()??;
        match MergedStacks::decode(&bytes) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "dropping a damaged results cache entry");
                if self.entries.remove(key).ok().flatten().is_some() {
                    self.sub_bytes((key.len() + bytes.len()) as u64);
                }
                None
            }
        }
    }

    /// Stores `merged` under `key`; the oldest entries go past the bound.
    pub fn put(&self, key: &[u8], merged: &MergedStacks) {
        let Ok(value) = merged.encode() else {
            return;
        };
        let size = (key.len() + value.len()) as u64;
        if size > self.max_bytes / 2 {
            return; // One entry may not push out most of the others.
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let stored = self
            .entries
            .insert(key, value)
            .and_then(|old| self.order.insert(seq.to_be_bytes(), key).map(|_| old));
        match stored {
            Ok(old) => {
                if let Some(old) = old {
                    self.sub_bytes((key.len() + old.len()) as u64);
                }
                let total = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
                self.metrics.results_cache_bytes.set(total as i64);
                if total > self.max_bytes {
                    self.evict();
                }
            }
            Err(e) => tracing::warn!(error = %e, "results cache entry not stored"),
        }
    }

    fn sub_bytes(&self, n: u64) {
        let left = self
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            })
            .unwrap_or(0)
            .saturating_sub(n);
        self.metrics.results_cache_bytes.set(left as i64);
    }

    /// Drops the oldest entries until the cache is within its bound.
    fn evict(&self) {
        let _one = self.evicting.lock();
        while self.bytes.load(Ordering::Relaxed) > self.max_bytes {
            let Ok(Some((seq, key))) = self.order.pop_min() else {
                break;
            };
            drop(seq);
            if let Ok(Some(old)) = self.entries.remove(&key) {
                self.sub_bytes((key.len() + old.len()) as u64);
            }
        }
    }

    /// Bytes stored now.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Counts a hit or a miss.
    pub(crate) fn count(&self, hit: bool) {
        if hit {
            self.metrics.results_cache_hits.inc();
        } else {
            self.metrics.results_cache_misses.inc();
        }
    }
}

/// How a query's range `[start_ns, end_ns]` splits: the settled, aligned
/// intervals the cache may answer, and the rest (its edges and the part
/// not settled at `now_ns`), each inclusive.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// Whole aligned intervals ending before the settle time.
    pub cached: Vec<(i64, i64)>,
    /// Everything else, merged directly.
    pub direct: Vec<(i64, i64)>,
}

/// Splits `[start_ns, end_ns]` at multiples of `interval_ns`; intervals
/// wholly inside and ending at or before `settled_ns` are cacheable.
pub fn split(start_ns: i64, end_ns: i64, interval_ns: i64, settled_ns: i64) -> Split {
    let mut out = Split {
        cached: Vec::new(),
        direct: Vec::new(),
    };
    if start_ns > end_ns || interval_ns <= 0 {
        return out;
    }
    let push_direct = |a: i64, b: i64, out: &mut Split| match out.direct.last_mut() {
        Some(last) if last.1.checked_add(1) == Some(a) => last.1 = b,
        _ => out.direct.push((a, b)),
    };
    // The first boundary at or after start.
    let first = start_ns
        .checked_add(interval_ns - 1)
        .map(|v| v.div_euclid(interval_ns) * interval_ns);
    let Some(mut at) = first else {
        push_direct(start_ns, end_ns, &mut out);
        return out;
    };
    if at > start_ns {
        push_direct(start_ns, (at - 1).min(end_ns), &mut out);
    }
    while at <= end_ns {
        let Some(next) = at.checked_add(interval_ns) else {
            push_direct(at, end_ns, &mut out);
            break;
        };
        let last = next - 1;
        if last <= end_ns && last < settled_ns {
            out.cached.push((at, last));
        } else {
            push_direct(at, last.min(end_ns), &mut out);
        }
        at = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn ranges_split_into_settled_hours_and_the_rest() {
        // 00:30 → 05:15, settled up to 04:00: hours 1, 2, 3 cached.
        let s = split(H / 2, 5 * H + H / 4, H, 4 * H);
        assert_eq!(
            s.cached,
            vec![(H, 2 * H - 1), (2 * H, 3 * H - 1), (3 * H, 4 * H - 1)]
        );
        assert_eq!(s.direct, vec![(H / 2, H - 1), (4 * H, 5 * H + H / 4)]);
        // Aligned edges: every hour, no direct part.
        let s = split(0, 2 * H - 1, H, i64::MAX);
        assert_eq!(s.cached, vec![(0, H - 1), (H, 2 * H - 1)]);
        assert!(s.direct.is_empty());
        // Nothing settled: one direct part.
        let s = split(10, 3 * H, H, 0);
        assert!(s.cached.is_empty());
        assert_eq!(s.direct, vec![(10, 3 * H)]);
        // Extremes do not overflow.
        let s = split(i64::MIN, i64::MAX, H, i64::MAX);
        assert!(!s.cached.is_empty());
        let s = split(i64::MAX - 5, i64::MAX, H, i64::MAX);
        assert_eq!(s.direct, vec![(i64::MAX - 5, i64::MAX)]);
    }

    #[test]
    fn entries_round_trip_persist_and_are_evicted_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let m = ignis_query::MergedStacks::default();
        let metrics = Metrics::default();
        let cache = ResultsCache::open(
            dir.path(),
            1 << 20,
            Duration::from_secs(3600),
            Duration::ZERO,
            metrics.clone(),
        )
        .unwrap();
        let sel = |start: i64| Selection {
            matchers: ignis_query::selector::parse_selector("{a=\"b\"}").unwrap(),
            start_ns: start,
            end_ns: start + 10,
            spans: None,
        };
        let k1 = key("t", &sel(0), &["01A".into()]);
        assert_ne!(
            k1,
            key("t", &sel(0), &["01B".into()]),
            "blocks are in the key"
        );
        assert_ne!(k1, key("u", &sel(0), &["01A".into()]));
        assert!(cache.get(&k1).is_none());
        cache.put(&k1, &m);
        assert!(cache.get(&k1).is_some());
        let used = cache.bytes();
        assert!(used > 0);
        drop(cache);
        // Reopened: the entry is still there; a tiny bound evicts in order.
        let cache = ResultsCache::open(
            dir.path(),
            used * 2,
            Duration::from_secs(3600),
            Duration::ZERO,
            metrics,
        )
        .unwrap();
        assert!(cache.get(&k1).is_some());
        let k2 = key("t", &sel(1), &[]);
        let k3 = key("t", &sel(2), &[]);
        cache.put(&k2, &m);
        cache.put(&k3, &m);
        assert!(cache.get(&k1).is_none(), "the oldest went");
        assert!(cache.get(&k3).is_some());
        assert!(cache.bytes() <= used * 2);
    }
}
