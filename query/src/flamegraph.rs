//! The function-name call tree of merged stacks, and its encodings: the
//! `FlameGraph` message, the legacy flamebearer levels and the `tree` bytes.

use std::collections::HashMap;

use ignis_storage::proto::querier::v1 as q;

use crate::source::MergedStacks;

const ROOT: u32 = 0;
const OTHER: &str = "other";

#[derive(Debug, Clone)]
struct Node {
    name: u32,
    total: i64,
    self_: i64,
    children: Vec<u32>,
}

/// A call tree keyed by function name; siblings sorted by name (byte order).
#[derive(Debug, Clone)]
pub struct FlameTree {
    names: Vec<String>,
    nodes: Vec<Node>,
}

/// A flame graph as levels of `[x_delta, total, self, name_index]` tuples.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// Node names; index 0 is `total`.
    pub names: Vec<String>,
    /// One vector of 4-tuples per depth.
    pub levels: Vec<Vec<i64>>,
    /// Root total.
    pub total: i64,
    /// Largest self value.
    pub max_self: i64,
}

/// Where a tree of more than `max_nodes` nodes is cut: every node whose
/// total is above the `max_nodes`-th largest is kept, then nodes of exactly
/// that total while room is left, in the order they are asked about.
/// Pyroscope keeps every node of that total, which with many equal nodes (a
/// profile of thousands of equal stacks) is no bound at all.
pub(crate) struct Cut {
    min: i64,
    ties: usize,
}

impl Cut {
    /// The cut of a tree whose nodes (root excluded) have `totals`; `None`
    /// when they all fit (or `max_nodes` is 0).
    pub(crate) fn new(mut totals: Vec<i64>, max_nodes: usize) -> Option<Self> {
        if max_nodes == 0 || totals.len() <= max_nodes {
            return None;
        }
        let (_, &mut min, _) = totals.select_nth_unstable_by(max_nodes - 1, |a, b| b.cmp(a));
        let above = totals.iter().filter(|&&t| t > min).count();
        Some(Self {
            min,
            ties: max_nodes - above,
        })
    }

    /// Whether a node of `total` is kept (a tie takes its room).
    pub(crate) fn keep(&mut self, total: i64) -> bool {
        if total == self.min && self.ties > 0 {
            self.ties -= 1;
            return true;
        }
        total > self.min
    }
}

impl FlameTree {
    /// Builds the tree from merged stacks (a call-site selection is applied
    /// to them first: [`MergedStacks::keep_call_site`]).
    pub fn build(merged: &MergedStacks) -> Self {
        let mut tree = Self {
            names: vec![String::new()],
            nodes: vec![Node {
                name: 0,
                total: 0,
                self_: 0,
                children: Vec::new(),
            }],
        };
        let mut name_ids: HashMap<String, u32> = HashMap::new();
        let mut child_of: HashMap<(u32, u32), u32> = HashMap::new();
        let mut frames = Vec::new();
        for (&stack, &value) in &merged.values {
            if value == 0 {
                continue;
            }
            merged.symbols.frame_names(stack, &mut frames);
            let mut node = ROOT;
            tree.nodes[0].total = tree.nodes[0].total.saturating_add(value);
            for frame in frames.iter().rev() {
                let name = match name_ids.get(frame.as_str()) {
                    Some(&id) => id,
                    None => {
                        let id = tree.names.len() as u32;
                        tree.names.push(frame.clone());
                        name_ids.insert(frame.clone(), id);
                        id
                    }
                };
                node = *child_of.entry((node, name)).or_insert_with(|| {
                    let id = tree.nodes.len() as u32;
                    tree.nodes.push(Node {
                        name,
                        total: 0,
                        self_: 0,
                        children: Vec::new(),
                    });
                    tree.nodes[node as usize].children.push(id);
                    id
                });
                let n = &mut tree.nodes[node as usize];
                n.total = n.total.saturating_add(value);
            }
            let n = &mut tree.nodes[node as usize];
            n.self_ = n.self_.saturating_add(value);
        }
        let names = &tree.names;
        let order: Vec<Vec<u32>> = tree
            .nodes
            .iter()
            .map(|n| {
                let mut c = n.children.clone();
                c.sort_by(|&a, &b| {
                    names[tree.nodes[a as usize].name as usize]
                        .cmp(&names[tree.nodes[b as usize].name as usize])
                });
                c
            })
            .collect();
        for (n, c) in tree.nodes.iter_mut().zip(order) {
            n.children = c;
        }
        tree
    }

    /// Sum of all stack values.
    pub fn total(&self) -> i64 {
        self.nodes[0].total
    }

    /// An estimate of the memory the tree holds, in bytes, for a query's
    /// budget: its nodes, their child lists and the names.
    pub fn approx_bytes(&self) -> u64 {
        let nodes = self.nodes.len() * (std::mem::size_of::<Node>() + 4);
        let names: usize = self.names.iter().map(|n| n.len() + 24).sum();
        (nodes + names) as u64
    }

    /// Number of nodes, excluding the root.
    pub fn node_count(&self) -> usize {
        self.nodes.len() - 1
    }

    /// Which nodes a flame graph of at most `max_nodes` nodes keeps (`None`:
    /// all; 0 keeps all), by [`Cut`], in a fixed order (a depth-first walk,
    /// siblings by name). A kept node's parent is kept: its total is at
    /// least as large, and it comes first.
    fn kept_nodes(&self, max_nodes: usize) -> Option<Vec<bool>> {
        let totals = self.nodes[1..].iter().map(|n| n.total).collect();
        let mut cut = Cut::new(totals, max_nodes)?;
        let mut kept = vec![false; self.nodes.len()];
        kept[ROOT as usize] = true;
        let mut stack = vec![ROOT];
        let mut children = Vec::new();
        while let Some(n) = stack.pop() {
            children.clear();
            for &c in &self.nodes[n as usize].children {
                if cut.keep(self.nodes[c as usize].total) {
                    kept[c as usize] = true;
                    children.push(c);
                }
            }
            stack.extend(children.iter().rev());
        }
        Some(kept)
    }

    /// `(name, total, self, children)` of a node; node 0 is the root.
    pub(crate) fn node(&self, node: u32) -> (&str, i64, i64, &[u32]) {
        let n = &self.nodes[node as usize];
        (self.name(node), n.total, n.self_, &n.children)
    }

    fn name(&self, node: u32) -> &str {
        &self.names[self.nodes[node as usize].name as usize]
    }

    /// Children kept (all when `kept` is `None`), and the summed total of
    /// the rest (which becomes one `other` node).
    fn kept_children(&self, node: u32, kept: Option<&[bool]>) -> (Vec<u32>, i64) {
        let mut out = Vec::new();
        let mut other = 0i64;
        for &c in &self.nodes[node as usize].children {
            let n = &self.nodes[c as usize];
            if !kept.is_none_or(|k| k[c as usize]) || self.name(c) == OTHER {
                other = other.saturating_add(n.total);
            } else {
                out.push(c);
            }
        }
        (out, other)
    }

    /// Lays the tree out as flame graph levels, truncated to `max_nodes`.
    pub fn levels(&self, max_nodes: usize) -> Levels {
        let kept_nodes = self.kept_nodes(max_nodes);
        let mut out = Levels {
            names: vec!["total".to_string()],
            levels: Vec::new(),
            total: self.total(),
            max_self: 0,
        };
        let mut name_index: HashMap<&str, i64> = HashMap::new();
        // Absolute x per tuple; delta-encoded at the end.
        enum Item {
            Node(u32, i64, usize),
            Other(i64, i64, usize),
        }
        let mut stack = vec![Item::Node(ROOT, 0, 0)];
        while let Some(item) = stack.pop() {
            let (x, total, self_, name, depth, node) = match item {
                Item::Node(n, x, depth) => {
                    let node = &self.nodes[n as usize];
                    let name = if n == ROOT {
                        0
                    } else {
                        self.intern(n, &mut name_index, &mut out.names)
                    };
                    (x, node.total, node.self_, name, depth, Some(n))
                }
                Item::Other(x, total, depth) => {
                    let name = match name_index.get(OTHER) {
                        Some(&i) => i,
                        None => {
                            out.names.push(OTHER.to_string());
                            let i = out.names.len() as i64 - 1;
                            name_index.insert(OTHER, i);
                            i
                        }
                    };
                    (x, total, total, name, depth, None)
                }
            };
            if out.levels.len() <= depth {
                out.levels.resize_with(depth + 1, Vec::new);
            }
            out.levels[depth].extend_from_slice(&[x, total, self_, name]);
            if node != Some(ROOT) {
                out.max_self = out.max_self.max(self_);
            }
            let Some(n) = node else { continue };
            let (kept, other) = self.kept_children(n, kept_nodes.as_deref());
            let mut cx = x.saturating_add(self_);
            let mut children = Vec::with_capacity(kept.len() + 1);
            for c in kept {
                children.push(Item::Node(c, cx, depth + 1));
                cx = cx.saturating_add(self.nodes[c as usize].total);
            }
            if other > 0 {
                children.push(Item::Other(cx, other, depth + 1));
            }
            stack.extend(children.into_iter().rev());
        }
        for level in &mut out.levels {
            let mut prev_end = 0;
            for t in level.chunks_exact_mut(4) {
                let x = t[0];
                t[0] = x - prev_end;
                prev_end = x.saturating_add(t[1]);
            }
        }
        out
    }

    fn intern<'a>(
        &'a self,
        n: u32,
        index: &mut HashMap<&'a str, i64>,
        names: &mut Vec<String>,
    ) -> i64 {
        let name = self.name(n);
        *index.entry(name).or_insert_with(|| {
            names.push(name.to_string());
            names.len() as i64 - 1
        })
    }

    /// The `FlameGraph` message, truncated to `max_nodes`.
    pub fn flamegraph(&self, max_nodes: usize) -> q::FlameGraph {
        let l = self.levels(max_nodes);
        q::FlameGraph {
            names: l.names,
            levels: l
                .levels
                .into_iter()
                .map(|values| q::Level { values })
                .collect(),
            total: l.total,
            max_self: l.max_self,
        }
    }

    /// The `tree` bytes: pre-order nodes of `uvarint len, name, uvarint self,
    /// uvarint child count`, under a virtual root with an empty name.
    pub fn tree_bytes(&self, max_nodes: usize) -> Vec<u8> {
        let kept_nodes = self.kept_nodes(max_nodes);
        let mut out = Vec::new();
        enum Item {
            Node(u32),
            Other(i64),
        }
        let mut stack = vec![Item::Node(ROOT)];
        while let Some(item) = stack.pop() {
            match item {
                Item::Other(total) => {
                    put_uvarint(&mut out, OTHER.len() as u64);
                    out.extend_from_slice(OTHER.as_bytes());
                    put_uvarint(&mut out, total.max(0) as u64);
                    put_uvarint(&mut out, 0);
                }
                Item::Node(n) => {
                    let name = if n == ROOT { "" } else { self.name(n) };
                    let self_ = if n == ROOT {
                        0
                    } else {
                        self.nodes[n as usize].self_
                    };
                    let (kept, other) = self.kept_children(n, kept_nodes.as_deref());
                    put_uvarint(&mut out, name.len() as u64);
                    out.extend_from_slice(name.as_bytes());
                    put_uvarint(&mut out, self_.max(0) as u64);
                    put_uvarint(&mut out, (kept.len() + usize::from(other > 0)) as u64);
                    // Children in reverse name order; the stack pops the last push first.
                    if other > 0 {
                        stack.push(Item::Other(other));
                    }
                    stack.extend(kept.into_iter().map(Item::Node));
                }
            }
        }
        out
    }
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ignis_storage::SymbolTable;
    use ignis_storage::proto::google::v1 as pprof;
    use ignis_storage::symbols::ImportMemo;

    /// Stacks are given root first.
    pub(crate) fn merged(stacks: &[(&[&str], i64)]) -> MergedStacks {
        let mut strings = vec![String::new()];
        let mut functions = Vec::new();
        let mut samples = Vec::new();
        for (frames, v) in stacks {
            let mut ids = Vec::new();
            for f in frames.iter().rev() {
                let id = match strings.iter().position(|s| s == f) {
                    Some(i) => i as u64,
                    None => {
                        strings.push(f.to_string());
                        let i = strings.len() as u64 - 1;
                        functions.push(pprof::Function {
                            id: i,
                            name: i as i64,
                            ..Default::default()
                        });
                        i
                    }
                };
                ids.push(id);
            }
            samples.push((ids, *v));
        }
        let p = pprof::Profile {
            string_table: strings,
            location: functions
                .iter()
                .map(|f| pprof::Location {
                    id: f.id,
                    line: vec![pprof::Line {
                        function_id: f.id,
                        line: 0,
                    }],
                    ..Default::default()
                })
                .collect(),
            function: functions,
            ..Default::default()
        };
        let mut src = SymbolTable::default();
        let import = src
            .import_pprof(&ignis_storage::FlatProfile::from_proto(&p).unwrap())
            .unwrap();
        let mut m = MergedStacks::default();
        let mut memo = ImportMemo::default();
        for (ids, v) in samples {
            let locs: Vec<u32> = ids.iter().map(|&i| import.location(i).unwrap()).collect();
            let s = src.stacks.intern(locs.into_boxed_slice());
            let id = m.symbols.import_stack(&src, s, &mut memo);
            *m.values.entry(id).or_insert(0) += v;
        }
        m
    }

    #[test]
    fn matches_pyroscope_worked_example() {
        let m = merged(&[
            (&["a", "b", "e"], 1),
            (&["a", "c"], 2),
            (&["a", "c", "d"], 1),
        ]);
        let l = FlameTree::build(&m).levels(0);
        assert_eq!(l.total, 4);
        assert_eq!(l.max_self, 2);
        let named = |lvl: usize| -> Vec<(i64, i64, i64, String)> {
            l.levels[lvl]
                .chunks(4)
                .map(|t| (t[0], t[1], t[2], l.names[t[3] as usize].clone()))
                .collect()
        };
        assert_eq!(named(0), vec![(0, 4, 0, "total".into())]);
        assert_eq!(named(1), vec![(0, 4, 0, "a".into())]);
        assert_eq!(named(2), vec![(0, 1, 0, "b".into()), (0, 3, 2, "c".into())]);
        assert_eq!(named(3), vec![(0, 1, 1, "e".into()), (2, 1, 1, "d".into())]);
    }

    #[test]
    fn truncation_folds_small_nodes_into_other() {
        let m = merged(&[(&["a", "big"], 100), (&["a", "s1"], 1), (&["a", "s2"], 2)]);
        let t = FlameTree::build(&m);
        let l = t.levels(2);
        assert_eq!(l.total, 103);
        let lvl2: Vec<(i64, String)> = l.levels[2]
            .chunks(4)
            .map(|c| (c[1], l.names[c[3] as usize].clone()))
            .collect();
        assert_eq!(lvl2, vec![(100, "big".into()), (3, "other".into())]);
    }

    #[test]
    fn equal_nodes_past_max_nodes_are_folded_too() {
        // 4 000 stacks of equal value under one root frame: every leaf
        // ties, and keeping ties would keep all 4 001 nodes.
        let leaves: Vec<String> = (0..4_000).map(|i| format!("leaf{i:04}")).collect();
        let stacks: Vec<[&str; 2]> = leaves.iter().map(|l| ["main", l.as_str()]).collect();
        let stacks: Vec<(&[&str], i64)> = stacks.iter().map(|s| (&s[..], 1)).collect();
        let t = FlameTree::build(&merged(&stacks));
        let l = t.levels(100);
        let nodes: usize = l.levels.iter().map(|v| v.len() / 4).sum::<usize>() - 1;
        // The 100 kept (main and 99 leaves), and `other` for the rest.
        assert_eq!(nodes, 101);
        assert_eq!(l.total, 4_000);
        let lvl2: Vec<(i64, String)> = l.levels[2]
            .chunks(4)
            .map(|c| (c[1], l.names[c[3] as usize].clone()))
            .collect();
        assert_eq!(lvl2.len(), 100);
        assert_eq!(lvl2[0], (1, "leaf0000".into()));
        assert_eq!(lvl2[98], (1, "leaf0098".into()));
        assert_eq!(lvl2[99], (4_000 - 99, "other".into()));
        assert_eq!(l, t.levels(100), "the same nodes every time");
        assert!(t.tree_bytes(100).len() < 2_000);
    }

    #[test]
    fn tree_bytes_layout() {
        let m = merged(&[(&["foo", "bar"], 10), (&["foo", "baz"], 20)]);
        let bytes = FlameTree::build(&m).tree_bytes(0);
        let mut want = vec![0, 0, 1, 3];
        want.extend_from_slice(b"foo");
        want.extend_from_slice(&[0, 2, 3]);
        want.extend_from_slice(b"baz");
        want.extend_from_slice(&[20, 0, 3]);
        want.extend_from_slice(b"bar");
        want.extend_from_slice(&[10, 0]);
        assert_eq!(bytes, want);
    }

    #[test]
    fn call_site_filters_stacks() {
        let mut m = merged(&[(&["a", "b"], 1), (&["x", "b"], 5)]);
        m.keep_call_site(&["a".to_string()]);
        let t = FlameTree::build(&m);
        assert_eq!(t.total(), 1);
    }
}
