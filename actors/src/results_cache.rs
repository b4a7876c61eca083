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

use ignis_query::timeseries::SeriesPlan;
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

/// Version of the layout: its trees are named after it, and trees of
/// another layout are dropped at open.
const LAYOUT: u32 = 1;

/// Merged stacks per (tenant, selection, interval, blocks), on disk.
pub struct ResultsCache {
    /// key → encoded merged stacks.
    entries: sled::Tree,
    /// insertion sequence (big-endian) → key and its entry's size (LE u64):
    /// the eviction order and what the cache holds, without reading entries.
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
pub fn key(tenant: &str, sel: &Selection, blocks: &[String]) -> [u8; 16] {
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
    h.digest128().to_le_bytes()
}

/// The cache key of a `SelectSeries` part: [`key`] of its selection and
/// blocks, and what decides its buckets (grouping, step, where buckets
/// start within a step), call site and exemplars. Parts of queries whose
/// starts differ by whole steps share entries: buckets are keyed by their
/// end time.
pub fn series_key(tenant: &str, plan: &SeriesPlan, blocks: &[String]) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut field = |b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    field(b"series");
    field(&key(tenant, &plan.sel, blocks));
    field(&(plan.group_by.len() as u64).to_le_bytes());
    for g in &plan.group_by {
        field(g.as_bytes());
    }
    field(&plan.step_ms.to_le_bytes());
    field(&plan.start_ms.rem_euclid(plan.step_ms.max(1)).to_le_bytes());
    field(&(plan.call_site.len() as u64).to_le_bytes());
    for c in &plan.call_site {
        field(c.as_bytes());
    }
    field(&[u8::from(plan.exemplars)]);
    h.digest128().to_le_bytes()
}

/// The cache key of a listing part (the label sets of the series its
/// selection finds): [`key`] of its selection and blocks, apart from a
/// merge's of the same selection.
pub fn listing_key(tenant: &str, sel: &Selection, blocks: &[String]) -> [u8; 16] {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(b"listing");
    h.update(&key(tenant, sel, blocks));
    h.digest128().to_le_bytes()
}

/// The key and entry size an `order` record holds.
fn order_record(value: &[u8]) -> Option<(&[u8], u64)> {
    let (key, size) = value.split_at_checked(value.len().checked_sub(8)?)?;
    Some((key, u64::from_le_bytes(size.try_into().ok()?)))
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
        let db =
            ignis_storage::sled_open::open(&sled::Config::new().path(dir).cache_capacity(16 << 20))
                .map_err(err)?;
        let (entries_name, order_name) = (format!("entries-v{LAYOUT}"), format!("order-v{LAYOUT}"));
        for name in db.tree_names() {
            let other = [b"entries".as_slice(), b"order"]
                .iter()
                .any(|p| name.starts_with(p))
                && name != entries_name.as_bytes()
                && name != order_name.as_bytes();
            if other {
                db.drop_tree(&name).map_err(err)?;
            }
        }
        let entries = db.open_tree(entries_name).map_err(err)?;
        let order = db.open_tree(order_name).map_err(err)?;
        let mut bytes = 0u64;
        for kv in order.iter() {
            let (_, v) = kv.map_err(err)?;
            bytes += order_record(&v).map_or(0, |(_, size)| size);
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
    /// dropped and missed; its bytes go when its order record does).
    pub fn get(&self, key: &[u8]) -> Option<MergedStacks> {
        self.get_with(key, |b| MergedStacks::decode(b).map_err(|e| e.to_string()))
    }

    /// The entry under `key` decoded by `decode`, if any (a damaged entry
    /// is dropped and missed, as [`ResultsCache::get`] does).
    pub fn get_with<T>(
        &self,
        key: &[u8],
        decode: impl FnOnce(&[u8]) -> Result<T, String>,
    ) -> Option<T> {
        let bytes = self.entries.get(key).ok()??;
        decode(&bytes)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "dropping a damaged results cache entry");
                let _ = self.entries.remove(key);
            })
            .ok()
    }

    /// Stores `merged` under `key` (once: an entry never changes, its key
    /// names what it came from); the oldest entries go past the bound.
    pub fn put(&self, key: &[u8], merged: &MergedStacks) {
        self.put_with(key, || merged.encode().ok());
    }

    /// Stores the entry `encode` makes under `key`, as [`ResultsCache::put`]
    /// (`encode` runs only when `key` holds nothing yet).
    pub fn put_with(&self, key: &[u8], encode: impl FnOnce() -> Option<Vec<u8>>) {
        if self.entries.contains_key(key).unwrap_or(true) {
            return;
        }
        let Some(value) = encode() else {
            return;
        };
        let size = (key.len() + value.len()) as u64;
        if size > self.max_bytes / 2 {
            return; // One entry may not push out most of the others.
        }
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let mut record = key.to_vec();
        record.extend_from_slice(&size.to_le_bytes());
        // The order record first: an entry is always evictable.
        let stored = self
            .order
            .insert(seq.to_be_bytes(), record)
            .and_then(|_| self.entries.insert(key, value));
        if let Err(e) = stored {
            tracing::warn!(error = %e, "results cache entry not stored");
            return;
        }
        let total = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        self.metrics.results_cache_bytes.set(total as i64);
        if total > self.max_bytes {
            self.evict();
        }
    }

    /// Drops the oldest entries until the cache is within its bound.
    fn evict(&self) {
        let _one = self.evicting.lock();
        while self.bytes.load(Ordering::Relaxed) > self.max_bytes {
            let Ok(Some((_, record))) = self.order.pop_min() else {
                break;
            };
            let Some((key, size)) = order_record(&record) else {
                continue;
            };
            let _ = self.entries.remove(key);
            let left = self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                    Some(b.saturating_sub(size))
                })
                .unwrap_or(0)
                .saturating_sub(size);
            self.metrics.results_cache_bytes.set(left as i64);
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

/// How a query's range `[start_ns, end_ns]` splits (each part inclusive).
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    /// Its parts within one aligned interval each (whole intervals, and
    /// the range's edges) that end before the settle time: cacheable.
    pub cached: Vec<(i64, i64)>,
    /// The rest, from the first part not settled: merged directly.
    pub direct: Option<(i64, i64)>,
}

/// Cuts `[start_ns, end_ns]` at multiples of `interval_ns`; the parts
/// ending before `settled_ns` are cacheable.
pub fn split(start_ns: i64, end_ns: i64, interval_ns: i64, settled_ns: i64) -> Split {
    let mut out = Split {
        cached: Vec::new(),
        direct: None,
    };
    if start_ns > end_ns || interval_ns <= 0 {
        return out;
    }
    let mut at = start_ns;
    loop {
        // The end of the interval holding `at`, within the range.
        let last = (at.div_euclid(interval_ns) + 1)
            .checked_mul(interval_ns)
            .map_or(i64::MAX, |next| next - 1)
            .min(end_ns);
        if last >= settled_ns {
            out.direct = Some((at, end_ns));
            return out;
        }
        out.cached.push((at, last));
        if last == end_ns {
            return out;
        }
        at = last + 1;
    }
}

/// A day, ns: settled whole days are cached as one interval each.
pub const DAY_NS: i64 = 86_400_000_000_000;

/// [`split`], with every whole day (aligned) that ends before `settled_ns`
/// one cached part instead of its intervals: a month reads about 30 day
/// merges (from compacted day blocks, their day rollups) and at most two
/// days of intervals at its ends, not 720 hourly ones. Days are cut only
/// when `interval_ns` divides a day.
pub fn split_days(start_ns: i64, end_ns: i64, interval_ns: i64, settled_ns: i64) -> Split {
    if interval_ns <= 0 || interval_ns >= DAY_NS || DAY_NS % interval_ns != 0 {
        return split(start_ns, end_ns, interval_ns, settled_ns);
    }
    // Whole days inside the range and settled: [first, end_excl).
    let first = start_ns
        .div_euclid(DAY_NS)
        .saturating_add(i64::from(start_ns.rem_euclid(DAY_NS) != 0))
        .saturating_mul(DAY_NS);
    let last = end_ns.min(settled_ns.saturating_sub(1));
    let end_excl = last
        .saturating_add(1)
        .div_euclid(DAY_NS)
        .saturating_mul(DAY_NS);
    if first >= end_excl {
        return split(start_ns, end_ns, interval_ns, settled_ns);
    }
    let mut out = split(start_ns, first - 1, interval_ns, settled_ns);
    let mut day = first;
    while day < end_excl {
        out.cached.push((day, day + (DAY_NS - 1)));
        day += DAY_NS;
    }
    if end_excl <= end_ns {
        let rest = split(end_excl, end_ns, interval_ns, settled_ns);
        out.cached.extend(rest.cached);
        out.direct = rest.direct;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn settled_whole_days_are_one_part_each() {
        // Day 0 from 22:00, days 1 and 2, day 3 to 05:00, settled up to
        // day 3 04:00: 2 hours, 2 days, 4 hours cached, the rest direct.
        let s = split_days(22 * H, 3 * DAY_NS + 5 * H, H, 3 * DAY_NS + 4 * H);
        let mut want = vec![(22 * H, 23 * H - 1), (23 * H, DAY_NS - 1)];
        want.push((DAY_NS, 2 * DAY_NS - 1));
        want.push((2 * DAY_NS, 3 * DAY_NS - 1));
        want.extend((0..4).map(|h| (3 * DAY_NS + h * H, 3 * DAY_NS + (h + 1) * H - 1)));
        assert_eq!(s.cached, want);
        assert_eq!(s.direct, Some((3 * DAY_NS + 4 * H, 3 * DAY_NS + 5 * H)));
        // No whole settled day: as `split`.
        let short = split_days(H / 2, 5 * H + H / 4, H, 4 * H);
        assert_eq!(short, split(H / 2, 5 * H + H / 4, H, 4 * H));
        // A range of exactly one settled day, and an interval not dividing a day.
        assert_eq!(
            split_days(DAY_NS, 2 * DAY_NS - 1, H, 3 * DAY_NS).cached,
            vec![(DAY_NS, 2 * DAY_NS - 1)]
        );
        let odd = 7 * H;
        assert_eq!(
            split_days(0, 3 * DAY_NS, odd, 4 * DAY_NS),
            split(0, 3 * DAY_NS, odd, 4 * DAY_NS)
        );
    }

    #[test]
    fn ranges_split_into_settled_hours_and_the_rest() {
        // 00:30 → 05:15, settled up to 04:00: the edge and hours 1, 2, 3
        // cached, the rest direct.
        let s = split(H / 2, 5 * H + H / 4, H, 4 * H);
        assert_eq!(
            s.cached,
            vec![
                (H / 2, H - 1),
                (H, 2 * H - 1),
                (2 * H, 3 * H - 1),
                (3 * H, 4 * H - 1)
            ]
        );
        assert_eq!(s.direct, Some((4 * H, 5 * H + H / 4)));
        // Aligned edges: every hour, no direct part.
        let s = split(0, 2 * H - 1, H, i64::MAX);
        assert_eq!(s.cached, vec![(0, H - 1), (H, 2 * H - 1)]);
        assert!(s.direct.is_none());
        // Inside one settled hour: one cached part.
        let s = split(H + 10, H + 20, H, i64::MAX);
        assert_eq!(s.cached, vec![(H + 10, H + 20)]);
        // Nothing settled: one direct part.
        let s = split(10, 3 * H, H, 0);
        assert!(s.cached.is_empty());
        assert_eq!(s.direct, Some((10, 3 * H)));
        // Extremes do not overflow.
        let s = split(i64::MIN, i64::MIN + 3 * H, H, i64::MAX);
        assert_eq!(s.cached.len(), 4);
        let s = split(i64::MIN, i64::MAX, H, i64::MAX);
        assert!(!s.cached.is_empty());
        let s = split(i64::MAX - 5, i64::MAX, H, i64::MAX);
        assert_eq!(s.direct, Some((i64::MAX - 5, i64::MAX)));
    }

    #[test]
    fn series_keys_name_what_decides_the_buckets() {
        let plan = |start_ms: i64, step_ms: i64, group_by: &[&str]| SeriesPlan {
            sel: Selection::new(
                ignis_query::selector::parse_selector("{a=\"b\"}").unwrap(),
                0,
                3_599_999_999_999,
            ),
            group_by: group_by.iter().map(|g| g.to_string()).collect(),
            start_ms,
            step_ms,
            call_site: Vec::new(),
            exemplars: false,
        };
        let k = |p: &SeriesPlan| series_key("t", p, &["01A".into()]);
        let base = k(&plan(1_000, 300_000, &["pod"]));
        // A start a whole number of steps later: the same buckets.
        assert_eq!(base, k(&plan(1_000 + 7 * 300_000, 300_000, &["pod"])));
        assert_ne!(
            base,
            k(&plan(2_000, 300_000, &["pod"])),
            "other bucket edges"
        );
        assert_ne!(base, k(&plan(1_000, 60_000, &["pod"])), "another step");
        assert_ne!(base, k(&plan(1_000, 300_000, &[])), "another grouping");
        let mut exemplars = plan(1_000, 300_000, &["pod"]);
        exemplars.exemplars = true;
        assert_ne!(base, k(&exemplars));
        assert_ne!(
            base,
            key("t", &plan(1_000, 300_000, &["pod"]).sel, &["01A".into()]),
            "apart from the merges' entries"
        );
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
        let sel = |start: i64| {
            Selection::new(
                ignis_query::selector::parse_selector("{a=\"b\"}").unwrap(),
                start,
                start + 10,
            )
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
