//! Heads that were cut from an ingester: still queried from memory, and
//! shipped to object storage as blocks in cut order.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    uploaded: AtomicBool,
    uploaded_at: parking_lot::Mutex<Option<Instant>>,
}

impl Sealed {
    /// A sealed head not yet uploaded.
    pub fn new(head: Head, ulid: String, wal_last_seq: Option<u64>) -> Self {
        Self {
            head,
            ulid,
            wal_last_seq,
            uploaded: AtomicBool::new(false),
            uploaded_at: parking_lot::Mutex::new(None),
        }
    }

    /// True once its block is in the object store.
    pub fn is_uploaded(&self) -> bool {
        self.uploaded.load(Ordering::Acquire)
    }

    /// Marks its block as stored.
    pub fn mark_uploaded(&self) {
        *self.uploaded_at.lock() = Some(Instant::now());
        self.uploaded.store(true, Ordering::Release);
    }

    /// How long ago its block was stored, if it was.
    pub fn uploaded_for(&self) -> Option<std::time::Duration> {
        self.uploaded_at.lock().map(|t| t.elapsed())
    }
}

/// A tenant's sealed heads, oldest first.
pub type SealedList = Arc<RwLock<Vec<Arc<Sealed>>>>;
