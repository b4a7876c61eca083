//! Heads that were cut from an ingester: still queried from memory, and
//! shipped to object storage as blocks in cut order.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ignis_storage::Head;
use parking_lot::RwLock;

/// A cut head, becoming (or already) a block.
pub struct Sealed {
    /// The data, immutable from now on.
    pub head: Head,
    /// The block id it is stored under.
    pub ulid: String,
    /// The last WAL sequence number whose data it holds.
    pub wal_last_seq: Option<u64>,
    /// When its block was stored (unset until then).
    uploaded_at: OnceLock<Instant>,
}

impl Sealed {
    /// A sealed head not yet uploaded.
    pub fn new(head: Head, ulid: String, wal_last_seq: Option<u64>) -> Self {
        Self {
            head,
            ulid,
            wal_last_seq,
            uploaded_at: OnceLock::new(),
        }
    }

    /// True once its block is in the object store.
    pub fn is_uploaded(&self) -> bool {
        self.uploaded_at.get().is_some()
    }

    /// Marks its block as stored.
    pub fn mark_uploaded(&self) {
        let _ = self.uploaded_at.set(Instant::now());
    }

    /// How long ago its block was stored, if it was.
    pub fn uploaded_for(&self) -> Option<std::time::Duration> {
        self.uploaded_at.get().map(Instant::elapsed)
    }
}

/// A tenant's sealed heads, oldest first.
pub type SealedList = Arc<RwLock<Vec<Arc<Sealed>>>>;
