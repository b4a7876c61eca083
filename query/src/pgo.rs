//! The Go PGO shape of a merged pprof (`stack_trace_selector.go_pgo` on
//! `SelectMergeProfile`): what `go build -pgo` needs and no more.
//!
//! Go's compiler reads a CPU profile's call edges (caller, call-site line,
//! callee) and their weights. Keeping only the leaf-most frames of every
//! stack keeps the hot edges and makes the file small; dropping the leaf
//! frame's own line (it is no call site) merges the samples of the same
//! callee taken at different lines.

use std::collections::HashMap;

use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::proto::types::v1::GoPgo;

/// A location by content: mapping, address and (function, line) of each line.
type LocationKey = (u64, u64, Vec<(u64, i64)>);

/// Rewrites `p` into the Go PGO shape: every stack cut to its
/// `keep_locations` leaf-most frames, the leaf's line dropped when
/// `aggregate_callees`, equal stacks merged (values summed, first
/// occurrence's order kept), and locations, functions and mappings no
/// sample uses any more removed.
pub fn apply(p: &mut pprof::Profile, pgo: &GoPgo) {
    let twin = if pgo.aggregate_callees {
        line_less_twins(p)
    } else {
        HashMap::new()
    };
    let mut merged: Vec<pprof::Sample> = Vec::with_capacity(p.sample.len());
    let mut slot: HashMap<Vec<u64>, usize> = HashMap::new();
    for s in std::mem::take(&mut p.sample) {
        let mut locs = s.location_id;
        if pgo.keep_locations > 0 {
            locs.truncate(pgo.keep_locations as usize);
        }
        if let Some(leaf) = locs.first_mut()
            && let Some(&bare) = twin.get(leaf)
        {
            *leaf = bare;
        }
        match slot.get(&locs) {
            Some(&i) => {
                for (have, add) in merged[i].value.iter_mut().zip(&s.value) {
                    *have = have.saturating_add(*add);
                }
            }
            None => {
                slot.insert(locs.clone(), merged.len());
                merged.push(pprof::Sample {
                    location_id: locs,
                    ..s
                });
            }
        }
    }
    p.sample = merged;
    drop_unused(p);
}

/// For every location, the id of the same location with its first line's
/// number 0 (an existing equal location, or one added to `p`). Those no
/// sample ends up using are dropped with the rest.
fn line_less_twins(p: &mut pprof::Profile) -> HashMap<u64, u64> {
    let mut by_key: HashMap<LocationKey, u64> =
        p.location.iter().map(|l| (location_key(l), l.id)).collect();
    let mut next_id = p.location.iter().map(|l| l.id).max().unwrap_or(0);
    let mut twin = HashMap::with_capacity(p.location.len());
    for i in 0..p.location.len() {
        let mut bare = p.location[i].clone();
        if let Some(first) = bare.line.first_mut() {
            first.line = 0;
        }
        let id = *by_key.entry(location_key(&bare)).or_insert_with(|| {
            next_id += 1;
            bare.id = next_id;
            p.location.push(bare);
            next_id
        });
        twin.insert(p.location[i].id, id);
    }
    twin
}

fn location_key(l: &pprof::Location) -> LocationKey {
    (
        l.mapping_id,
        l.address,
        l.line.iter().map(|ln| (ln.function_id, ln.line)).collect(),
    )
}

/// Removes the locations no sample uses, then the functions and mappings
/// no remaining location uses.
fn drop_unused(p: &mut pprof::Profile) {
    let used: std::collections::HashSet<u64> = p
        .sample
        .iter()
        .flat_map(|s| s.location_id.iter().copied())
        .collect();
    p.location.retain(|l| used.contains(&l.id));
    let functions: std::collections::HashSet<u64> = p
        .location
        .iter()
        .flat_map(|l| l.line.iter().map(|ln| ln.function_id))
        .collect();
    p.function.retain(|f| functions.contains(&f.id));
    let mappings: std::collections::HashSet<u64> =
        p.location.iter().map(|l| l.mapping_id).collect();
    p.mapping.retain(|m| mappings.contains(&m.id));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(id: u64, function_id: u64, line: i64) -> pprof::Location {
        pprof::Location {
            id,
            line: vec![pprof::Line { function_id, line }],
            ..Default::default()
        }
    }

    fn sample(locs: &[u64], v: i64) -> pprof::Sample {
        pprof::Sample {
            location_id: locs.to_vec(),
            value: vec![v],
            label: vec![],
        }
    }

    /// Functions 1..=4; locations 1, 2 = f1 at lines 10, 11 (two leaf
    /// lines of one callee), 3 = f2:20, 4 = f3:30, 5 = f4:40.
    fn profile() -> pprof::Profile {
        pprof::Profile {
            function: (1..=4)
                .map(|id| pprof::Function {
                    id,
                    ..Default::default()
                })
                .collect(),
            location: vec![
                loc(1, 1, 10),
                loc(2, 1, 11),
                loc(3, 2, 20),
                loc(4, 3, 30),
                loc(5, 4, 40),
            ],
            sample: vec![
                sample(&[1, 3, 4, 5], 5),
                sample(&[2, 3, 4], 7),
                sample(&[3, 4], 11),
            ],
            ..Default::default()
        }
    }

    fn stacks(p: &pprof::Profile) -> Vec<(Vec<(u64, i64)>, i64)> {
        let by_id: HashMap<u64, &pprof::Location> = p.location.iter().map(|l| (l.id, l)).collect();
        p.sample
            .iter()
            .map(|s| {
                let frames = s
                    .location_id
                    .iter()
                    .map(|id| {
                        let l = by_id[id];
                        (l.line[0].function_id, l.line[0].line)
                    })
                    .collect();
                (frames, s.value[0])
            })
            .collect()
    }

    #[test]
    fn keeps_the_leaf_frames_and_merges_equal_stacks() {
        let mut p = profile();
        apply(
            &mut p,
            &GoPgo {
                keep_locations: 2,
                aggregate_callees: false,
            },
        );
        assert_eq!(
            stacks(&p),
            vec![
                (vec![(1, 10), (2, 20)], 5),
                (vec![(1, 11), (2, 20)], 7),
                (vec![(2, 20), (3, 30)], 11),
            ]
        );
        // f4's location is no longer used, nor is f4.
        assert!(p.location.iter().all(|l| l.id != 5));
        assert!(p.function.iter().all(|f| f.id != 4));
    }

    #[test]
    fn aggregating_callees_merges_one_callee_at_different_lines() {
        let mut p = profile();
        apply(
            &mut p,
            &GoPgo {
                keep_locations: 2,
                aggregate_callees: true,
            },
        );
        assert_eq!(
            stacks(&p),
            vec![(vec![(1, 0), (2, 20)], 12), (vec![(2, 0), (3, 30)], 11)]
        );
        let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
        assert_eq!(total, 23, "nothing lost");
    }

    #[test]
    fn zero_keeps_every_frame() {
        let mut p = profile();
        apply(
            &mut p,
            &GoPgo {
                keep_locations: 0,
                aggregate_callees: false,
            },
        );
        assert_eq!(stacks(&p), stacks(&profile()));
    }
}
