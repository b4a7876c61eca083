//! What to compact and what compaction replaced, decided from block metas
//! alone (every node decides the same from the same bucket).
//!
//! Time is cut into aligned windows (`window_ns`, 1 h by default). A window
//! is compacted once it ended `settle_ns` ago (no ingester still holds data
//! for it) when at least two blocks overlap each other inside it: replicas
//! from several ingesters, or blocks of ingesters holding different series.
//! Then, once a whole day (`day_window_ns`) settled with no such window
//! left in it, its blocks (two or more) become one: a long range reads one
//! block, and its 1-day rollups, per day. Each output holds its sources'
//! profiles inside its window, each once, and records the window and every
//! level-1 block it covers.
//!
//! A block is **replaced** once outputs that cover all its sources cover its
//! whole time range: store-gateways stop serving it at once (so a query never
//! counts it beside its output), and the compactor deletes it after
//! `deletion_delay_ns`, when every store-gateway has seen the output.

use std::collections::HashMap;

use ignis_storage::block::{BlockMeta, ulid_time_ms};

use super::merge::Job;

/// When the compactor acts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Length of the aligned windows overlapping blocks are merged by (ns).
    pub window_ns: i64,
    /// Length of the aligned windows (days) all blocks are merged by, once
    /// settled (ns; 0: never).
    pub day_window_ns: i64,
    /// How long after a window ends it is compacted (ns).
    pub settle_ns: i64,
    /// How long a replaced block is kept after its replacement (ns).
    pub deletion_delay_ns: i64,
    /// Sample rows a merge holds at once.
    pub chunk_rows: u64,
}

impl Default for Settings {
    fn default() -> Self {
        const MIN: i64 = 60_000_000_000;
        Self {
            window_ns: 60 * MIN,
            day_window_ns: 24 * 60 * MIN,
            settle_ns: 120 * MIN,
            deletion_delay_ns: 15 * MIN,
            chunk_rows: super::merge::CHUNK_ROWS,
        }
    }
}

fn sources_within(b: &BlockMeta, o: &BlockMeta) -> bool {
    b.compaction
        .sources
        .iter()
        .all(|s| o.compaction.sources.binary_search(s).is_ok())
}

/// Whether `windows` (inclusive ranges) cover `[lo, hi]` entirely.
fn covered(lo: i64, hi: i64, windows: &mut [(i64, i64)]) -> bool {
    windows.sort_unstable();
    let mut next = lo;
    for &(a, b) in windows.iter() {
        if a > next {
            break;
        }
        if b >= next {
            match b.checked_add(1) {
                Some(n) => next = n,
                None => return true,
            }
        }
        if next > hi {
            return true;
        }
    }
    next > hi
}

/// The outputs that cover all of `b`'s sources (with sources strictly
/// more, or the same and a newer id: of two identical outputs one stays).
fn covering<'a>(b: &'a BlockMeta, metas: &'a [BlockMeta]) -> impl Iterator<Item = &'a BlockMeta> {
    metas.iter().filter(move |o| {
        o.ulid != b.ulid
            && o.compaction.window.is_some()
            && sources_within(b, o)
            && (o.compaction.sources.len() > b.compaction.sources.len() || o.ulid > b.ulid)
    })
}

/// The blocks of one tenant's `metas` that compacted blocks replaced, with
/// when (Unix ms: the newest replacing block's creation).
pub fn replaced(metas: &[BlockMeta]) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for b in metas.iter().filter(|b| b.stats.profiles > 0) {
        let mut windows = Vec::new();
        let mut since = 0;
        for o in covering(b, metas) {
            if let Some(w) = o.compaction.window {
                windows.push(w);
                since = since.max(ulid_time_ms(&o.ulid).unwrap_or(0));
            }
        }
        if !windows.is_empty() && covered(b.min_time_ns, b.max_time_ns, &mut windows) {
            out.insert(b.ulid.clone(), since);
        }
    }
    out
}

/// The compaction jobs of `tenant` at `now_ns`, over `metas` (all its
/// indexed blocks; replaced ones are left out here): windows where blocks
/// overlap first, then whole days.
pub fn jobs(tenant: &str, metas: &[BlockMeta], now_ns: i64, settings: &Settings) -> Vec<Job> {
    let gone = replaced(metas);
    let live: Vec<&BlockMeta> = metas
        .iter()
        .filter(|m| m.stats.profiles > 0 && !gone.contains_key(&m.ulid))
        .collect();
    let mut jobs = window_jobs(
        tenant,
        metas,
        &live,
        now_ns,
        settings,
        settings.window_ns,
        true,
    );
    if settings.day_window_ns > 0 {
        let days = window_jobs(
            tenant,
            metas,
            &live,
            now_ns,
            settings,
            settings.day_window_ns,
            false,
        );
        // A day waits for the merges of overlapping blocks inside it.
        let pending: Vec<(i64, i64)> = jobs.iter().map(|j| j.window).collect();
        jobs.extend(days.into_iter().filter(|d| {
            !pending
                .iter()
                .any(|&(a, b)| a <= d.window.1 && d.window.0 <= b)
        }));
    }
    jobs
}

/// The jobs of the aligned windows of `w` ns that settled: each window's
/// live blocks an output of it does not hold yet, when there are at least
/// two (and, with `need_overlap`, two of them overlap inside it).
fn window_jobs(
    tenant: &str,
    metas: &[BlockMeta],
    live: &[&BlockMeta],
    now_ns: i64,
    settings: &Settings,
    w: i64,
    need_overlap: bool,
) -> Vec<Job> {
    let w = w.max(1);
    let mut windows: Vec<i64> = live
        .iter()
        .flat_map(|m| m.min_time_ns.div_euclid(w)..=m.max_time_ns.div_euclid(w))
        .collect();
    windows.sort_unstable();
    windows.dedup();
    let mut jobs = Vec::new();
    for k in windows {
        let (start, end) = (k * w, k * w + (w - 1));
        if end.saturating_add(settings.settle_ns) >= now_ns {
            continue;
        }
        let group: Vec<&BlockMeta> = live
            .iter()
            .copied()
            .filter(|b| b.min_time_ns <= end && start <= b.max_time_ns)
            .filter(|b| {
                let (lo, hi) = (b.min_time_ns.max(start), b.max_time_ns.min(end));
                !covering(b, metas)
                    .any(|o| o.compaction.window.is_some_and(|(a, z)| a <= lo && hi <= z))
            })
            .collect();
        if group.len() < 2 {
            continue;
        }
        let overlap = group.iter().enumerate().any(|(i, a)| {
            group[i + 1..].iter().any(|b| {
                a.min_time_ns.max(b.min_time_ns).max(start)
                    <= a.max_time_ns.min(b.max_time_ns).min(end)
            })
        });
        if overlap || !need_overlap {
            jobs.push(Job {
                tenant: tenant.to_string(),
                sources: group.into_iter().cloned().collect(),
                window: (start, end),
            });
        }
    }
    jobs
}
