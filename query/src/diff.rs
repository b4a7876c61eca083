//! Flame graph diffs: two call trees aligned on one shape (reference §5.6,
//! `FlameGraphDiff`), laid out as `[xL, totalL, selfL, xR, totalR, selfR, name]`.

use std::collections::HashMap;

use ignis_storage::proto::querier::v1 as q;

use crate::flamegraph::{Cut, FlameTree};

#[derive(Debug, Default)]
struct DiffNode {
    name: String,
    left: (i64, i64),
    right: (i64, i64),
    children: Vec<DiffNode>,
}

type Side<'a> = Option<(&'a FlameTree, u32)>;

fn align<'a>(l: Side<'a>, r: Side<'a>) -> DiffNode {
    let (ln, rn) = (l.map(|(t, n)| t.node(n)), r.map(|(t, n)| t.node(n)));
    let name = ln.or(rn).map_or("", |n| n.0).to_string();
    let mut by_name: Vec<(&str, Option<u32>, Option<u32>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (is_left, node) in [(true, ln), (false, rn)] {
        let (Some((_, _, _, children)), Some((tree, _))) = (node, if is_left { l } else { r })
        else {
            continue;
        };
        for &c in children {
            let cname = tree.node(c).0;
            let i = *index.entry(cname).or_insert_with(|| {
                by_name.push((cname, None, None));
                by_name.len() - 1
            });
            if is_left {
                by_name[i].1 = Some(c);
            } else {
                by_name[i].2 = Some(c);
            }
        }
    }
    by_name.sort_by(|a, b| a.0.cmp(b.0));
    DiffNode {
        name,
        left: ln.map_or((0, 0), |n| (n.1, n.2)),
        right: rn.map_or((0, 0), |n| (n.1, n.2)),
        children: by_name
            .into_iter()
            .map(|(_, a, b)| {
                align(
                    a.and_then(|a| l.map(|(t, _)| (t, a))),
                    b.and_then(|b| r.map(|(t, _)| (t, b))),
                )
            })
            .collect(),
    }
}

fn collect_max(n: &DiffNode, out: &mut Vec<i64>) {
    for c in &n.children {
        out.push(c.left.0.max(c.right.0));
        collect_max(c, out);
    }
}

/// Aligns `left` and `right` and encodes the diff, truncated to `max_nodes`.
pub fn diff_flamegraph(left: &FlameTree, right: &FlameTree, max_nodes: usize) -> q::FlameGraphDiff {
    let root = align(Some((left, 0)), Some((right, 0)));
    let mut totals = Vec::new();
    collect_max(&root, &mut totals);
    // As in a flame graph ([`Cut`]), in the walk's order.
    let mut cut = Cut::new(totals, max_nodes);
    let mut names = vec!["total".to_string()];
    let mut name_index: HashMap<String, i64> = HashMap::new();
    let mut levels: Vec<Vec<i64>> = Vec::new();
    let mut max_self = 0i64;
    // (node, xL, xR, depth); synthetic `other` nodes carry their own sums.
    enum Item<'a> {
        Node(&'a DiffNode, i64, i64, usize),
        Other((i64, i64), i64, i64, usize),
    }
    let mut stack = vec![Item::Node(&root, 0, 0, 0)];
    while let Some(item) = stack.pop() {
        let (name, l, r, xl, xr, depth, node) = match item {
            Item::Node(n, xl, xr, d) => (n.name.as_str(), n.left, n.right, xl, xr, d, Some(n)),
            Item::Other((lt, rt), xl, xr, d) => ("other", (lt, lt), (rt, rt), xl, xr, d, None),
        };
        let idx = if depth == 0 {
            0
        } else {
            *name_index.entry(name.to_string()).or_insert_with(|| {
                names.push(name.to_string());
                names.len() as i64 - 1
            })
        };
        if levels.len() <= depth {
            levels.resize_with(depth + 1, Vec::new);
        }
        levels[depth].extend_from_slice(&[xl, l.0, l.1, xr, r.0, r.1, idx]);
        if depth > 0 {
            max_self = max_self.max(l.1).max(r.1);
        }
        let Some(n) = node else { continue };
        let (mut cl, mut cr) = (xl.saturating_add(l.1), xr.saturating_add(r.1));
        let mut children = Vec::new();
        let mut other = (0i64, 0i64);
        for c in &n.children {
            let total = c.left.0.max(c.right.0);
            let keep = c.name != "other" && cut.as_mut().is_none_or(|cut| cut.keep(total));
            if !keep {
                other.0 = other.0.saturating_add(c.left.0);
                other.1 = other.1.saturating_add(c.right.0);
                continue;
            }
            children.push(Item::Node(c, cl, cr, depth + 1));
            cl = cl.saturating_add(c.left.0);
            cr = cr.saturating_add(c.right.0);
        }
        if other != (0, 0) {
            children.push(Item::Other(other, cl, cr, depth + 1));
        }
        stack.extend(children.into_iter().rev());
    }
    for level in &mut levels {
        let (mut pl, mut pr) = (0, 0);
        for t in level.chunks_exact_mut(7) {
            let (xl, xr) = (t[0], t[3]);
            t[0] = xl - pl;
            t[3] = xr - pr;
            pl = xl.saturating_add(t[1]);
            pr = xr.saturating_add(t[4]);
        }
    }
    let (lt, rt) = (left.total(), right.total());
    q::FlameGraphDiff {
        names,
        levels: levels
            .into_iter()
            .map(|values| q::Level { values })
            .collect(),
        total: lt.saturating_add(rt),
        max_self,
        left_ticks: lt,
        right_ticks: rt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flamegraph::tests::merged;

    #[test]
    fn reference_example() {
        let l = FlameTree::build(&merged(&[(&["a", "b"], 1), (&["a", "c"], 2)]));
        let r = FlameTree::build(&merged(&[(&["a", "b"], 4), (&["a", "c"], 8)]));
        let d = diff_flamegraph(&l, &r, 0);
        assert_eq!(
            (d.total, d.max_self, d.left_ticks, d.right_ticks),
            (15, 8, 3, 12)
        );
        let named = |lvl: usize| -> Vec<Vec<i64>> {
            d.levels[lvl]
                .values
                .chunks(7)
                .map(|t| {
                    let mut v = t[..6].to_vec();
                    v.push(
                        ["total", "a", "b", "c"]
                            .iter()
                            .position(|n| *n == d.names[t[6] as usize])
                            .unwrap() as i64,
                    );
                    v
                })
                .collect()
        };
        assert_eq!(named(0), vec![vec![0, 3, 0, 0, 12, 0, 0]]);
        assert_eq!(named(1), vec![vec![0, 3, 0, 0, 12, 0, 1]]);
        assert_eq!(
            named(2),
            vec![vec![0, 1, 1, 0, 4, 4, 2], vec![0, 2, 2, 0, 8, 8, 3]]
        );
    }

    #[test]
    fn equal_nodes_past_max_nodes_are_folded_too() {
        let leaves: Vec<String> = (0..4_000).map(|i| format!("leaf{i:04}")).collect();
        let stacks: Vec<[&str; 2]> = leaves.iter().map(|l| ["main", l.as_str()]).collect();
        let stacks: Vec<(&[&str], i64)> = stacks.iter().map(|s| (&s[..], 1)).collect();
        let l = FlameTree::build(&merged(&stacks));
        let r = FlameTree::build(&merged(&stacks[..10]));
        let d = diff_flamegraph(&l, &r, 100);
        let nodes: usize = d.levels.iter().map(|v| v.values.len() / 7).sum::<usize>() - 1;
        // The 100 kept (main and 99 leaves), and `other` for the rest.
        assert_eq!(nodes, 101);
        assert_eq!(d.total, 4_010);
        assert_eq!(d, diff_flamegraph(&l, &r, 100), "the same nodes every time");
    }

    #[test]
    fn one_sided_nodes_and_truncation() {
        let l = FlameTree::build(&merged(&[(&["a", "only_left"], 5), (&["a", "tiny"], 1)]));
        let r = FlameTree::build(&merged(&[(&["a", "only_right"], 7)]));
        let d = diff_flamegraph(&l, &r, 3);
        let lvl2: Vec<(String, i64, i64)> = d.levels[2]
            .values
            .chunks(7)
            .map(|t| (d.names[t[6] as usize].clone(), t[1], t[4]))
            .collect();
        assert_eq!(
            lvl2,
            vec![
                ("only_left".into(), 5, 0),
                ("only_right".into(), 0, 7),
                ("other".into(), 1, 0)
            ]
        );
        assert_eq!(d.total, 13);
    }
}
