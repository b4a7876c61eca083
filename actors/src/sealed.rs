//! Heads that were cut from an ingester: still queried from memory, and
//! shipped to object storage as blocks in cut order.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ignis_storage::Head;

/// A cut head, becoming (or already) a block: the segments the ingester's
/// head was made of when it was cut ([`crate::ingester::Segments`]).
pub struct Sealed {
    /// The data, immutable from now on (one segment unless queries froze
    /// the head between cuts).
    pub heads: Vec<Arc<Head>>,
    /// The block id it is stored under.
    pub ulid: String,
    /// The last WAL sequence number whose data it holds.
    pub wal_last_seq: Option<u64>,
    /// The WAL stream those sequence numbers are of.
    pub wal_stream: String,
    /// When its block was stored (unset until then).
    uploaded_at: OnceLock<Instant>,
}

impl Sealed {
    /// A sealed head not yet uploaded.
    pub fn new(
        heads: Vec<Arc<Head>>,
        ulid: String,
        wal_last_seq: Option<u64>,
        wal_stream: String,
    ) -> Self {
        Self {
            heads,
            ulid,
            wal_last_seq,
            wal_stream,
            uploaded_at: OnceLock::new(),
        }
    }

    /// Calls `f` with its data as one head (the segments merged, when there
    /// are several: blocking): what its block is encoded from.
    pub fn with_head<T>(&self, f: impl FnOnce(&Head) -> T) -> T {
        match self.heads.as_slice() {
            [one] => f(one),
            many => f(&Head::merged(many.iter().map(|h| &**h))),
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
