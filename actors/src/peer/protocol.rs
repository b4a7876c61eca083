//! The node-to-node messages and their version. Every internal message is
//! defined here; a change to any of them bumps [`PROTOCOL_VERSION`], which
//! nodes exchange on every call (a mismatch is refused, never misread).
//!
//! | method | request | answer |
//! |---|---|---|
//! | [`PUSH`] | an `ignis_storage::record` (the tenant's WAL record) | [`PushReply`] |
//! | [`SELECT`] | [`SelectRequest`]: tenant, range and the query's [`Scope`] | [`encode_answer`]: time bounds + a head slice (`IGNHED04`) |
//! | [`ENQUEUE`] | [`SubQuery`] (frontend → scheduler) | [`SubAnswer`]: the merges or why not, once a querier ran it |
//! | [`NEXT`] | [`NextRequest`] (querier worker → scheduler; waits for work) | [`NextReply`]: a job or none |
//! | [`DONE`] | [`DoneRequest`] (querier worker → scheduler) | empty |
//! | [`CANCELLED`] | [`CancelledRequest`] (querier worker → scheduler; waits) | `bool`: the job is no longer wanted |

use std::collections::BTreeMap;

use ignis_query::selector::{MatchOp, Matcher};
use ignis_query::timeseries::{Bucket, Exemplar, SeriesGroups, SeriesPlan};
use ignis_query::{ProfileSelector, Scope, Selection, SpanSelector};
use ignis_storage::{Head, Labels, decode_head, encode_head};

use super::{Listed, PeerError, PeerSlice};

/// The internal protocol version; bump on any change to an internal message.
/// 2: fetch answers carry span samples (head wire `IGNHED02`).
/// 3: `select` carries the query's scope; answers carry the peer's time
/// bounds and rows without the parts the scope does not need (`IGNHED03`).
/// 5: the query-scheduler's `enqueue`, `next` and `done`.
/// 6: `select` says whether a merge-only query lets peers answer from
/// rollups (blocks no other block or ingester can duplicate); a sub-query
/// may bucket a `SelectSeries` part.
/// 7: selections carry profile ids (`profile_id_selector`); a `SelectSeries`
/// part may keep an exemplar per bucket.
/// 8: records (`IGNREC04`), head slices (`IGNHED04`) and exemplars carry
/// whole 128-bit profile ids.
/// 9: a sub-query says whether it runs in the bulk lane; a series sub-query
/// buckets each of its selections apart.
/// 11: selections carry trace ids (`trace_id_selector`) and may keep every
/// span (a span heatmap); span samples of head slices (`IGNHED05`) carry
/// their trace ids.
pub const PROTOCOL_VERSION: u32 = 11;

/// Stores a replica of a push.
pub const PUSH: &str = "push";
/// Answers what a query's scope selects of a tenant.
pub const SELECT: &str = "select";
/// Queues a sub-query on a query-scheduler; answers once a querier ran it.
pub const ENQUEUE: &str = "enqueue";
/// A querier worker asks a query-scheduler for its next sub-query.
pub const NEXT: &str = "next";
/// A querier worker hands a query-scheduler the answer of a sub-query.
pub const DONE: &str = "done";
/// A querier worker running a job waits to learn its frontend went away.
pub const CANCELLED: &str = "cancelled";

/// What an ingester stored of a replicated push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct PushReply {
    /// Profile rows stored.
    pub profiles: u64,
    /// Samples stored.
    pub samples: u64,
}

/// Asks a peer for what a query selects of a tenant's data.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SelectRequest {
    /// Tenant id.
    pub tenant: String,
    /// Start of the query's range, ns (inclusive).
    pub start_ns: i64,
    /// End of the query's range, ns (inclusive).
    pub end_ns: i64,
    /// The query's selections ([`Scope::selections`]).
    pub selections: Vec<WireSelection>,
    /// Whether the query merges stacks ([`Scope::stacks`]).
    pub stacks: bool,
    /// Blocks the asking node reads itself: a peer does not read them again
    /// (a block held by several store-gateways is read once per query).
    pub skip_blocks: Vec<String>,
    /// The query only merges stacks ([`Scope::rollup_segments`]): a block
    /// no other block overlaps, older than any ingester still holds, may
    /// answer from its rollups ([`SelectRequest::rollup_scope`]).
    pub rollups: bool,
    /// The query only lists the series of its selections
    /// ([`Scope::labels_only`]: label names and values, series, profile
    /// types): the peer answers with the label sets, not rows.
    pub listing: bool,
}

/// A [`Selection`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireSelection {
    /// Label matchers, all of which must match.
    pub matchers: Vec<WireMatcher>,
    /// Inclusive start, ns.
    pub start_ns: i64,
    /// Inclusive end, ns.
    pub end_ns: i64,
    /// Selected span ids, when the selection has a span or trace selector.
    pub spans: Option<Vec<u64>>,
    /// Selected trace ids (with `spans`).
    pub traces: Vec<[u8; 16]>,
    /// Whether every sample naming a span is selected (with `spans`).
    pub every_span: bool,
    /// Selected profile ids, when the selection has a profile selector.
    pub profiles: Option<Vec<u64>>,
}

/// A label [`Matcher`] on the wire (its regex is compiled again on arrival).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireMatcher {
    /// Label name.
    pub name: String,
    /// 0 `=`, 1 `!=`, 2 `=~`, 3 `!~`.
    pub op: u8,
    /// Value or regex source.
    pub value: String,
}

impl SelectRequest {
    /// The request for `scope` of `tenant` within `[start_ns, end_ns]`.
    pub fn new(tenant: &str, scope: &Scope, start_ns: i64, end_ns: i64) -> Self {
        Self {
            tenant: tenant.to_string(),
            start_ns,
            end_ns,
            selections: scope.selections.iter().map(WireSelection::of).collect(),
            stacks: scope.stacks,
            skip_blocks: Vec::new(),
            rollups: scope.rollup_segments().is_some(),
            listing: scope.labels_only(),
        }
    }

    /// The same request, asking peers not to read `blocks` (the asking
    /// node reads them).
    pub fn skipping_blocks(mut self, blocks: Vec<String>) -> Self {
        self.skip_blocks = blocks;
        self
    }

    /// The scope it carries; a bad matcher is a bad request.
    pub fn scope(&self) -> Result<Scope, PeerError> {
        let selections = self
            .selections
            .iter()
            .map(WireSelection::selection)
            .collect::<Result<Vec<_>, PeerError>>()?;
        // A listing is answered with label sets (blocks its ranges hold
        // whole answer from their series tables); otherwise a peer copies
        // rows for the asking node to merge. Never rollups.
        Ok(Scope {
            selections,
            stacks: self.stacks && !self.listing,
            per_profile: !self.listing,
            rollups: false,
            all_spans: false,
            series: Vec::new(),
        })
    }
}

impl SelectRequest {
    /// The scope blocks that may answer from their rollups read with
    /// (`None` unless [`SelectRequest::rollups`]): the query's own, merging
    /// stacks only. Their rows are rollup windows (no profile ids), which
    /// the asking node merges as any rows.
    pub fn rollup_scope(&self) -> Result<Option<Scope>, PeerError> {
        if !self.rollups {
            return Ok(None);
        }
        let scope = Scope {
            per_profile: false,
            rollups: true,
            ..self.scope()?
        };
        Ok(scope.rollup_segments().is_some().then_some(scope))
    }
}

impl WireSelection {
    /// `sel` on the wire.
    pub fn of(sel: &Selection) -> Self {
        let op = |op: MatchOp| match op {
            MatchOp::Equal => 0,
            MatchOp::NotEqual => 1,
            MatchOp::Regex => 2,
            MatchOp::NotRegex => 3,
        };
        Self {
            matchers: sel
                .matchers
                .iter()
                .map(|m| WireMatcher {
                    name: m.name.clone(),
                    op: op(m.op),
                    value: m.value.clone(),
                })
                .collect(),
            start_ns: sel.start_ns,
            end_ns: sel.end_ns,
            spans: sel.spans.as_ref().map(|sp| sorted(sp.ids())),
            every_span: sel.spans.as_ref().is_some_and(|sp| sp.keeps_every_span()),
            traces: sel
                .spans
                .as_ref()
                .map_or_else(Vec::new, |sp| sorted(sp.trace_ids())),
            profiles: sel.profiles.as_ref().map(|p| sorted(p.ids())),
        }
    }

    /// The selection it carries; a bad matcher is a bad request.
    pub fn selection(&self) -> Result<Selection, PeerError> {
        let matchers = self
            .matchers
            .iter()
            .map(|m| {
                let op = match m.op {
                    0 => MatchOp::Equal,
                    1 => MatchOp::NotEqual,
                    2 => MatchOp::Regex,
                    3 => MatchOp::NotRegex,
                    other => {
                        return Err(PeerError::BadRequest(format!(
                            "unknown matcher operator {other}"
                        )));
                    }
                };
                Matcher::new(m.name.clone(), op, m.value.clone()).map_err(PeerError::BadRequest)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Selection {
            matchers,
            start_ns: self.start_ns,
            end_ns: self.end_ns,
            spans: self.spans.as_ref().map(|ids| {
                SpanSelector::from_ids(ids.iter().copied(), self.traces.iter().copied())
                    .with_every_span(self.every_span)
            }),
            profiles: self
                .profiles
                .as_ref()
                .map(|ids| ProfileSelector::from_ids(ids.iter().copied())),
        })
    }
}

/// `ids` in ascending order (a selection's wire form does not depend on
/// hash order).
fn sorted<T: Ord>(ids: impl Iterator<Item = T>) -> Vec<T> {
    let mut ids: Vec<T> = ids.collect();
    ids.sort_unstable();
    ids
}

/// Part of a query the query-frontend hands a query-scheduler: the merges of
/// `selections` over a tenant's data in `[start_ns, end_ns]`.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct SubQuery {
    /// Tenant id (one tenant: federated reads are not split).
    pub tenant: String,
    /// Start of the part's range, ns (inclusive).
    pub start_ns: i64,
    /// End of the part's range, ns (inclusive).
    pub end_ns: i64,
    /// The selections to merge, each within the range.
    pub selections: Vec<WireSelection>,
    /// When set, the sub-query buckets the totals of its one selection as
    /// this `SelectSeries` part says, instead of merging stacks.
    pub series: Option<WireSeriesPlan>,
    /// Runs in the bulk lane (`ignis_query::lane`): its tenant had another
    /// query in flight at the frontend.
    pub bulk: bool,
}

/// A `SelectSeries` part on the wire (`ignis_query::timeseries::SeriesPlan`
/// without its selection, which is the sub-query's).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireSeriesPlan {
    /// Labels the series are grouped by.
    pub group_by: Vec<String>,
    /// The whole query's start (ms): buckets align to it.
    pub start_ms: i64,
    /// Bucket length (ms).
    pub step_ms: i64,
    /// Root-first frames a stack must start with to count.
    pub call_site: Vec<String>,
    /// Whether each bucket keeps its exemplar.
    pub exemplars: bool,
}

impl WireSeriesPlan {
    /// `plan` on the wire (its selection travels as the sub-query's).
    pub fn of(plan: &SeriesPlan) -> Self {
        Self {
            group_by: plan.group_by.clone(),
            start_ms: plan.start_ms,
            step_ms: plan.step_ms,
            call_site: plan.call_site.clone(),
            exemplars: plan.exemplars,
        }
    }

    /// The plan over `sel`.
    pub fn plan(self, sel: Selection) -> SeriesPlan {
        SeriesPlan {
            sel,
            group_by: self.group_by,
            start_ms: self.start_ms,
            step_ms: self.step_ms,
            call_site: self.call_site,
            exemplars: self.exemplars,
        }
    }
}

/// One series' bucketed totals on the wire.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireSeriesGroup {
    /// The group's labels.
    pub labels: Vec<(String, String)>,
    /// `(bucket end ms, sum of totals, profiles)` per bucket.
    pub points: Vec<(i64, f64, u64)>,
    /// The buckets' exemplars, `(bucket end ms, exemplar)`, ascending.
    pub exemplars: Vec<(i64, WireExemplar)>,
}

/// An [`Exemplar`] on the wire.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireExemplar {
    /// The profile's timestamp, ns.
    pub timestamp_ns: i64,
    /// Its id's key (low 64 bits).
    pub profile_id: u64,
    /// Its id's high 64 bits.
    pub profile_id_hi: u64,
    /// Its total.
    pub value: i64,
    /// Its series' labels.
    pub labels: Vec<(String, String)>,
}

fn wire_labels(labels: &ignis_storage::Labels) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl WireSeriesGroup {
    /// `groups` on the wire.
    pub fn of(groups: SeriesGroups) -> Vec<Self> {
        groups
            .into_iter()
            .map(|(labels, buckets)| {
                let mut points = Vec::with_capacity(buckets.len());
                let mut exemplars = Vec::new();
                for (ts, b) in buckets {
                    points.push((ts, b.sum, b.count));
                    if let Some(e) = b.exemplar {
                        let e = WireExemplar {
                            timestamp_ns: e.timestamp_ns,
                            profile_id: e.profile_id.lo,
                            profile_id_hi: e.profile_id.hi,
                            value: e.value,
                            labels: wire_labels(&e.labels),
                        };
                        exemplars.push((ts, e));
                    }
                }
                Self {
                    labels: wire_labels(&labels),
                    points,
                    exemplars,
                }
            })
            .collect()
    }

    /// The bucketed totals `wire` carries.
    pub fn into_groups(wire: Vec<Self>) -> SeriesGroups {
        wire.into_iter()
            .map(|g| {
                let mut buckets: BTreeMap<i64, Bucket> = g
                    .points
                    .into_iter()
                    .map(|(ts, sum, count)| {
                        let b = Bucket {
                            sum,
                            count,
                            exemplar: None,
                        };
                        (ts, b)
                    })
                    .collect();
                for (ts, e) in g.exemplars {
                    buckets.entry(ts).or_default().exemplar = Some(Exemplar {
                        timestamp_ns: e.timestamp_ns,
                        profile_id: ignis_storage::ProfileId {
                            hi: e.profile_id_hi,
                            lo: e.profile_id,
                        },
                        value: e.value,
                        labels: ignis_storage::Labels::from_pairs(e.labels),
                        // Series exemplars stand for whole profiles.
                        span_id: 0,
                        trace_id: Default::default(),
                    });
                }
                (ignis_storage::Labels::from_pairs(g.labels), buckets)
            })
            .collect()
    }
}

/// How a sub-query failed, on the wire (the querier's `QueryFailure`).
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct WireFailure {
    /// 0 invalid argument, 1 unimplemented, 2 resource exhausted,
    /// 3 unavailable, 4 too many queries, 5 corrupt data, 6 internal.
    pub kind: u8,
    /// The message the client sees.
    pub message: String,
}

/// A sub-query's answer: the encoded merges (`ignis_query::MergedStacks`),
/// one per selection, or why there are none.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub enum SubAnswer {
    /// One encoded merge per selection of the sub-query.
    Merged(Vec<Vec<u8>>),
    /// A `SelectSeries` part's bucketed totals, one set per selection.
    Series(Vec<Vec<WireSeriesGroup>>),
    /// The sub-query failed, or no querier could run it.
    Failed(WireFailure),
}

/// A querier worker's request for work.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NextRequest {
    /// The worker's node id (the scheduler re-queues its jobs if it leaves).
    pub worker: String,
    /// How long the scheduler may wait for a job before answering none, ms.
    pub wait_ms: u64,
}

/// A job for a querier worker, or none within the wait.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct NextReply {
    /// The job: its id at the scheduler and the sub-query.
    pub job: Option<(u64, SubQuery)>,
}

/// A querier worker's wait for a job to be no longer wanted.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct CancelledRequest {
    /// The job id.
    pub id: u64,
    /// How long the scheduler may wait before answering "still wanted", ms.
    pub wait_ms: u64,
}

/// A querier worker's answer to a job.
#[derive(Debug, Clone, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub struct DoneRequest {
    /// The job id.
    pub id: u64,
    /// The worker's node id.
    pub worker: String,
    /// The answer.
    pub answer: SubAnswer,
}

/// Encodes an internal message.
pub fn encode<T>(msg: &T) -> Result<Vec<u8>, PeerError>
where
    T: for<'a> rkyv::Serialize<
            rkyv::api::high::HighSerializer<
                rkyv::util::AlignedVec,
                rkyv::ser::allocator::ArenaHandle<'a>,
                rkyv::rancor::Error,
            >,
        >,
{
    rkyv::to_bytes::<rkyv::rancor::Error>(msg)
        .map(|v| v.to_vec())
        .map_err(|e| PeerError::Decode(e.to_string()))
}

/// Decodes an internal message, validating it (bad bytes give an error, never a panic).
pub fn decode<T>(bytes: &[u8]) -> Result<T, PeerError>
where
    T: rkyv::Archive,
    T::Archived: for<'a> rkyv::bytecheck::CheckBytes<rkyv::api::high::HighValidator<'a, rkyv::rancor::Error>>
        + rkyv::Deserialize<T, rkyv::api::high::HighDeserializer<rkyv::rancor::Error>>,
{
    let mut buf = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    buf.extend_from_slice(bytes);
    rkyv::from_bytes::<T, rkyv::rancor::Error>(&buf).map_err(|e| PeerError::Decode(e.to_string()))
}

/// The label sets a peer found over one range of a listing, on the wire.
#[derive(Debug, Clone, PartialEq, Eq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct WireListed {
    start_ns: i64,
    end_ns: i64,
    labels: Vec<Vec<(String, String)>>,
}

/// Length of the bounds header of a [`SELECT`] answer.
const BOUNDS_LEN: usize = 17;

/// A [`SELECT`] answer: one byte (1 when bounds follow), the oldest and
/// newest profile timestamps the peer holds (two little-endian `i64`,
/// zero without bounds), the length of the listed label sets (`u64`) and
/// them (rkyv, per time range; empty unless the request was a listing),
/// then the selected rows as an encoded head.
pub fn encode_answer(slice: &PeerSlice) -> Result<Vec<u8>, PeerError> {
    let head = encode_head(&slice.head).map_err(|e| PeerError::Internal(e.to_string()))?;
    let listed: Vec<WireListed> = slice
        .listed
        .iter()
        .map(|l| WireListed {
            start_ns: l.range.0,
            end_ns: l.range.1,
            labels: l
                .labels
                .iter()
                .map(|l| {
                    l.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect()
                })
                .collect(),
        })
        .collect();
    let listed = encode(&listed)?;
    let (flag, (lo, hi)) = match slice.bounds {
        Some(b) => (1u8, b),
        None => (0u8, (0, 0)),
    };
    let mut out = Vec::with_capacity(BOUNDS_LEN + 8 + listed.len() + head.len());
    out.push(flag);
    out.extend_from_slice(&lo.to_le_bytes());
    out.extend_from_slice(&hi.to_le_bytes());
    out.extend_from_slice(&(listed.len() as u64).to_le_bytes());
    out.extend_from_slice(&listed);
    out.extend_from_slice(&head);
    Ok(out)
}

/// Decodes a [`SELECT`] answer, checking every reference.
pub fn decode_answer(bytes: &[u8]) -> Result<PeerSlice, PeerError> {
    let bad = |what: &str| PeerError::Decode(format!("select answer: {what}"));
    if bytes.len() < BOUNDS_LEN + 8 {
        return Err(bad("shorter than its header"));
    }
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[at..at + 8]);
        i64::from_le_bytes(w)
    };
    let bounds = match bytes[0] {
        0 => None,
        1 => Some((word(1), word(9))),
        _ => return Err(bad("bad bounds flag")),
    };
    let listed_len = usize::try_from(word(BOUNDS_LEN) as u64)
        .ok()
        .filter(|&n| n <= bytes.len() - BOUNDS_LEN - 8)
        .ok_or_else(|| bad("listed label sets past its end"))?;
    let at = BOUNDS_LEN + 8;
    let listed: Vec<WireListed> = decode(&bytes[at..at + listed_len])?;
    let listed = listed
        .into_iter()
        .map(|l| Listed {
            range: (l.start_ns, l.end_ns),
            labels: l.labels.into_iter().map(Labels::from_pairs).collect(),
        })
        .collect();
    let head: Head =
        decode_head(&bytes[at + listed_len..]).map_err(|e| PeerError::Decode(e.to_string()))?;
    Ok(PeerSlice {
        head,
        bounds,
        listed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_bad_bytes_fail() {
        let scope = Scope {
            selections: vec![Selection {
                matchers: vec![
                    Matcher::equal("service_name", "a"),
                    Matcher::new("pod", MatchOp::Regex, "p-[0-9]+").unwrap(),
                ],
                start_ns: 1,
                end_ns: 2,
                spans: Some(SpanSelector::from_ids([7, 3], [[5; 16]])),
                profiles: Some(ProfileSelector::from_ids([9, 4])),
            }],
            stacks: true,
            per_profile: false,
            rollups: true,
            all_spans: false,
            series: Vec::new(),
        };
        let req = SelectRequest::new("t", &scope, 0, 10);
        let bytes = encode(&req).unwrap();
        let back = decode::<SelectRequest>(&bytes).unwrap();
        assert_eq!(back, req);
        let again = back.scope().unwrap();
        assert_eq!(
            SelectRequest::new("t", &again, 0, 10),
            SelectRequest {
                rollups: false,
                ..req.clone()
            }
        );
        assert!(!again.rollups, "a peer copies rows, never rollups");
        // A merge-only query lets safe blocks answer from rollups; one
        // with a span or profile selector does not.
        assert!(!req.rollups && back.rollup_scope().unwrap().is_none());
        let mut merge_only = scope.clone();
        merge_only.selections[0].spans = None;
        assert!(!SelectRequest::new("t", &merge_only, 0, 10).rollups);
        merge_only.selections[0].profiles = None;
        let req = SelectRequest::new("t", &merge_only, 0, 10);
        let rs = req.rollup_scope().unwrap().expect("a rollup scope");
        assert!(req.rollups && rs.rollups && !rs.per_profile && rs.stacks);
        let labels =
            |pod: &str| ignis_storage::Labels::from_pairs([("service_name", "a"), ("pod", pod)]);
        assert!(again.wants(&labels("p-12")) && !again.wants(&labels("q-1")));
        assert!(decode::<SelectRequest>(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode::<PushReply>(b"").is_err());

        let mut bad = req.clone();
        bad.selections[0].matchers[0].op = 9;
        assert!(matches!(bad.scope(), Err(PeerError::BadRequest(_))));
        bad.selections[0].matchers[0] = WireMatcher {
            name: "x".into(),
            op: 2,
            value: "(".into(),
        };
        assert!(matches!(bad.scope(), Err(PeerError::BadRequest(_))));
    }

    #[test]
    fn answers_round_trip_and_bad_bytes_fail() {
        let listed = vec![
            Listed {
                range: (1, 5),
                labels: vec![
                    Labels::from_pairs([("pod", "a"), ("service_name", "s")]),
                    Labels::from_pairs([("pod", "b")]),
                ],
            },
            Listed {
                range: (6, 9),
                labels: Vec::new(),
            },
        ];
        let slice = PeerSlice {
            head: Head::new(),
            bounds: Some((-5, 9)),
            listed: listed.clone(),
        };
        let bytes = encode_answer(&slice).unwrap();
        let back = decode_answer(&bytes).unwrap();
        assert_eq!(back.bounds, Some((-5, 9)));
        assert!(back.head.is_empty());
        assert_eq!(back.listed, listed);
        let mut long = bytes.clone();
        long[17] = 0xff;
        assert!(decode_answer(&long).is_err(), "listed length past the end");
        assert!(decode_answer(&bytes[..10]).is_err());
        let mut flag = bytes.clone();
        flag[0] = 7;
        assert!(decode_answer(&flag).is_err());
        assert!(decode_answer(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn series_groups_round_trip_with_their_exemplars() {
        let labels = ignis_storage::Labels::from_pairs([("pod", "a")]);
        let exemplar = Exemplar {
            timestamp_ns: 1_500_000_000,
            profile_id: ignis_storage::ProfileId { hi: 9, lo: 42 },
            value: 7,
            labels: ignis_storage::Labels::from_pairs([("pod", "a"), ("region", "r1")]),
            span_id: 0,
            trace_id: Default::default(),
        };
        let buckets: BTreeMap<i64, Bucket> = [
            (
                1_000,
                Bucket {
                    sum: 7.0,
                    count: 1,
                    exemplar: None,
                },
            ),
            (
                2_000,
                Bucket {
                    sum: 12.5,
                    count: 2,
                    exemplar: Some(exemplar),
                },
            ),
        ]
        .into_iter()
        .collect();
        let groups: SeriesGroups = [(labels, buckets)].into_iter().collect();
        let answer = SubAnswer::Series(vec![WireSeriesGroup::of(groups.clone())]);
        let back = decode::<SubAnswer>(&encode(&answer).unwrap()).unwrap();
        let SubAnswer::Series(mut wire) = back else {
            panic!("not a series answer");
        };
        assert_eq!(wire.len(), 1);
        assert_eq!(WireSeriesGroup::into_groups(wire.remove(0)), groups);
    }
}
