//! The ingester's in-memory data since its last cut: one head it appends
//! to, owned by the actor alone, and frozen segments nobody writes to any
//! more, which readers share.
//!
//! A reader asks the ingester for a [`Snapshot`]: the ingester freezes the
//! head it appends to (when it holds anything) and hands out the frozen
//! segments, so a query never takes a lock the ingester writes under and a
//! long query cannot stall ingest. Each snapshot after new writes adds a
//! segment; segments are merged in the background, newest first and by
//! size (a run of newer segments is merged into one once it is about as big
//! as the segment before it), so a tenant holds a few segments, not one
//! per query, and each row is copied only a few times.

use std::ops::Range;
use std::sync::Arc;

use ignis_query::Source;
use ignis_storage::{Head, HeadStats};

use crate::sealed::Sealed;

/// Frozen segments that start a background merge.
const MERGE_AT: usize = 4;

/// The heads of an ingester: the one it appends to and the frozen ones.
#[derive(Default)]
pub struct Segments {
    active: Head,
    frozen: Vec<Arc<Head>>,
    /// Bumped whenever `frozen` is taken by a cut, so a merge of segments
    /// that have moved on is dropped.
    generation: u64,
    merging: bool,
}

/// Segments being merged off the actor.
pub struct MergeJob {
    generation: u64,
    range: Range<usize>,
    /// The segments to merge, oldest first.
    pub parts: Vec<Arc<Head>>,
}

impl Segments {
    /// The head appends go to.
    pub fn active_mut(&mut self) -> &mut Head {
        &mut self.active
    }

    /// Counters over every segment (series and stacks are summed, so they
    /// count one held by several segments more than once).
    pub fn stats(&self) -> HeadStats {
        let mut out = self.active.stats();
        for h in &self.frozen {
            let s = h.stats();
            out.series += s.series;
            out.profiles += s.profiles;
            out.samples += s.samples;
            out.span_samples += s.span_samples;
            out.stacks += s.stacks;
            out.min_time_ns = either(out.min_time_ns, s.min_time_ns, i64::min);
            out.max_time_ns = either(out.max_time_ns, s.max_time_ns, i64::max);
        }
        out
    }

    /// Memory every segment holds, in bytes ([`Head::approx_bytes`]).
    pub fn approx_bytes(&self) -> u64 {
        self.active.approx_bytes() + self.frozen.iter().map(|h| h.approx_bytes()).sum::<u64>()
    }

    /// Freezes the active head (when it holds anything) and returns every
    /// segment: what a reader may keep as long as it likes.
    pub fn freeze(&mut self) -> Vec<Arc<Head>> {
        if !self.active.is_empty() {
            self.frozen.push(Arc::new(std::mem::take(&mut self.active)));
        }
        self.frozen.clone()
    }

    /// Takes every segment (a cut); a merge in flight is dropped.
    pub fn take_all(&mut self) -> Vec<Arc<Head>> {
        self.freeze();
        self.generation += 1;
        self.merging = false;
        std::mem::take(&mut self.frozen)
    }

    /// Adds a head built elsewhere (WAL replay) as a segment.
    pub fn adopt(&mut self, head: Head) {
        if head.is_empty() {
            return;
        }
        if self.active.is_empty() {
            self.active = head;
        } else {
            self.frozen.push(Arc::new(head));
        }
    }

    /// Number of frozen segments.
    pub fn frozen_len(&self) -> usize {
        self.frozen.len()
    }

    /// The next merge to run, if one is due and none is running.
    pub fn plan_merge(&mut self) -> Option<MergeJob> {
        if self.merging || self.frozen.len() < MERGE_AT {
            return None;
        }
        let sizes: Vec<u64> = self.frozen.iter().map(|h| weight(h)).collect();
        let range = newest_run(&sizes)?;
        self.merging = true;
        Some(MergeJob {
            generation: self.generation,
            parts: self.frozen[range.clone()].to_vec(),
            range,
        })
    }

    /// Puts the result of `job` in place of its parts, unless a cut took
    /// them meanwhile; returns whether it did.
    pub fn finish_merge(&mut self, job: MergeJob, merged: Head) -> bool {
        if job.generation != self.generation {
            return false;
        }
        self.merging = false;
        let same = self
            .frozen
            .get(job.range.clone())
            .is_some_and(|now| now.iter().zip(&job.parts).all(|(a, b)| Arc::ptr_eq(a, b)));
        if !same {
            return false;
        }
        self.frozen.splice(job.range, [Arc::new(merged)]);
        true
    }

    /// Forgets a merge that will not finish (the actor restarted).
    pub fn cancel_merge(&mut self) {
        self.merging = false;
    }
}

/// `f(a, b)` when both are set, else whichever is.
fn either(a: Option<i64>, b: Option<i64>, f: fn(i64, i64) -> i64) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(f(a, b)),
        (a, b) => a.or(b),
    }
}

/// The size a merge plan weighs a segment by.
fn weight(h: &Head) -> u64 {
    let s = h.stats();
    s.profiles + s.samples
}

/// The newest run of segments to merge: extended to an older segment while
/// that one is at most twice the run's size, so a big old segment is
/// copied again only once the newer data is comparable to it. `None` when
/// the run is a single segment.
fn newest_run(sizes: &[u64]) -> Option<Range<usize>> {
    let end = sizes.len();
    let mut start = end.checked_sub(1)?;
    let mut run = sizes[start];
    while start > 0 && sizes[start - 1] <= run.saturating_mul(2) {
        start -= 1;
        run += sizes[start];
    }
    (end - start >= 2).then_some(start..end)
}

/// What an ingester holds of its tenant at one moment: immutable, so a
/// reader keeps it without holding up the ingester.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// The segments of the head since the last cut.
    pub heads: Vec<Arc<Head>>,
    /// Heads cut and not yet handed over to a store-gateway, oldest first.
    pub sealed: Vec<Arc<Sealed>>,
}

impl Snapshot {
    /// Every head it holds: the segments, then the sealed heads'.
    pub fn all_heads(&self) -> impl Iterator<Item = &Head> {
        self.heads
            .iter()
            .chain(self.sealed.iter().flat_map(|s| &s.heads))
            .map(|h| &**h)
    }

    /// Every head it holds, as query sources.
    pub fn sources(&self) -> impl Iterator<Item = &dyn Source> {
        self.all_heads().map(|h| h as &dyn Source)
    }

    /// Profiles it holds.
    pub fn profiles(&self) -> u64 {
        self.all_heads().map(|h| h.stats().profiles).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_runs_grow_from_the_newest_segment() {
        assert_eq!(newest_run(&[]), None);
        assert_eq!(newest_run(&[5]), None);
        // A big old segment is left alone while newer ones are small.
        assert_eq!(newest_run(&[1000, 1, 1, 1, 1]), Some(1..5));
        assert_eq!(newest_run(&[1000, 2, 1]), Some(1..3));
        assert_eq!(newest_run(&[1000, 4, 1]), None);
        assert_eq!(newest_run(&[1000, 10, 1]), None);
        // Comparable sizes merge together.
        assert_eq!(newest_run(&[8, 4, 2, 1, 1]), Some(0..5));
    }

    #[test]
    fn segments_stay_few_whatever_the_number_of_snapshots() {
        // One snapshot after every small write, merges finishing at once:
        // the number of segments grows with the log of the data, not with
        // the number of snapshots.
        let mut sizes: Vec<u64> = Vec::new();
        let (mut copied, mut written) = (0u64, 0u64);
        for i in 0..10_000 {
            let size = 10 + i % 7;
            written += size;
            sizes.push(size);
            if sizes.len() >= MERGE_AT
                && let Some(r) = newest_run(&sizes)
            {
                let total: u64 = sizes[r.clone()].iter().sum();
                copied += total;
                sizes.splice(r, [total]);
            }
        }
        assert!(sizes.len() <= 20, "{} segments", sizes.len());
        // Each row is copied a logarithmic number of times.
        assert!(copied <= written * 20, "copied {copied} of {written}");
    }
}
