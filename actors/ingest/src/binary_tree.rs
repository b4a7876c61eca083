//! The legacy binary `tree` and `trie` upload formats (reference §3.5).

use super::error::IngestError;

/// Root-first stacks with their values.
pub type Stacks = Vec<(Vec<String>, i64)>;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
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

    fn bytes(&mut self, n: u64, max: usize) -> Result<&[u8], IngestError> {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if max > 0 && n > max {
            return Err(IngestError::malformed(format!(
                "name of {n} bytes at byte {} exceeds max_profile_symbol_value_length ({max})",
                self.pos
            )));
        }
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
/// uvarint child count`; the first node is the (unnamed) root.
pub fn parse_tree(
    data: &[u8],
    max_name: usize,
    max_children: usize,
) -> Result<Stacks, IngestError> {
    let mut r = Reader { data, pos: 0 };
    let mut out = Vec::new();
    // (remaining children of this node, depth of its children)
    let mut pending: Vec<u64> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let mut first = true;
    while first || !pending.is_empty() {
        let len = r.uvarint()?;
        let name = String::from_utf8_lossy(r.bytes(len, max_name)?).into_owned();
        let self_v = value(r.uvarint()?)?;
        let children = r.uvarint()?;
        if max_children > 0 && children > max_children as u64 {
            return Err(IngestError::malformed(format!(
                "node with {children} children exceeds the limit ({max_children})"
            )));
        }
        if first {
            first = false;
        } else {
            path.push(name);
            if let Some(last) = pending.last_mut() {
                *last -= 1;
            }
        }
        if self_v > 0 && !path.is_empty() {
            out.push((path.clone(), self_v));
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
    Ok(out)
}

/// Parses `trie` bytes: a byte-level radix trie of `a;b;c` keys, pre-order
/// nodes of `uvarint len, label, uvarint value, uvarint child count`.
pub fn parse_trie(data: &[u8], max_key: usize, max_children: usize) -> Result<Stacks, IngestError> {
    let mut r = Reader { data, pos: 0 };
    let mut out = Vec::new();
    let mut pending: Vec<(u64, usize)> = Vec::new(); // (children left, key length before the children)
    let mut key: Vec<u8> = Vec::new();
    let mut first = true;
    while first || !pending.is_empty() {
        first = false;
        let len = r.uvarint()?;
        let label = r.bytes(len, max_key)?.to_vec();
        if let Some(last) = pending.last_mut() {
            last.0 -= 1;
        }
        let base = key.len();
        key.extend_from_slice(&label);
        if max_key > 0 && key.len() > max_key {
            return Err(IngestError::malformed(format!(
                "trie key longer than {max_key} bytes"
            )));
        }
        let v = value(r.uvarint()?)?;
        let children = r.uvarint()?;
        if max_children > 0 && children > max_children as u64 {
            return Err(IngestError::malformed(format!(
                "node with {children} children exceeds the limit ({max_children})"
            )));
        }
        if v > 0 && !key.is_empty() {
            let frames = String::from_utf8_lossy(&key)
                .split(';')
                .map(str::to_string)
                .collect();
            out.push((frames, v));
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
    Ok(out)
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
        let s = parse_tree(&b, 0, 0).unwrap();
        assert_eq!(
            s,
            vec![
                (vec!["foo".into(), "bar".into()], 10),
                (vec!["foo".into(), "baz".into()], 20)
            ]
        );
        assert!(parse_tree(&b[..b.len() - 1], 0, 0).is_err());
        assert!(parse_tree(&b, 2, 0).is_err(), "name limit");
    }

    #[test]
    fn trie_layout_from_the_reference() {
        // {foo;bar:1, foo;baz:2}: root("",0,1) → ("foo;ba",0,2) → ("r",1,0), ("z",2,0)
        let mut b = vec![0, 0, 1, 6];
        b.extend_from_slice(b"foo;ba");
        b.extend_from_slice(&[0, 2, 1, b'r', 1, 0, 1, b'z', 2, 0]);
        let s = parse_trie(&b, 0, 0).unwrap();
        assert_eq!(
            s,
            vec![
                (vec!["foo".into(), "bar".into()], 1),
                (vec!["foo".into(), "baz".into()], 2)
            ]
        );
        assert!(parse_trie(&b[..5], 0, 0).is_err());
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
        let mut s = parse_tree(&b, 0, 0).unwrap();
        s.sort();
        assert_eq!(s, vec![(vec!["a".into()], 7), (vec!["b".into()], 5)]);
    }
}
