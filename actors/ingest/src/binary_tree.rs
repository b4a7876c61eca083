//! The legacy binary `tree` and `trie` upload formats (reference §3.5).

use super::error::IngestError;
use super::limits::Limits;
use super::stacks::{Frame, StackBuilder, Stacks};

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn uvarint(&mut self) -> Result<u64, IngestError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.data.get(self.pos).ok_or_else(|| {
                IngestError::malformed(format!("truncated varint at byte {}", self.pos))
            })?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(IngestError::malformed(format!(
            "varint too long at byte {}",
            self.pos
        )))
    }

    fn bytes(&mut self, n: u64) -> Result<&'a [u8], IngestError> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or_else(|| {
                IngestError::malformed(format!("truncated name at byte {}", self.pos))
            })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

fn value(v: u64) -> Result<i64, IngestError> {
    i64::try_from(v).map_err(|_| IngestError::malformed(format!("value {v} out of range")))
}

/// Parses `tree` bytes: pre-order nodes of `uvarint len, name, uvarint self,
/// uvarint child count`; the first node is the (unnamed) root. Bounded by
/// `limits` as [`StackBuilder`] says; a node may have at most
/// `max_profile_stacktrace_samples` children.
pub fn parse_tree(data: &[u8], limits: &Limits) -> Result<Stacks, IngestError> {
    let max_children = limits.max_profile_stacktrace_samples;
    let mut r = Reader { data, pos: 0 };
    let mut out = StackBuilder::new(limits);
    // Remaining children of each open node.
    let mut pending: Vec<u64> = Vec::new();
    let mut path: Vec<Frame> = Vec::new();
    let mut first = true;
    while first || !pending.is_empty() {
        let len = r.uvarint()?;
        let name = r.bytes(len)?;
        let name = if first { None } else { Some(out.name(name)?) };
        let self_v = value(r.uvarint()?)?;
        let children = r.uvarint()?;
        if max_children > 0 && children > max_children as u64 {
            return Err(IngestError::malformed(format!(
                "node with {children} children exceeds the limit ({max_children})"
            )));
        }
        first = false;
        if let Some(name) = name {
            path.push(name);
            if let Some(last) = pending.last_mut() {
                *last -= 1;
            }
        }
        if self_v > 0 && !path.is_empty() {
            out.push(&path, self_v)?;
        }
        pending.push(children);
        // Close every finished node.
        while pending.last() == Some(&0) {
            pending.pop();
            if !pending.is_empty() {
                path.pop();
            }
        }
    }
    if r.pos != data.len() {
        return Err(IngestError::malformed(format!(
            "{} trailing bytes after the tree",
            data.len() - r.pos
        )));
    }
    Ok(out.finish())
}

/// Parses `trie` bytes: a byte-level radix trie of `a;b;c` keys, pre-order
/// nodes of `uvarint len, label, uvarint value, uvarint child count`.
/// Bounded as [`parse_tree`].
pub fn parse_trie(data: &[u8], limits: &Limits) -> Result<Stacks, IngestError> {
    let max_children = limits.max_profile_stacktrace_samples;
    let mut r = Reader { data, pos: 0 };
    let mut out = StackBuilder::new(limits);
    let mut pending: Vec<(u64, usize)> = Vec::new(); // (children left, key length before the children)
    let mut key: Vec<u8> = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    let mut first = true;
    while first || !pending.is_empty() {
        first = false;
        let len = r.uvarint()?;
        let label = r.bytes(len)?;
        if let Some(last) = pending.last_mut() {
            last.0 -= 1;
        }
        let base = key.len();
        key.extend_from_slice(label);
        let v = value(r.uvarint()?)?;
        let children = r.uvarint()?;
        if max_children > 0 && children > max_children as u64 {
            return Err(IngestError::malformed(format!(
                "node with {children} children exceeds the limit ({max_children})"
            )));
        }
        if v > 0 && !key.is_empty() {
            // Only the frames above the depth cut are read.
            frames.clear();
            let mut split = key.split(|&b| b == b';');
            let mut scanned = 0;
            for f in split.by_ref().take(out.max_depth()) {
                scanned += f.len() + 1;
                frames.push(out.name(f)?);
            }
            out.charge_scan(scanned)?;
            let cut = split.next().is_some();
            out.push_cut(&frames, v, cut)?;
        }
        if children > 0 {
            pending.push((children, base));
        } else {
            key.truncate(base);
            while let Some(&(0, b)) = pending.last() {
                pending.pop();
                key.truncate(b);
            }
        }
    }
    if r.pos != data.len() {
        return Err(IngestError::malformed(format!(
            "{} trailing bytes after the trie",
            data.len() - r.pos
        )));
    }
    Ok(out.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_layout_from_the_reference() {
        // {foo;bar:10, foo;baz:20}
        let mut b = vec![0, 0, 1, 3];
        b.extend_from_slice(b"foo");
        b.extend_from_slice(&[0, 2, 3]);
        b.extend_from_slice(b"bar");
        b.extend_from_slice(&[10, 0, 3]);
        b.extend_from_slice(b"baz");
        b.extend_from_slice(&[20, 0]);
        let s = parse_tree(&b, &Limits::default()).unwrap();
        assert_eq!(
            s,
            vec![
                (vec!["foo".into(), "bar".into()], 10),
                (vec!["foo".into(), "baz".into()], 20)
            ]
        );
        assert!(parse_tree(&b[..b.len() - 1], &Limits::default()).is_err());
        let short_names = Limits {
            max_profile_symbol_value_length: 2,
            ..Limits::default()
        };
        assert!(parse_tree(&b, &short_names).is_err(), "name limit");
    }

    #[test]
    fn trie_layout_from_the_reference() {
        // {foo;bar:1, foo;baz:2}: root("",0,1) → ("foo;ba",0,2) → ("r",1,0), ("z",2,0)
        let mut b = vec![0, 0, 1, 6];
        b.extend_from_slice(b"foo;ba");
        b.extend_from_slice(&[0, 2, 1, b'r', 1, 0, 1, b'z', 2, 0]);
        let s = parse_trie(&b, &Limits::default()).unwrap();
        assert_eq!(
            s,
            vec![
                (vec!["foo".into(), "bar".into()], 1),
                (vec!["foo".into(), "baz".into()], 2)
            ]
        );
        assert!(parse_trie(&b[..5], &Limits::default()).is_err());
    }

    #[test]
    fn tree_round_trips_the_query_encoding() {
        // Values written by the query side's tree encoder read back the same.
        let mut b = vec![0, 0, 2];
        for (name, v) in [("b", 5u8), ("a", 7u8)] {
            b.push(name.len() as u8);
            b.extend_from_slice(name.as_bytes());
            b.extend_from_slice(&[v, 0]);
        }
        let mut s = parse_tree(&b, &Limits::default()).unwrap();
        s.sort();
        assert_eq!(s, vec![(vec!["a".into()], 7), (vec!["b".into()], 5)]);
    }

    /// One pre-order node of a tree or trie.
    fn node(out: &mut Vec<u8>, name: &[u8], value: u64, children: u64) {
        put_uvarint(out, name.len() as u64);
        out.extend_from_slice(name);
        put_uvarint(out, value);
        put_uvarint(out, children);
    }

    fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A root and a chain of `n` nodes named `name`, each with value 1.
    fn chain(n: usize, name: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        node(&mut b, b"", 0, 1);
        for i in 0..n {
            node(&mut b, name, 1, u64::from(i + 1 < n));
        }
        b
    }

    /// A trie of one key, `f` then `rest` `n - 1` times, each node with value 1.
    fn trie_chain(n: usize, rest: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        node(&mut b, b"", 0, 1);
        node(&mut b, b"f", 1, u64::from(n > 1));
        for i in 1..n {
            node(&mut b, rest, 1, u64::from(i + 1 < n));
        }
        b
    }

    fn frames(s: &Stacks) -> usize {
        s.iter().map(|(f, _)| f.len()).sum()
    }

    #[test]
    fn a_deep_chain_is_cut_at_the_depth_limit_not_expanded() {
        // 8 000 nested nodes, each with a value: 32 million frames if every
        // node's stack were spelled out. Cut at 1 000 frames, the stacks
        // below the cut are one stack: all value kept, about half a million
        // frames.
        let limits = Limits::default();
        for (parse, b) in [
            (
                parse_tree as fn(&[u8], &Limits) -> Result<Stacks, IngestError>,
                chain(8_000, b"f"),
            ),
            (parse_trie, trie_chain(8_000, b";f")),
        ] {
            let s = parse(&b, &limits).expect("a deep chain is accepted");
            assert_eq!(s.iter().map(|x| x.1).sum::<i64>(), 8_000, "no value lost");
            assert!(s.iter().all(|(f, _)| f.len() <= 1_000));
            assert!(frames(&s) <= 1_001 * 1_000, "{} frames", frames(&s));
        }
    }

    #[test]
    fn an_upload_that_expands_too_far_is_refused() {
        // A chain to depth 999, then 16 000 leaves with values: 16 million
        // frames from 64 KB.
        let mut b = Vec::new();
        node(&mut b, b"", 0, 1);
        for _ in 0..998 {
            node(&mut b, b"f", 0, 1);
        }
        node(&mut b, b"f", 0, 16_000);
        for i in 0..16_000u32 {
            node(&mut b, format!("leaf{i}").as_bytes(), 1, 0);
        }
        let err = parse_tree(&b, &Limits::default()).expect_err("refused");
        assert!(err.message.contains("stack frames"), "{}", err.message);
        // A trie whose one frame name grows by a byte per node: names of
        // every length up to 20 000 bytes, 200 MB in all.
        let err = parse_trie(&trie_chain(20_000, b"a"), &Limits::default()).expect_err("refused");
        assert!(err.message.contains("stack frames"), "{}", err.message);
    }
}
