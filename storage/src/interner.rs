//! A value interner: each distinct value is stored once and named by a dense `u32` id.

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;

/// What a value holds on the heap, in bytes (its inline size aside): an
/// [`Interner`] keeps the sum, so a head's memory is known without a walk.
pub trait Weigh {
    /// Heap bytes owned by the value.
    fn heap_bytes(&self) -> usize;
}

impl Weigh for String {
    fn heap_bytes(&self) -> usize {
        self.capacity()
    }
}

impl<T> Weigh for Box<[T]> {
    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val::<[T]>(self)
    }
}

/// Stores distinct values once; ids are assigned densely from 0 in insertion order.
#[derive(Clone)]
pub struct Interner<T> {
    items: Vec<T>,
    index: HashTable<u32>,
    /// In-memory only (ids, not hashes, leave the interner): the fast
    /// seeded hasher of hashbrown, not the streaming xxh3 (costly on short keys).
    hasher: hashbrown::DefaultHashBuilder,
    /// Sum of the items' [`Weigh::heap_bytes`].
    heap: usize,
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
            hasher: hashbrown::DefaultHashBuilder::default(),
            heap: 0,
        }
    }
}

impl<T: Hash + Eq + Weigh> Interner<T> {
    /// Returns the id of `value`, inserting it if it is new.
    pub fn intern(&mut self, value: T) -> u32 {
        let hash = self.hasher.hash_one(&value);
        let items = &self.items;
        if let Some(&id) = self.index.find(hash, |&id| items[id as usize] == value) {
            return id;
        }
        self.insert_new(hash, value)
    }

    /// Stores a value known to be new, whose hash is `hash`.
    fn insert_new(&mut self, hash: u64, value: T) -> u32 {
        let id = self.items.len() as u32;
        self.heap += value.heap_bytes();
        self.items.push(value);
        let items = &self.items;
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, id, |&id| hasher.hash_one(&items[id as usize]));
        id
    }

    /// Returns the id of the value `key` stands for, inserting `make(key)`
    /// only when there is none: a value seen before costs no allocation.
    /// `key` must hash as the value it stands for does (a borrowed form
    /// with the same fields in the same order), and `eq` tell them equal.
    pub fn intern_by<Q: Hash + ?Sized>(
        &mut self,
        key: &Q,
        eq: impl Fn(&T, &Q) -> bool,
        make: impl FnOnce(&Q) -> T,
    ) -> u32 {
        let hash = self.hasher.hash_one(key);
        let items = &self.items;
        if let Some(&id) = self.index.find(hash, |&id| eq(&items[id as usize], key)) {
            return id;
        }
        self.insert_new(hash, make(key))
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

    /// Memory it holds, in bytes: its values (inline and on the heap) and
    /// its index, by capacity.
    pub fn memory_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<T>()
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.heap
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

    #[test]
    fn intern_by_a_borrowed_key_finds_owned_values() {
        let mut i: Interner<Box<[u32]>> = Interner::default();
        let a = i.intern(vec![1, 2, 3].into_boxed_slice());
        let mut made = 0;
        let mut by = |i: &mut Interner<Box<[u32]>>, k: &[u32]| {
            i.intern_by(
                k,
                |v, k| **v == *k,
                |k| {
                    made += 1;
                    k.into()
                },
            )
        };
        assert_eq!(by(&mut i, &[1, 2, 3]), a);
        let b = by(&mut i, &[4]);
        assert_eq!(by(&mut i, &[4]), b);
        assert_eq!(i.intern(vec![4].into_boxed_slice()), b);
        assert_eq!(i.len(), 2);
        assert_eq!(made, 1);
    }
}
