//! pprof ids to dense indexes: [`IdMap`].

use hashbrown::HashMap;

/// pprof ids (functions, mappings, locations) to table ids: an array when
/// the ids are about dense (as every pprof writer numbers them, 1..=n),
/// a map otherwise; a lookup per stack frame stays an index.
pub struct IdMap {
    dense: Vec<u32>,
    sparse: HashMap<u64, u32>,
}

impl IdMap {
    /// Absent from `dense`.
    const NONE: u32 = u32::MAX;

    /// A map for `count` ids, the largest `max_id`.
    fn new(count: usize, max_id: u64) -> Self {
        let dense_len = if max_id <= (count as u64).saturating_mul(2).saturating_add(64) {
            max_id as usize + 1
        } else {
            0
        };
        Self {
            dense: vec![Self::NONE; dense_len],
            sparse: HashMap::new(),
        }
    }

    /// An empty map sized for `ids` (their count and the largest).
    pub fn sized_for(ids: impl Iterator<Item = u64>) -> Self {
        let (count, max_id) = ids.fold((0, 0), |(n, max), id| (n + 1, id.max(max)));
        Self::new(count, max_id)
    }

    /// Maps `id` to `to`.
    pub fn insert(&mut self, id: u64, to: u32) {
        match usize::try_from(id).ok().and_then(|i| self.dense.get_mut(i)) {
            Some(slot) => *slot = to,
            None => {
                self.sparse.insert(id, to);
            }
        }
    }

    /// What `id` maps to, if it was inserted.
    pub fn get(&self, id: u64) -> Option<u32> {
        match usize::try_from(id).ok().and_then(|i| self.dense.get(i)) {
            Some(&v) if v != Self::NONE => Some(v),
            Some(_) => None,
            None => self.sparse.get(&id).copied(),
        }
    }

    /// Whether `id` was inserted.
    pub fn contains(&self, id: u64) -> bool {
        self.get(id).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::IdMap;

    #[test]
    fn dense_and_sparse_ids_map_alike() {
        // 1..=n (an array), and ids far apart (a hash map).
        for ids in [vec![1u64, 2, 3, 4], vec![7, 1 << 40, u64::MAX, 3]] {
            let mut m = IdMap::sized_for(ids.iter().copied());
            for (k, &id) in ids.iter().enumerate() {
                m.insert(id, k as u32);
            }
            for (k, &id) in ids.iter().enumerate() {
                assert_eq!(m.get(id), Some(k as u32));
                assert!(m.contains(id));
            }
            assert!(!m.contains(0));
            assert!(!m.contains(5));
            assert_eq!(m.get(6), None);
        }
    }
}
