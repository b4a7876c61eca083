//! Heads that were cut from an ingester: still queried from memory, and
//! shipped to object storage as blocks in cut order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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
    uploaded: AtomicBool,
}

impl Sealed {
    /// A sealed head not yet uploaded.
    pub fn new(head: Head, ulid: String, wal_last_seq: Option<u64>) -> Self {
        Self {
            head,
            ulid,
            wal_last_seq,
            uploaded: AtomicBool::new(false),
        }
    }

    /// A head decoded from a block already in the store.
    pub fn from_block(head: Head, ulid: String) -> Self {
        Self {
            head,
            ulid,
            wal_last_seq: None,
            uploaded: AtomicBool::new(true),
        }
    }

    /// True once its block is in the object store.
    pub fn is_uploaded(&self) -> bool {
        self.uploaded.load(Ordering::Acquire)
    }

    /// Marks its block as stored.
    pub fn mark_uploaded(&self) {
        self.uploaded.store(true, Ordering::Release);
    }
}

/// A tenant's sealed heads, oldest first.
pub type SealedList = Arc<RwLock<Vec<Arc<Sealed>>>>;
