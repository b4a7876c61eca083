//! Hinted handoff: replica writes that failed while the push still reached
//! its quorum are kept (in memory, within a byte budget) and delivered when
//! the replica serves again, so a restarted ingester catches up on what it
//! missed instead of staying one copy short.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::metrics::Metrics;

/// Undelivered replica writes, per node.
pub struct Hints {
    queues: Mutex<(HashMap<String, VecDeque<Bytes>>, usize)>,
    max_bytes: usize,
    metrics: Metrics,
}

impl Hints {
    /// Hints within `max_bytes`; beyond it the oldest are dropped (counted).
    pub fn new(max_bytes: usize, metrics: Metrics) -> Self {
        Self {
            queues: Mutex::new((HashMap::new(), 0)),
            max_bytes,
            metrics,
        }
    }

    /// Keeps `record` for `node`.
    pub fn push(&self, node: &str, record: Bytes) {
        let mut guard = self.queues.lock();
        let (queues, used) = &mut *guard;
        *used += record.len();
        queues
            .entry(node.to_string())
            .or_default()
            .push_back(record);
        // Over budget: drop the oldest hints of the queue holding the most bytes.
        while *used > self.max_bytes {
            let Some(q) = queues
                .values_mut()
                .max_by_key(|q| q.iter().map(Bytes::len).sum::<usize>())
            else {
                break;
            };
            let Some(old) = q.pop_front() else {
                break;
            };
            *used -= old.len();
            self.metrics.hints_dropped.inc();
            tracing::warn!(
                "hint budget (cluster.max_hint_bytes) exceeded; dropping the oldest hint"
            );
        }
        self.metrics.hints_pending_bytes.set(*used as i64);
    }

    /// Nodes with hints waiting.
    pub fn nodes(&self) -> Vec<String> {
        self.queues
            .lock()
            .0
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// The oldest hint for `node`.
    pub fn front(&self, node: &str) -> Option<Bytes> {
        self.queues.lock().0.get(node)?.front().cloned()
    }

    /// Removes the oldest hint for `node` once delivered.
    pub fn delivered(&self, node: &str) {
        let mut guard = self.queues.lock();
        let (queues, used) = &mut *guard;
        if let Some(b) = queues.get_mut(node).and_then(VecDeque::pop_front) {
            *used -= b.len();
            self.metrics.hints_delivered.inc();
        }
        self.metrics.hints_pending_bytes.set(*used as i64);
    }

    /// Bytes of hints waiting.
    pub fn pending_bytes(&self) -> usize {
        self.queues.lock().1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_budget() {
        let h = Hints::new(10, Metrics::new());
        h.push("a", Bytes::from_static(b"1234"));
        h.push("a", Bytes::from_static(b"5678"));
        h.push("b", Bytes::from_static(b"xy"));
        assert_eq!(h.pending_bytes(), 10);
        assert_eq!(h.front("a").as_deref(), Some(&b"1234"[..]));
        h.push("b", Bytes::from_static(b"zz"));
        // Over budget: the oldest hint of the biggest queue (a) went.
        assert_eq!(h.pending_bytes(), 8);
        assert_eq!(h.front("a").as_deref(), Some(&b"5678"[..]));
        h.delivered("a");
        assert_eq!(h.front("a"), None);
        assert_eq!(h.nodes(), vec!["b".to_string()]);
    }
}
