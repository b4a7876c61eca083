//! A value interner: each distinct value is stored once and named by a dense `u32` id.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// Stores distinct values once; ids are assigned densely from 0 in insertion order.
#[derive(Clone)]
pub struct Interner<T> {
    items: Vec<T>,
    index: HashTable<u32>,
    hasher: xxhash_rust::xxh3::Xxh3DefaultBuilder,
}

impl<T> std::fmt::Debug for Interner<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner")
            .field("len", &self.items.len())
            .finish()
    }
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashTable::new(),
            hasher: xxhash_rust::xxh3::Xxh3DefaultBuilder::new(),
        }
    }
}

impl<T: Hash + Eq> Interner<T> {
    /// Returns the id of `value`, inserting it if it is new.
    pub fn intern(&mut self, value: T) -> u32 {
        let hash = self.hasher.hash_one(&value);
        let items = &self.items;
        if let Some(&id) = self.index.find(hash, |&id| items[id as usize] == value) {
            return id;
        }
        let id = self.items.len() as u32;
        self.items.push(value);
        let items = &self.items;
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, id, |&id| hasher.hash_one(&items[id as usize]));
        id
    }

    /// Returns the id of a value equal to `value`, without inserting.
    pub fn lookup<Q>(&self, value: &Q) -> Option<u32>
    where
        Q: Hash + ?Sized,
        T: std::borrow::Borrow<Q>,
        Q: Eq,
    {
        let hash = self.hasher.hash_one(value);
        self.index
            .find(hash, |&id| self.items[id as usize].borrow() == value)
            .copied()
    }
}

impl<T> Interner<T> {
    /// The value with this id.
    pub fn get(&self, id: u32) -> Option<&T> {
        self.items.get(id as usize)
    }

    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// All values in id order.
    pub fn items(&self) -> &[T] {
        &self.items
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedups_and_keeps_order() {
        let mut i = Interner::default();
        assert_eq!(i.intern("a".to_string()), 0);
        assert_eq!(i.intern("b".to_string()), 1);
        assert_eq!(i.intern("a".to_string()), 0);
        assert_eq!(i.len(), 2);
        assert_eq!(i.lookup("b"), Some(1));
        assert_eq!(i.lookup("c"), None);
        for n in 0..10_000u32 {
            i.intern(n.to_string());
        }
        assert_eq!(
            i.lookup("9999").map(|id| i.get(id).unwrap().as_str()),
            Some("9999")
        );
    }
}
