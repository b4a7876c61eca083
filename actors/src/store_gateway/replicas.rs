//! Blocks that overlap in time answering a stack merge from their rollups
//! together.
//!
//! Before compaction, a cluster's blocks overlap: each ingester cuts its own
//! blocks of the same profiles (replicas, cut at different moments), and a
//! compacted block's neighbours still hold its edges. Each profile must
//! count once, and a rollup row cannot say which profiles it holds, so the
//! blocks of a group decide, per `(series, window)` cell of the query's
//! [`RollupPlan`], who answers it:
//!
//! 1. Per window, the blocks whose time bounds meet it are ranked: the one
//!    covering most of the window first (then the one with more profiles).
//!    Where two blocks or more meet a window, the keys of their profiles in
//!    it are read from `profiles.parquet` (the first block's only where
//!    another block has time, the others' all).
//! 2. Per cell, in rank order: a block whose profiles there are all counted
//!    already **skips** the cell (a replica); one whose profiles are all new
//!    answers it from its **rollup** row; one with some of each reads its
//!    profiles there (**raw**), and they count once through [`Seen`].
//! 3. Blocks answering a cell from rollups claim its profiles ([`Claimed`])
//!    where a block reads raw rows there (a raw cell, or a block of the
//!    group that does not answer from rollups), so those replicas are
//!    skipped.
//!
//! Complete replicas then cost a read of their keys: the first block's
//! rollup rows answer each window and the others skip it.
//!
//! [`Seen`]: ignis_query::Seen

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt};
use ignis_query::block_slice::{Claimed, RollupCells};
use ignis_query::rollup_read::ProfileKey;
use ignis_query::{MemoryBudget, Scope, Source};
use ignis_storage::block::{BlockMeta, RollupPlan};

use super::StoreGateway;
use super::reads::{CONCURRENT_BLOCK_READS, on_executor};
use crate::querier::{QueryFailure, in_lane_blocking};

/// One block of a group: its time bounds and what ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Member {
    /// Oldest and newest profile timestamps.
    pub bounds: (i64, i64),
    /// Profiles it holds (more ranks first among equal coverage).
    pub profiles: u64,
    /// Its block id (the last tie-break).
    pub ulid: String,
}

impl Member {
    /// The member for `meta`.
    pub fn of(meta: &BlockMeta) -> Self {
        Self {
            bounds: (meta.min_time_ns, meta.max_time_ns),
            profiles: meta.stats.profiles,
            ulid: meta.ulid.clone(),
        }
    }

    fn meets(&self, (lo, hi): (i64, i64)) -> bool {
        self.bounds.0 <= hi && lo <= self.bounds.1
    }

    /// Nanoseconds of `window` its bounds cover.
    fn coverage(&self, (lo, hi): (i64, i64)) -> i128 {
        let (a, b) = (lo.max(self.bounds.0), hi.min(self.bounds.1));
        (i128::from(b) - i128::from(a) + 1).max(0)
    }
}

/// Indexes of `bounds` (inclusive time ranges) grouped by overlap,
/// transitively: blocks in different groups share no instant. Groups come
/// in time order, each ascending.
pub(super) fn overlap_groups(bounds: &[(i64, i64)]) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..bounds.len()).collect();
    order.sort_by_key(|&i| bounds[i]);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut end = i64::MIN;
    for i in order {
        let (lo, hi) = bounds[i];
        match groups.last_mut() {
            Some(g) if lo <= end => g.push(i),
            _ => groups.push(vec![i]),
        }
        end = if groups.last().is_some_and(|g| g.len() > 1) {
            end.max(hi)
        } else {
            hi
        };
    }
    for g in &mut groups {
        g.sort_unstable();
    }
    groups
}

/// Who reads what in a group: per window met by two blocks or more (or by
/// one and a block without rollups), the rollup blocks in rank order, and
/// the spans whose profile keys each rollup block reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Contest {
    /// Window start → rollup members (indexes) in rank order.
    pub ranks: HashMap<i64, Vec<usize>>,
    /// Window starts that a member without rollups meets.
    pub near_raw: HashSet<i64>,
    /// Per rollup member, the spans of its keys to read.
    pub spans: Vec<Vec<(i64, i64)>>,
}

impl Contest {
    /// The contest of `members` (answering from rollups by `plan`) beside
    /// blocks of the group that do not (`raw`: their bounds).
    pub fn new(members: &[Member], raw: &[(i64, i64)], plan: &RollupPlan) -> Self {
        let mut contest = Self {
            spans: vec![Vec::new(); members.len()],
            ..Self::default()
        };
        let clip = |(lo, hi): (i64, i64), (a, b): (i64, i64)| {
            let (lo, hi) = (lo.max(a), hi.min(b));
            (lo <= hi).then_some((lo, hi))
        };
        let lo = members.iter().map(|m| m.bounds.0).min().unwrap_or(0);
        let hi = members.iter().map(|m| m.bounds.1).max().unwrap_or(-1);
        for w in plan.windows_meeting(lo, hi) {
            let mut here: Vec<usize> = (0..members.len())
                .filter(|&i| members[i].meets(w))
                .collect();
            let raw_here: Vec<(i64, i64)> =
                raw.iter().copied().filter_map(|b| clip(b, w)).collect();
            if here.is_empty() || here.len() + raw_here.len() < 2 {
                continue;
            }
            here.sort_by(|&a, &b| {
                let (ma, mb) = (&members[a], &members[b]);
                mb.coverage(w)
                    .cmp(&ma.coverage(w))
                    .then(mb.profiles.cmp(&ma.profiles))
                    .then(ma.ulid.cmp(&mb.ulid))
            });
            // The first block's keys where another block has time; the
            // others' all (in their bounds).
            let first = here[0];
            for &i in &here[1..] {
                if let Some(span) = clip(members[i].bounds, w) {
                    contest.spans[i].push(span);
                    contest.spans[first].push(span);
                }
            }
            contest.spans[first].extend(raw_here.iter().copied());
            if !raw_here.is_empty() {
                contest.near_raw.insert(w.0);
            }
            contest.ranks.insert(w.0, here);
        }
        contest
    }
}

/// What one rollup member does: the cells it leaves to others or reads
/// raw, and the profiles it claims.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Decision {
    /// Cells its rollup rows do not answer.
    pub cells: RollupCells,
    /// Profiles (`(fingerprint, timestamp_ns, profile_id)`) to claim.
    pub claims: Vec<(u64, i64, u64)>,
}

/// How many cells were answered each way (for the metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tally {
    /// Cells answered from a rollup row.
    pub rollup: u64,
    /// Cells left to a replica.
    pub skipped: u64,
    /// Cells whose profiles were read.
    pub raw: u64,
}

/// Decides every contested cell (see the module docs) from each member's
/// `keys` (read over [`Contest::spans`], in series then time order).
pub(super) fn decide(
    contest: &Contest,
    keys: &[Vec<ProfileKey>],
    plan: &RollupPlan,
) -> (Vec<Decision>, Tally) {
    // Cell → (member, its keys there).
    type Entries = Vec<(usize, Vec<(i64, u64)>)>;
    let mut cells: HashMap<(u64, i64), Entries> = HashMap::new();
    for (m, keys) in keys.iter().enumerate() {
        for &(fingerprint, t, id) in keys {
            let Some((start, _)) = plan.window_of(t) else {
                continue;
            };
            let entries = cells.entry((fingerprint, start)).or_default();
            match entries.last_mut() {
                Some((last, ks)) if *last == m => ks.push((t, id)),
                _ => entries.push((m, vec![(t, id)])),
            }
        }
    }
    let mut out: Vec<Decision> = keys.iter().map(|_| Decision::default()).collect();
    let mut tally = Tally::default();
    // (member, window) where the member answers some cell from rollups.
    let mut answering: HashSet<(usize, i64)> = HashSet::new();
    for ((fingerprint, start), mut entries) in cells {
        let Some(ranks) = contest.ranks.get(&start) else {
            continue;
        };
        let rank = |m: usize| ranks.iter().position(|&r| r == m).unwrap_or(usize::MAX);
        entries.sort_by_key(|(m, _)| rank(*m));
        let cell = (fingerprint, start);
        let mut taken: HashSet<(i64, u64)> = HashSet::new();
        let mut rolled = Vec::new();
        let mut any_raw = false;
        for (m, ks) in entries {
            let new = ks.iter().filter(|k| !taken.contains(k)).count();
            if new == ks.len() {
                tally.rollup += 1;
                answering.insert((m, start));
                taken.extend(ks.iter().copied());
                rolled.push((m, ks));
                continue;
            }
            out[m].cells.excluded.insert(cell);
            if new == 0 {
                tally.skipped += 1;
            } else {
                tally.raw += 1;
                any_raw = true;
                out[m].cells.raw.insert(cell);
                taken.extend(ks);
            }
        }
        if any_raw || contest.near_raw.contains(&start) {
            for (m, ks) in rolled {
                out[m]
                    .claims
                    .extend(ks.into_iter().map(|(t, id)| (fingerprint, t, id)));
            }
        }
    }
    // A block ranked after the first holds all its keys of the window: if
    // it answers no cell there, none of its rollup rows there is read.
    for (&start, ranks) in &contest.ranks {
        for &m in &ranks[1..] {
            if !answering.contains(&(m, start)) {
                out[m].cells.skipped_windows.insert(start);
            }
        }
    }
    (out, tally)
}

impl StoreGateway {
    /// The sources of `metas`, blocks of one overlap group (or a lone
    /// block) that answer `plan` from their rollups, beside the group's
    /// blocks that do not (`raw`: their time bounds). One source per block,
    /// in their order.
    pub(super) async fn rollup_sources(
        &self,
        metas: Vec<BlockMeta>,
        raw: &[(i64, i64)],
        scope: &Scope,
        plan: &RollupPlan,
        budget: &MemoryBudget,
    ) -> Result<Vec<Arc<dyn Source>>, QueryFailure> {
        let members: Vec<Member> = metas.iter().map(Member::of).collect();
        let contest = Contest::new(&members, raw, plan);
        let tables = futures::future::try_join_all(metas.iter().map(|m| self.tables(m))).await?;
        let refs: Vec<Vec<u32>> = tables.iter().map(|t| t.wanted(scope)).collect();
        let reads: Vec<_> = (0..metas.len())
            .map(|i| {
                (
                    contest.spans[i].clone(),
                    metas[i].clone(),
                    tables[i].clone(),
                    refs[i].clone(),
                )
            })
            .collect();
        let keys: Vec<Vec<ProfileKey>> = futures::stream::iter(reads)
            .map(|(spans, meta, tables, refs)| {
                let reader = self.reader.clone();
                async move {
                    if spans.is_empty() || refs.is_empty() {
                        return Ok(Vec::new());
                    }
                    on_executor(
                        async move { reader.profile_keys(&meta, &tables, &spans, &refs).await },
                    )
                    .await
                }
                .boxed()
            })
            .buffered(CONCURRENT_BLOCK_READS)
            .try_collect()
            .await?;
        let key_bytes = keys.iter().map(|k| k.len() as u64).sum::<u64>()
            * std::mem::size_of::<ProfileKey>() as u64;
        budget.charge(key_bytes, "the profile keys of overlapping blocks")?;
        // Off the caller's thread (the store-gateway's, which every
        // tenant's queries pass through) and in the query's lane: deciding
        // a long range of replicated blocks takes milliseconds of CPU.
        let decide_plan = plan.clone();
        let (decisions, tally) = in_lane_blocking("deciding replicated cells", move || {
            decide(&contest, &keys, &decide_plan)
        })
        .await?;
        let counts = [
            ("rollup", tally.rollup),
            ("skipped", tally.skipped),
            ("raw", tally.raw),
        ];
        for (how, n) in counts.into_iter().filter(|&(_, n)| n > 0) {
            self.metrics
                .replica_cells
                .get_or_create(&vec![("how", how.to_string())])
                .inc_by(n);
        }
        futures::stream::iter(metas.into_iter().zip(tables).zip(refs).zip(decisions))
            .map(|(((meta, tables), refs), decision)| {
                let reader = self.reader.clone();
                let plan = plan.clone();
                async move {
                    let what = format!("block {}", meta.ulid);
                    // A block no other contests reads all its windows' rows.
                    let cells = (decision.cells != RollupCells::default())
                        .then(|| Arc::new(decision.cells));
                    let (slice, stats) = on_executor(async move {
                        reader
                            .read_rollup_slice(&meta, &tables, &plan, &refs, cells)
                            .await
                    })
                    .await?;
                    self.metrics.rollup_reads.inc();
                    self.record_scans(&stats);
                    let mut source: Arc<dyn Source> = Arc::new(slice);
                    if !decision.claims.is_empty() {
                        source = Arc::new(Claimed::new(source, decision.claims));
                    }
                    budget.charge(source.held_bytes(), &what)?;
                    Ok::<_, QueryFailure>(source)
                }
                .boxed()
            })
            .buffered(CONCURRENT_BLOCK_READS)
            .try_collect()
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ignis_storage::block::ROLLUP_RESOLUTIONS_NS;

    const M: i64 = 60_000_000_000;
    const H: i64 = 60 * M;

    fn member(lo: i64, hi: i64, profiles: u64, ulid: &str) -> Member {
        Member {
            bounds: (lo, hi),
            profiles,
            ulid: ulid.into(),
        }
    }

    #[test]
    fn groups_join_blocks_that_share_time_transitively() {
        let bounds = [(0, 10), (30, 40), (5, 20), (20, 25), (41, 50), (100, 200)];
        assert_eq!(
            overlap_groups(&bounds),
            vec![vec![0, 2, 3], vec![1], vec![4], vec![5]]
        );
        // A long block spans later ones that do not meet each other.
        assert_eq!(
            overlap_groups(&[(0, 100), (10, 20), (50, 60), (200, 300)]),
            vec![vec![0, 1, 2], vec![3]]
        );
        assert!(overlap_groups(&[]).is_empty());
    }

    #[test]
    fn replicas_cut_at_other_minutes_leave_each_window_to_one_block() {
        // Three replicas of two hours of one series, one profile a minute,
        // cut at minutes 0, 20 and 40; the second misses one profile.
        let plan = RollupPlan::new(0, 3 * H - 1, &ROLLUP_RESOLUTIONS_NS);
        let members = [
            member(0, 2 * H - 1, 120, "a"),
            member(20 * M, 2 * H + 20 * M - 1, 119, "b"),
            member(40 * M, 2 * H + 40 * M - 1, 120, "c"),
        ];
        let contest = Contest::new(&members, &[], &plan);
        assert_eq!(contest.ranks[&0], vec![0, 1, 2]);
        assert_eq!(contest.ranks[&(2 * H)], vec![2, 1]);
        let profile = |minute: i64| (99u64, minute * M, 1000 + minute as u64);
        let keys_in = |lo: i64, hi: i64, spans: &[(i64, i64)], skip: Option<i64>| {
            (lo..hi)
                .filter(|&m| Some(m) != skip)
                .map(profile)
                .filter(|k| spans.iter().any(|&(a, b)| (a..=b).contains(&k.1)))
                .collect::<Vec<_>>()
        };
        let keys = vec![
            keys_in(0, 120, &contest.spans[0], None),
            keys_in(20, 140, &contest.spans[1], Some(130)),
            keys_in(40, 160, &contest.spans[2], None),
        ];
        let (d, tally) = decide(&contest, &keys, &plan);
        // Hours 0 and 1: a answers, b and c skip; hour 2: c answers, b skips.
        assert_eq!(d[0], Decision::default());
        let skip = |hours: &[i64]| RollupCells {
            excluded: hours.iter().map(|h| (99, h * H)).collect(),
            raw: HashSet::new(),
            skipped_windows: hours.iter().map(|h| h * H).collect(),
        };
        assert_eq!(d[1].cells, skip(&[0, 1, 2]));
        assert_eq!(d[2].cells, skip(&[0, 1]));
        assert!(d.iter().all(|d| d.claims.is_empty()));
        assert_eq!(
            tally,
            Tally {
                rollup: 3,
                skipped: 5,
                raw: 0
            }
        );

        // If c missed a profile of hour 2 that b holds, b reads hour 2 raw
        // and c claims its profiles there.
        let keys = vec![
            keys[0].clone(),
            keys_in(20, 140, &contest.spans[1], None),
            keys_in(40, 160, &contest.spans[2], Some(125)),
        ];
        let (d, tally) = decide(&contest, &keys, &plan);
        assert_eq!(d[1].cells.raw, HashSet::from([(99, 2 * H)]));
        assert!(d[1].cells.excluded.contains(&(99, 2 * H)));
        assert!(d[1].cells.skipped_windows.contains(&(2 * H)));
        assert_eq!(d[2].claims.len(), 19);
        assert_eq!(tally.raw, 1);
    }
}
