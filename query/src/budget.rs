//! [`MemoryBudget`]: what one query may hold in memory. Reads charge the
//! rows they bring in (block slices, decoded blocks, peers' answers) and
//! the merge charges what it builds; past the budget the query fails with
//! [`QueryError::ResourceExhausted`] naming it, and what it read is freed.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::QueryError;

/// Bytes one query holds, and its limit (0: none).
#[derive(Debug, Default)]
pub struct MemoryBudget {
    limit: u64,
    used: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes (0: unlimited).
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            used: AtomicU64::new(0),
        }
    }

    /// No limit (counting still happens).
    pub fn unlimited() -> Self {
        Self::new(0)
    }

    /// Bytes charged so far.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Charges `bytes` for `what`; fails once the total passes the limit.
    pub fn charge(&self, bytes: u64, what: &str) -> Result<(), QueryError> {
        let used = self
            .used
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if self.limit > 0 && used > self.limit {
            return Err(QueryError::ResourceExhausted(format!(
                "the query needs more than its memory budget of {} MiB (query.max_query_memory_bytes) while reading {what}: narrow the time range or the label selector",
                self.limit >> 20
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_fail_past_the_limit_and_name_it() {
        let b = MemoryBudget::new(3 << 20);
        b.charge(2 << 20, "block a").unwrap();
        let e = b.charge(2 << 20, "block b").unwrap_err();
        assert!(matches!(e, QueryError::ResourceExhausted(_)));
        let msg = e.to_string();
        assert!(msg.contains("3 MiB") && msg.contains("block b"), "{msg}");
        let free = MemoryBudget::unlimited();
        free.charge(u64::MAX / 2, "x").unwrap();
        free.charge(u64::MAX / 2, "y").unwrap();
        assert_eq!(free.used(), u64::MAX - 1);
    }
}
