//! The in-memory head: recent profiles of one tenant, with deduplicated symbols.
//!
//! Memory grows with distinct stacks and series, not with samples: each profile row
//! holds only `(stack id, value)` pairs for the stacks it saw.

use std::collections::{HashMap, HashSet};

use crate::symbols::ImportMemo;

use crate::labels::{Labels, names};
use crate::proto::google::v1 as pprof;
use crate::symbols::{SymbolError, SymbolTable};

/// One decoded pprof and the series its samples belong to: the unit the ingester appends.
#[derive(Debug, Clone)]
pub struct SplitProfile {
    /// Identity of this profile ([`crate::new_profile_id`]); replicas share it.
    pub profile_id: u64,
    /// The validated pprof.
    pub profile: pprof::Profile,
    /// Profile timestamp in nanoseconds.
    pub timestamp_ns: i64,
    /// The series this profile contributes to.
    pub series: Vec<SeriesSplit>,
}

/// The samples of a [`SplitProfile`] that belong to one series.
#[derive(Debug, Clone)]
pub struct SeriesSplit {
    /// Final series labels, including `__profile_type__`.
    pub labels: Labels,
    /// Which value column of each sample this series stores.
    pub value_index: usize,
    /// Indexes into `profile.sample`.
    pub samples: Vec<u32>,
}

/// One profile of one series: sorted, unique stack ids with their values.
#[derive(Debug, Clone)]
pub struct ProfileRow {
    /// Timestamp in nanoseconds.
    pub timestamp_ns: i64,
    /// The id of the profile this row came from (0: unknown, format-1 blocks).
    pub profile_id: u64,
    /// Sum of `values`.
    pub total: i64,
    /// Stack ids (into the head's symbol table), ascending.
    pub stacks: Box<[u32]>,
    /// Value per stack.
    pub values: Box<[i64]>,
}

/// A series and its profiles, ordered by time.
#[derive(Debug, Clone)]
pub struct Series {
    /// The series labels.
    pub labels: Labels,
    /// `labels.fingerprint()`.
    pub fingerprint: u64,
    /// Profiles, ascending by timestamp.
    pub profiles: Vec<ProfileRow>,
}

impl Series {
    /// The profiles whose timestamp lies in `[start_ns, end_ns]`.
    pub fn profiles_in(&self, start_ns: i64, end_ns: i64) -> &[ProfileRow] {
        let lo = self.profiles.partition_point(|p| p.timestamp_ns < start_ns);
        let hi = self.profiles.partition_point(|p| p.timestamp_ns <= end_ns);
        if lo >= hi {
            &[]
        } else {
            &self.profiles[lo..hi]
        }
    }
}

/// What one insert added.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InsertStats {
    /// Profile rows appended (one per series with data).
    pub profiles: u64,
    /// `(stack, value)` pairs appended.
    pub samples: u64,
    /// Series created by this insert.
    pub new_series: u64,
}

/// Counters describing a head.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct HeadStats {
    /// Number of series.
    pub series: u64,
    /// Number of profile rows.
    pub profiles: u64,
    /// Number of `(stack, value)` pairs.
    pub samples: u64,
    /// Distinct stacks.
    pub stacks: u64,
    /// Earliest profile timestamp (ns), if any.
    pub min_time_ns: Option<i64>,
    /// Latest profile timestamp (ns), if any.
    pub max_time_ns: Option<i64>,
}

/// The in-memory head of one tenant.
#[derive(Debug, Default)]
pub struct Head {
    symbols: SymbolTable,
    series: Vec<Series>,
    by_fingerprint: HashMap<u64, u32>,
    stats: HeadStats,
}

impl Head {
    /// An empty head.
    pub fn new() -> Self {
        Self::default()
    }

    /// A head from its parts (a decoded block): series must reference `symbols`.
    pub fn from_parts(symbols: SymbolTable, series: Vec<Series>) -> Self {
        let mut stats = HeadStats {
            series: series.len() as u64,
            ..HeadStats::default()
        };
        let mut by_fingerprint = HashMap::with_capacity(series.len());
        for (i, s) in series.iter().enumerate() {
            by_fingerprint.insert(s.fingerprint, i as u32);
            stats.profiles += s.profiles.len() as u64;
            for p in &s.profiles {
                stats.samples += p.stacks.len() as u64;
                stats.min_time_ns = Some(
                    stats
                        .min_time_ns
                        .map_or(p.timestamp_ns, |t| t.min(p.timestamp_ns)),
                );
                stats.max_time_ns = Some(
                    stats
                        .max_time_ns
                        .map_or(p.timestamp_ns, |t| t.max(p.timestamp_ns)),
                );
            }
        }
        Self {
            symbols,
            series,
            by_fingerprint,
            stats,
        }
    }

    /// An estimate of the memory the head takes, in bytes (for cache budgets).
    pub fn approx_bytes(&self) -> u64 {
        let sym = &self.symbols;
        let strings: usize = sym.strings.items().iter().map(|s| s.len() + 24).sum();
        let stacks: usize = sym.stacks.items().iter().map(|s| s.len() * 4 + 24).sum();
        let locations: usize = sym
            .locations
            .items()
            .iter()
            .map(|l| l.lines.len() * 16 + 40)
            .sum();
        let symbols =
            strings + stacks + locations + sym.functions.len() * 24 + sym.mappings.len() * 48;
        let series: usize = self
            .series
            .iter()
            .map(|s| {
                s.labels
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 48)
                    .sum::<usize>()
                    + 64
            })
            .sum();
        // Interning tables roughly double the symbol memory.
        (symbols * 2 + series) as u64 + self.stats.samples * 12 + self.stats.profiles * 56
    }

    /// True when the head holds no profile.
    pub fn is_empty(&self) -> bool {
        self.stats.profiles == 0
    }

    /// The head's symbols.
    pub fn symbols(&self) -> &SymbolTable {
        &self.symbols
    }

    /// All series, in creation order.
    pub fn series(&self) -> &[Series] {
        &self.series
    }

    /// Current counters.
    pub fn stats(&self) -> HeadStats {
        HeadStats {
            stacks: self.symbols.stacks.len() as u64,
            ..self.stats
        }
    }

    /// Appends a split profile. Either every series row is appended or none is.
    pub fn insert(&mut self, p: &SplitProfile) -> Result<InsertStats, SymbolError> {
        let import = self.symbols.import_pprof(&p.profile)?;
        // Resolve every referenced sample's stack before touching any series.
        let mut stack_of: HashMap<u32, u32> = HashMap::new();
        let mut locs = Vec::new();
        for split in &p.series {
            for &si in &split.samples {
                if stack_of.contains_key(&si) {
                    continue;
                }
                let Some(sample) = p.profile.sample.get(si as usize) else {
                    continue;
                };
                locs.clear();
                for &l in &sample.location_id {
                    locs.push(import.location(l)?);
                }
                let stack = self.symbols.stacks.intern(locs.as_slice().into());
                stack_of.insert(si, stack);
            }
        }

        let mut stats = InsertStats::default();
        for split in &p.series {
            let mut pairs: Vec<(u32, i64)> = split
                .samples
                .iter()
                .filter_map(|&si| {
                    let v = *p
                        .profile
                        .sample
                        .get(si as usize)?
                        .value
                        .get(split.value_index)?;
                    (v != 0).then(|| (stack_of[&si], v))
                })
                .collect();
            if pairs.is_empty() {
                continue;
            }
            pairs.sort_unstable_by_key(|&(s, _)| s);
            let mut stacks = Vec::with_capacity(pairs.len());
            let mut values: Vec<i64> = Vec::with_capacity(pairs.len());
            for (s, v) in pairs {
                if stacks.last() == Some(&s) {
                    if let Some(last) = values.last_mut() {
                        *last = last.saturating_add(v);
                    }
                } else {
                    stacks.push(s);
                    values.push(v);
                }
            }
            let row = ProfileRow {
                timestamp_ns: p.timestamp_ns,
                profile_id: p.profile_id,
                total: values.iter().fold(0i64, |a, &v| a.saturating_add(v)),
                stacks: stacks.into_boxed_slice(),
                values: values.into_boxed_slice(),
            };
            stats.profiles += 1;
            stats.samples += row.stacks.len() as u64;
            let (series, created) = self.series_mut(&split.labels);
            stats.new_series += u64::from(created);
            let at = series
                .profiles
                .partition_point(|r| r.timestamp_ns <= row.timestamp_ns);
            series.profiles.insert(at, row);
        }
        if stats.profiles > 0 {
            self.stats.profiles += stats.profiles;
            self.stats.samples += stats.samples;
            self.stats.series += stats.new_series;
            self.stats.min_time_ns = Some(
                self.stats
                    .min_time_ns
                    .map_or(p.timestamp_ns, |t| t.min(p.timestamp_ns)),
            );
            self.stats.max_time_ns = Some(
                self.stats
                    .max_time_ns
                    .map_or(p.timestamp_ns, |t| t.max(p.timestamp_ns)),
            );
        }
        Ok(stats)
    }

    fn series_mut(&mut self, labels: &Labels) -> (&mut Series, bool) {
        let fp = labels.fingerprint();
        if let Some(&i) = self.by_fingerprint.get(&fp) {
            return (&mut self.series[i as usize], false);
        }
        let i = self.series.len();
        self.series.push(Series {
            labels: labels.clone(),
            fingerprint: fp,
            profiles: Vec::new(),
        });
        self.by_fingerprint.insert(fp, i as u32);
        (&mut self.series[i], true)
    }

    /// Copies into this head the profiles of `other` whose series `keep`
    /// accepts and whose timestamp lies in `[start_ns, end_ns]`, with the
    /// symbols they use. A row whose `(series, timestamp, profile id)` is in
    /// `seen` is skipped (a replica of a profile already copied), so merging
    /// the answers of several replicas counts each profile once. Rows with
    /// profile id 0 (no identity) are always copied.
    pub fn import_from(
        &mut self,
        other: &Head,
        keep: impl Fn(&Series) -> bool,
        start_ns: i64,
        end_ns: i64,
        seen: &mut HashSet<(u64, i64, u64)>,
    ) -> InsertStats {
        let mut memo = ImportMemo::default();
        let mut stacks_memo: HashMap<u32, u32> = HashMap::new();
        let mut stats = InsertStats::default();
        for s in other.series.iter().filter(|s| keep(s)) {
            let rows = s.profiles_in(start_ns, end_ns);
            if rows.is_empty() {
                continue;
            }
            let mut new_rows = Vec::with_capacity(rows.len());
            for row in rows {
                if row.profile_id != 0
                    && !seen.insert((s.fingerprint, row.timestamp_ns, row.profile_id))
                {
                    continue;
                }
                let mut pairs: Vec<(u32, i64)> = row
                    .stacks
                    .iter()
                    .zip(row.values.iter())
                    .map(|(&st, &v)| {
                        let id = *stacks_memo.entry(st).or_insert_with(|| {
                            self.symbols.import_stack(&other.symbols, st, &mut memo)
                        });
                        (id, v)
                    })
                    .collect();
                pairs.sort_unstable_by_key(|&(st, _)| st);
                stats.samples += pairs.len() as u64;
                new_rows.push(ProfileRow {
                    timestamp_ns: row.timestamp_ns,
                    profile_id: row.profile_id,
                    total: row.total,
                    stacks: pairs.iter().map(|&(st, _)| st).collect(),
                    values: pairs.iter().map(|&(_, v)| v).collect(),
                });
            }
            if new_rows.is_empty() {
                continue;
            }
            stats.profiles += new_rows.len() as u64;
            for r in &new_rows {
                self.stats.min_time_ns = Some(
                    self.stats
                        .min_time_ns
                        .map_or(r.timestamp_ns, |t| t.min(r.timestamp_ns)),
                );
                self.stats.max_time_ns = Some(
                    self.stats
                        .max_time_ns
                        .map_or(r.timestamp_ns, |t| t.max(r.timestamp_ns)),
                );
            }
            let (series, created) = self.series_mut(&s.labels);
            stats.new_series += u64::from(created);
            if series
                .profiles
                .last()
                .is_none_or(|l| l.timestamp_ns <= new_rows[0].timestamp_ns)
            {
                series.profiles.extend(new_rows);
            } else {
                series.profiles.extend(new_rows);
                series.profiles.sort_by_key(|r| r.timestamp_ns);
            }
        }
        self.stats.profiles += stats.profiles;
        self.stats.samples += stats.samples;
        self.stats.series += stats.new_series;
        stats
    }

    /// The profile type id of a series (its `__profile_type__` label).
    pub fn profile_type_of(series: &Series) -> &str {
        series.labels.get(names::PROFILE_TYPE).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_profile() -> pprof::Profile {
        pprof::Profile {
            string_table: vec!["".into(), "main".into(), "work".into()],
            function: vec![
                pprof::Function {
                    id: 1,
                    name: 1,
                    ..Default::default()
                },
                pprof::Function {
                    id: 2,
                    name: 2,
                    ..Default::default()
                },
            ],
            location: vec![
                pprof::Location {
                    id: 1,
                    line: vec![pprof::Line {
                        function_id: 1,
                        line: 1,
                    }],
                    ..Default::default()
                },
                pprof::Location {
                    id: 2,
                    line: vec![pprof::Line {
                        function_id: 2,
                        line: 1,
                    }],
                    ..Default::default()
                },
            ],
            sample: vec![
                pprof::Sample {
                    location_id: vec![2, 1],
                    value: vec![3],
                    label: vec![],
                },
                pprof::Sample {
                    location_id: vec![2, 1],
                    value: vec![4],
                    label: vec![],
                },
                pprof::Sample {
                    location_id: vec![1],
                    value: vec![5],
                    label: vec![],
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn merges_duplicate_stacks_and_dedups_symbols() {
        let mut head = Head::new();
        let labels = Labels::from_pairs([("service_name", "a")]);
        let split = SplitProfile {
            profile_id: 1,
            profile: tiny_profile(),
            timestamp_ns: 10,
            series: vec![SeriesSplit {
                labels: labels.clone(),
                value_index: 0,
                samples: vec![0, 1, 2],
            }],
        };
        head.insert(&split).unwrap();
        head.insert(&SplitProfile {
            timestamp_ns: 5,
            ..split
        })
        .unwrap();
        let s = &head.series()[0];
        assert_eq!(s.profiles.len(), 2);
        assert_eq!(s.profiles[0].timestamp_ns, 5);
        assert_eq!(s.profiles[0].total, 12);
        assert_eq!(s.profiles[0].stacks.len(), 2);
        assert_eq!(head.stats().stacks, 2);
        assert_eq!(head.symbols().functions.len(), 2);
        assert_eq!(s.profiles_in(6, 10).len(), 1);
    }

    #[test]
    fn import_copies_a_filtered_slice_and_skips_replicas() {
        let mut a = Head::new();
        for (id, ts, svc) in [(1, 10, "x"), (2, 20, "x"), (3, 20, "y"), (4, 90, "x")] {
            a.insert(&SplitProfile {
                profile_id: id,
                profile: tiny_profile(),
                timestamp_ns: ts,
                series: vec![SeriesSplit {
                    labels: Labels::from_pairs([("service_name", svc)]),
                    value_index: 0,
                    samples: vec![0, 1, 2],
                }],
            })
            .unwrap();
        }
        let mut seen = HashSet::new();
        let mut merged = Head::new();
        let keep_x = |s: &Series| s.labels.get("service_name") == Some("x");
        let st = merged.import_from(&a, keep_x, 0, 50, &mut seen);
        assert_eq!((st.profiles, st.new_series), (2, 1));
        // The same rows again (a replica's answer) are skipped; a new range is not.
        assert_eq!(merged.import_from(&a, keep_x, 0, 50, &mut seen).profiles, 0);
        assert_eq!(
            merged.import_from(&a, |_| true, 0, 100, &mut seen).profiles,
            2
        );
        assert_eq!(merged.stats().profiles, 4);
        assert_eq!(merged.stats().min_time_ns, Some(10));
        let x = &merged.series()[0];
        assert_eq!(
            x.profiles
                .iter()
                .map(|r| r.timestamp_ns)
                .collect::<Vec<_>>(),
            vec![10, 20, 90]
        );
        assert_eq!(x.profiles.iter().map(|r| r.total).sum::<i64>(), 36);
        let mut names = Vec::new();
        merged
            .symbols()
            .frame_names(x.profiles[0].stacks[0], &mut names);
        assert!(names.contains(&"main".to_string()));
    }

    #[test]
    fn bad_location_leaves_head_unchanged() {
        let mut head = Head::new();
        let mut p = tiny_profile();
        p.sample[2].location_id = vec![99];
        let split = SplitProfile {
            profile_id: 1,
            profile: p,
            timestamp_ns: 1,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([("a", "b")]),
                value_index: 0,
                samples: vec![0, 1, 2],
            }],
        };
        assert_eq!(head.insert(&split), Err(SymbolError::UnknownLocation(99)));
        assert_eq!(head.stats().profiles, 0);
        assert!(head.series().is_empty());
    }
}
