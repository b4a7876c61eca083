//! The in-memory head: recent profiles of one tenant, with deduplicated symbols.
//!
//! Memory grows with distinct stacks and series, not with samples: each profile row
//! holds only `(stack id, value)` pairs for the stacks it saw. Samples that
//! carry a span or trace id (pprof sample labels `span_id` — or `profile_id`
//! as JFR and older SDKs send it — and `trace_id`, [`crate::spans`]) are also
//! kept per span and trace, beside that aggregate; rows without spans pay one
//! empty pointer.

use std::collections::HashSet;

// foldhash (hashbrown's default): the ingest and merge maps are keyed by
// integers, where std's SipHash showed up in profiles of the ingest path.
use hashbrown::HashMap;

use crate::flat::FlatProfile;
use crate::profile_id::ProfileId;
use crate::symbols::ImportMemo;

use crate::labels::{Labels, names};
pub use crate::spans::{
    PROFILE_ID_LABEL, SPAN_ID_LABEL, SpanIdError, SpanSample, TRACE_ID_LABEL, TraceId,
    format_span_id, format_trace_id, merge_span_samples, parse_span_id, parse_trace_id,
    sample_span_refs,
};
use crate::symbols::{SymbolError, SymbolTable};

/// One decoded pprof and the series its samples belong to: the unit the ingester appends.
#[derive(Debug, Clone)]
pub struct SplitProfile {
    /// Identity of this profile (the client's, or [`ProfileId::generate`]);
    /// replicas share it.
    pub profile_id: ProfileId,
    /// The validated pprof, decoded in place (its bytes are what the WAL keeps).
    pub profile: FlatProfile,
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
    /// The id of the profile this row came from (key 0: unknown, format-1 blocks).
    pub profile_id: ProfileId,
    /// Sum of `values`.
    pub total: i64,
    /// Stack ids (into the head's symbol table), ascending.
    pub stacks: Box<[u32]>,
    /// Value per stack.
    pub values: Box<[i64]>,
    /// The samples that carry a span id, by `(span, stack)`; their values are
    /// also in `values`. `None` when no sample of the row has a span.
    pub spans: Option<Box<[SpanSample]>>,
}

impl ProfileRow {
    /// Number of span samples.
    pub fn span_count(&self) -> usize {
        self.spans.as_ref().map_or(0, |s| s.len())
    }
}

/// Which parts of a profile row a copy keeps ([`Head::import_rows`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowParts {
    /// Keep stacks and values (flame graphs need them; totals do not).
    pub stacks: bool,
    /// Keep span samples (only span selectors read them).
    pub spans: bool,
}

impl RowParts {
    /// The whole row.
    pub const ALL: Self = Self {
        stacks: true,
        spans: true,
    };
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
    /// `(span, stack, value)` triples appended.
    pub span_samples: u64,
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
    /// Number of `(span, stack, value)` triples.
    pub span_samples: u64,
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
    /// Memory of the series' labels, in bytes ([`series_bytes`]).
    label_bytes: u64,
}

/// Memory one series' labels and bookkeeping take, in bytes (an estimate).
fn series_bytes(labels: &Labels) -> u64 {
    labels
        .iter()
        .map(|(k, v)| (k.len() + v.len() + 48) as u64)
        .sum::<u64>()
        + 96
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
        let mut label_bytes = 0;
        for (i, s) in series.iter().enumerate() {
            by_fingerprint.insert(s.fingerprint, i as u32);
            label_bytes += series_bytes(&s.labels);
            stats.profiles += s.profiles.len() as u64;
            for p in &s.profiles {
                stats.samples += p.stacks.len() as u64;
                stats.span_samples += p.span_count() as u64;
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
            label_bytes,
        }
    }

    /// Takes its series and their rows out, keeping its symbols (a
    /// compaction writes a block a few series at a time over one symbol
    /// table). The head is then empty but for symbols.
    pub fn take_series(&mut self) -> Vec<Series> {
        self.by_fingerprint.clear();
        self.stats = HeadStats::default();
        self.label_bytes = 0;
        std::mem::take(&mut self.series)
    }

    /// The memory the head takes, in bytes: its symbol tables as held,
    /// its rows and labels as estimated. Kept as it grows, so asking costs
    /// nothing (the ingester cuts a head by it, cache budgets weigh by it).
    pub fn approx_bytes(&self) -> u64 {
        self.symbols.memory_bytes() as u64
            + self.label_bytes
            + approx_row_bytes(
                self.stats.profiles,
                self.stats.samples,
                self.stats.span_samples,
            )
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
        // Resolve every referenced sample's stack before touching any series
        // (by sample index; a stack seen before costs a lookup, no allocation).
        const UNRESOLVED: u32 = u32::MAX;
        let mut stack_of = vec![UNRESOLVED; p.profile.sample_count()];
        let mut locs = Vec::new();
        for split in &p.series {
            for &si in &split.samples {
                let Some(slot) = stack_of.get_mut(si as usize) else {
                    continue;
                };
                if *slot != UNRESOLVED {
                    continue;
                }
                let Some(sample) = p.profile.sample(si as usize) else {
                    continue;
                };
                locs.clear();
                for &l in sample.location_ids {
                    locs.push(import.location(l)?);
                }
                *slot = self.symbols.stacks.intern_by(
                    locs.as_slice(),
                    |have, key| **have == *key,
                    |key| key.into(),
                );
            }
        }

        let span_of = sample_span_refs(&p.profile);
        let mut stats = InsertStats::default();
        for split in &p.series {
            let spans = span_of.as_ref().and_then(|span_of| {
                merge_span_samples(
                    split
                        .samples
                        .iter()
                        .filter_map(|&si| {
                            let (span_id, trace_id) = *span_of.get(si as usize)?;
                            let value = *p
                                .profile
                                .sample(si as usize)?
                                .values
                                .get(split.value_index)?;
                            let s = SpanSample {
                                span_id,
                                stack: stack_of[si as usize],
                                value,
                                trace_id,
                            };
                            (s.is_attributed() && value != 0).then_some(s)
                        })
                        .collect(),
                )
            });
            let mut pairs: Vec<(u32, i64)> = split
                .samples
                .iter()
                .filter_map(|&si| {
                    let v = *p
                        .profile
                        .sample(si as usize)?
                        .values
                        .get(split.value_index)?;
                    (v != 0).then(|| (stack_of[si as usize], v))
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
                spans,
            };
            let (series, created) = self.series_mut(&split.labels);
            let at = series
                .profiles
                .partition_point(|r| r.timestamp_ns <= row.timestamp_ns);
            // A profile held already (same series, timestamp and id: a
            // push re-sent with the ids its client gave) is stored once.
            let key = row.profile_id.key();
            if key != 0
                && series.profiles[..at]
                    .iter()
                    .rev()
                    .take_while(|r| r.timestamp_ns == row.timestamp_ns)
                    .any(|r| r.profile_id.key() == key)
            {
                continue;
            }
            stats.profiles += 1;
            stats.samples += row.stacks.len() as u64;
            stats.span_samples += row.span_count() as u64;
            stats.new_series += u64::from(created);
            series.profiles.insert(at, row);
        }
        if stats.profiles > 0 {
            self.stats.profiles += stats.profiles;
            self.stats.samples += stats.samples;
            self.stats.span_samples += stats.span_samples;
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
        self.label_bytes += series_bytes(labels);
        self.series.push(Series {
            labels: labels.clone(),
            fingerprint: fp,
            profiles: Vec::new(),
        });
        self.by_fingerprint.insert(fp, i as u32);
        (&mut self.series[i], true)
    }

    /// One head holding every row of `heads` (as [`Head::import_from`]
    /// copies them: a profile held by several, by series, timestamp and id,
    /// once), with one symbol table.
    pub fn merged<'a>(heads: impl IntoIterator<Item = &'a Head>) -> Head {
        let mut out = Head::new();
        let mut seen = HashSet::new();
        for h in heads {
            out.import_from(h, |_| true, i64::MIN, i64::MAX, &mut seen);
        }
        out
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
        self.import_rows(
            &other.symbols,
            &other.series,
            keep,
            RowParts::ALL,
            (start_ns, end_ns),
            seen,
        )
    }

    /// [`Head::import_from`] over any rows with their symbol table (a head,
    /// or a slice of a block), keeping of each row only `parts`: a row
    /// copied without stacks keeps its total, which is all that series and
    /// time-series queries read.
    pub fn import_rows(
        &mut self,
        symbols: &SymbolTable,
        series: &[Series],
        keep: impl Fn(&Series) -> bool,
        parts: RowParts,
        (start_ns, end_ns): (i64, i64),
        seen: &mut HashSet<(u64, i64, u64)>,
    ) -> InsertStats {
        let mut memo = ImportMemo::default();
        let mut stacks_memo: HashMap<u32, u32> = HashMap::new();
        let mut stats = InsertStats::default();
        for s in series.iter().filter(|s| keep(s)) {
            let rows = s.profiles_in(start_ns, end_ns);
            if rows.is_empty() {
                continue;
            }
            let mut new_rows = Vec::with_capacity(rows.len());
            for row in rows {
                let key = row.profile_id.key();
                if key != 0 && !seen.insert((s.fingerprint, row.timestamp_ns, key)) {
                    continue;
                }
                let stacks = if parts.stacks { &row.stacks[..] } else { &[] };
                let mut pairs: Vec<(u32, i64)> = stacks
                    .iter()
                    .zip(row.values.iter())
                    .map(|(&st, &v)| {
                        let id = *stacks_memo
                            .entry(st)
                            .or_insert_with(|| self.symbols.import_stack(symbols, st, &mut memo));
                        (id, v)
                    })
                    .collect();
                pairs.sort_unstable_by_key(|&(st, _)| st);
                let spans = row
                    .spans
                    .as_ref()
                    .filter(|_| parts.spans)
                    .and_then(|spans| {
                        merge_span_samples(
                            spans
                                .iter()
                                .map(|s| SpanSample {
                                    stack: *stacks_memo.entry(s.stack).or_insert_with(|| {
                                        self.symbols.import_stack(symbols, s.stack, &mut memo)
                                    }),
                                    ..*s
                                })
                                .collect(),
                        )
                    });
                stats.samples += pairs.len() as u64;
                stats.span_samples += spans.as_ref().map_or(0, |s| s.len() as u64);
                new_rows.push(ProfileRow {
                    timestamp_ns: row.timestamp_ns,
                    profile_id: row.profile_id,
                    total: row.total,
                    stacks: pairs.iter().map(|&(st, _)| st).collect(),
                    values: pairs.iter().map(|&(_, v)| v).collect(),
                    spans,
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
        self.stats.span_samples += stats.span_samples;
        self.stats.series += stats.new_series;
        stats
    }

    /// The profile type id of a series (its `__profile_type__` label).
    pub fn profile_type_of(series: &Series) -> &str {
        series.labels.get(names::PROFILE_TYPE).unwrap_or("")
    }
}

/// An estimate of the memory rows hold, in bytes: `profiles` profile rows
/// with `samples` `(stack, value)` pairs and `span_samples` span samples.
pub fn approx_row_bytes(profiles: u64, samples: u64, span_samples: u64) -> u64 {
    profiles * ROW_BYTES + samples * 12 + span_samples * SPAN_SAMPLE_BYTES
}

/// The size of a [`SpanSample`].
const SPAN_SAMPLE_BYTES: u64 = std::mem::size_of::<SpanSample>() as u64;

/// The size of a [`ProfileRow`] itself (its stacks and spans are apart).
const ROW_BYTES: u64 = std::mem::size_of::<ProfileRow>() as u64;

/// An estimate of the memory `series` (rows included) and `symbols` hold,
/// in bytes, for query budgets.
pub fn approx_rows_bytes(symbols: &SymbolTable, series: &[Series]) -> u64 {
    let (mut profiles, mut samples, mut spans) = (0, 0, 0);
    for r in series.iter().flat_map(|s| &s.profiles) {
        profiles += 1;
        samples += r.stacks.len() as u64;
        spans += r.span_count() as u64;
    }
    approx_tables_bytes(symbols, series) + approx_row_bytes(profiles, samples, spans)
}

/// An estimate of the memory `symbols` and the labels of `series` hold, in
/// bytes (interning tables included), for cache budgets.
pub fn approx_tables_bytes(symbols: &SymbolTable, series: &[Series]) -> u64 {
    let strings: usize = symbols.strings.items().iter().map(|s| s.len() + 24).sum();
    let stacks: usize = symbols
        .stacks
        .items()
        .iter()
        .map(|s| s.len() * 4 + 24)
        .sum();
    let locations: usize = symbols
        .locations
        .items()
        .iter()
        .map(|l| l.lines.len() * 16 + 40)
        .sum();
    let symbol_bytes =
        strings + stacks + locations + symbols.functions.len() * 24 + symbols.mappings.len() * 48;
    let series_bytes: usize = series
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
    (symbol_bytes * 2 + series_bytes) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::google::v1 as pprof;

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
            profile_id: ProfileId::from_key(1),
            profile: FlatProfile::from_proto(&tiny_profile()).unwrap(),
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

    /// Every way a series can list its samples (all of them, ascending; one;
    /// unsorted; one listed twice; none) gives rows sorted by stack with each
    /// stack's values summed (values are distinct powers of two, so equal
    /// sums mean equal sample sets).
    #[test]
    fn series_rows_are_sorted_by_stack_however_the_samples_are_listed() {
        // Six samples over three stacks: leaf 1; leaves 2,1; leaf 2.
        let mut p = tiny_profile();
        p.sample_type = vec![pprof::ValueType::default(); 2];
        let stacks: [&[u64]; 6] = [&[2, 1], &[1], &[2], &[1], &[2, 1], &[2]];
        p.sample = stacks
            .iter()
            .enumerate()
            .map(|(i, l)| pprof::Sample {
                location_id: l.to_vec(),
                value: vec![1 << i, 100 + i as i64],
                label: vec![],
            })
            .collect();
        let lists: [&[u32]; 5] = [&[0, 1, 2, 3, 4, 5], &[5], &[4, 0, 3], &[1, 1, 2], &[]];
        let mut head = Head::new();
        let series: Vec<SeriesSplit> = lists
            .iter()
            .enumerate()
            .flat_map(|(n, list)| {
                (0..2).map(move |value_index| SeriesSplit {
                    labels: Labels::from_pairs([
                        ("n", n.to_string()),
                        ("v", value_index.to_string()),
                    ]),
                    value_index,
                    samples: list.to_vec(),
                })
            })
            .collect();
        head.insert(&SplitProfile {
            profile_id: ProfileId::from_key(1),
            profile: FlatProfile::from_proto(&p).unwrap(),
            timestamp_ns: 10,
            series,
        })
        .unwrap();
        for (n, list) in lists.iter().enumerate() {
            for value_index in 0..2 {
                let labels =
                    Labels::from_pairs([("n", n.to_string()), ("v", value_index.to_string())]);
                let got = head.series().iter().find(|s| s.labels == labels);
                let mut want: std::collections::BTreeMap<&[u64], i64> = Default::default();
                for &i in *list {
                    *want.entry(stacks[i as usize]).or_default() +=
                        p.sample[i as usize].value[value_index];
                }
                let Some(series) = got else {
                    assert!(want.is_empty(), "series {n}/{value_index} missing");
                    continue;
                };
                let row = &series.profiles[0];
                assert!(row.stacks.is_sorted_by(|a, b| a < b), "{:?}", row.stacks);
                assert_eq!(row.stacks.len(), want.len());
                let mut got_sums: Vec<i64> = row.values.to_vec();
                let mut want_sums: Vec<i64> = want.values().copied().collect();
                got_sums.sort_unstable();
                want_sums.sort_unstable();
                assert_eq!(got_sums, want_sums, "series {n}/{value_index}");
                assert_eq!(row.total, want.values().sum::<i64>());
            }
        }
    }

    #[test]
    fn a_profile_sent_again_with_its_id_is_stored_once() {
        let mut head = Head::new();
        let split = |id: u64, ts: i64| SplitProfile {
            profile_id: ProfileId::from_key(id),
            profile: FlatProfile::from_proto(&tiny_profile()).unwrap(),
            timestamp_ns: ts,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([("service_name", "a")]),
                value_index: 0,
                samples: vec![0, 1, 2],
            }],
        };
        assert_eq!(head.insert(&split(7, 10)).unwrap().profiles, 1);
        // The same id and time again: nothing added.
        assert_eq!(head.insert(&split(7, 10)).unwrap(), InsertStats::default());
        // Another id at that time, or that id at another time: added.
        assert_eq!(head.insert(&split(8, 10)).unwrap().profiles, 1);
        assert_eq!(head.insert(&split(7, 11)).unwrap().profiles, 1);
        assert_eq!(head.series()[0].profiles.len(), 3);
        assert_eq!(head.stats().profiles, 3);
    }

    #[test]
    fn import_copies_a_filtered_slice_and_skips_replicas() {
        let mut a = Head::new();
        for (id, ts, svc) in [(1, 10, "x"), (2, 20, "x"), (3, 20, "y"), (4, 90, "x")] {
            a.insert(&SplitProfile {
                profile_id: ProfileId::from_key(id),
                profile: FlatProfile::from_proto(&tiny_profile()).unwrap(),
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

    fn label(p: &mut pprof::Profile, sample: usize, key: &str, value: &str) {
        let mut id = |s: &str| {
            let i = p.string_table.len() as i64;
            p.string_table.push(s.to_string());
            i
        };
        let (key, str) = (id(key), id(value));
        p.sample[sample].label.push(pprof::Label {
            key,
            str,
            ..Default::default()
        });
    }

    #[test]
    fn span_samples_are_kept_beside_an_unchanged_aggregate() {
        let mut p = tiny_profile();
        // Sample 0 and 1 share a stack; 0 has a span, 1 the older `profile_id`
        // spelling of another, 2 an unparsable id (no span).
        label(&mut p, 0, "span_id", "0100000000000000");
        label(&mut p, 0, "other", "x");
        label(&mut p, 1, "profile_id", "0200000000000000");
        label(&mut p, 2, "span_id", "nope");
        let mut head = Head::new();
        let split = SplitProfile {
            profile_id: ProfileId::from_key(1),
            profile: FlatProfile::from_proto(&p).unwrap(),
            timestamp_ns: 10,
            series: vec![SeriesSplit {
                labels: Labels::from_pairs([("service_name", "a")]),
                value_index: 0,
                samples: vec![0, 1, 2],
            }],
        };
        let st = head.insert(&split).unwrap();
        assert_eq!((st.samples, st.span_samples), (2, 2));
        let row = &head.series()[0].profiles[0];
        assert_eq!(row.total, 12);
        assert_eq!(row.values.iter().sum::<i64>(), 12);
        let spans = row.spans.as_deref().unwrap();
        assert_eq!(
            spans
                .iter()
                .map(|s| (s.span_id, s.value))
                .collect::<Vec<_>>(),
            vec![(1, 3), (2, 4)]
        );
        assert_eq!(spans[0].stack, spans[1].stack);

        // Import (a cluster answer) keeps them; a profile without spans pays nothing.
        head.insert(&SplitProfile {
            profile_id: ProfileId::from_key(2),
            profile: FlatProfile::from_proto(&tiny_profile()).unwrap(),
            ..split.clone()
        })
        .unwrap();
        let mut merged = Head::new();
        merged.import_from(&head, |_| true, 0, 100, &mut HashSet::new());
        let rows = &merged.series()[0].profiles;
        assert_eq!(rows.iter().map(ProfileRow::span_count).sum::<usize>(), 2);
        assert!(rows.iter().any(|r| r.spans.is_none()));
        assert_eq!(merged.stats().span_samples, 2);
        assert_eq!(head.stats().span_samples, 2);
    }

    #[test]
    fn bad_location_leaves_head_unchanged() {
        let mut head = Head::new();
        let mut p = tiny_profile();
        p.sample[2].location_id = vec![99];
        let split = SplitProfile {
            profile_id: ProfileId::from_key(1),
            profile: FlatProfile::from_proto(&p).unwrap(),
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
