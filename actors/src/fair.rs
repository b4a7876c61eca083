//! [`FairSlots`]: a node's query slots shared fairly among tenants. Each
//! tenant waits in its own queue; a freed slot goes to the next tenant in
//! round-robin order (not to whoever asked first), a tenant runs at most
//! `max_running` queries at once (so others always find a slot) and may
//! have at most `max_queued` waiting (past it a query is refused at once).
//! A waiting query whose client went away gives its turn to the next.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Why a query got no slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "tenant {tenant} has {queued} queries waiting, the limit of query.max_queued_queries_per_tenant; retry when some end"
)]
pub struct TooManyQueued {
    /// The tenant.
    pub tenant: String,
    /// Queries it has waiting.
    pub queued: usize,
}

#[derive(Default)]
struct State {
    free: usize,
    running: HashMap<String, usize>,
    /// Tenants with waiters that may run now, in turn order.
    turns: VecDeque<String>,
    /// Tenants with waiters that are at their running limit.
    blocked: HashSet<String>,
    queues: HashMap<String, VecDeque<oneshot::Sender<Slot>>>,
}

/// Query slots shared fairly among tenants.
pub struct FairSlots {
    max_running: usize,
    max_queued: usize,
    state: Mutex<State>,
}

/// One running query's slot; freed (and handed on) when dropped.
pub struct Slot {
    slots: Arc<FairSlots>,
    tenant: String,
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release(&self.tenant);
        }
    }
}

impl FairSlots {
    /// `total` slots (at least 1); a tenant runs at most `max_running` at
    /// once (0: `total − 1`, or 1 with a single slot) and queues at most
    /// `max_queued` (0: no limit).
    pub fn new(total: usize, max_running: usize, max_queued: usize) -> Arc<Self> {
        let total = total.max(1);
        let max_running = match max_running {
            0 => (total - 1).max(1),
            n => n.min(total),
        };
        Arc::new(Self {
            max_running,
            max_queued,
            state: Mutex::new(State {
                free: total,
                ..State::default()
            }),
        })
    }

    /// A slot for a query of `tenant`: at once when one is free and the
    /// tenant is below its running limit, else after waiting its turn.
    pub async fn acquire(self: &Arc<Self>, tenant: &str) -> Result<Slot, TooManyQueued> {
        let rx = {
            let mut s = self.state.lock();
            let running = s.running.get(tenant).copied().unwrap_or(0);
            let queued = s.queues.get(tenant).map_or(0, VecDeque::len);
            if s.free > 0 && running < self.max_running && queued == 0 && s.turns.is_empty() {
                s.free -= 1;
                *s.running.entry(tenant.to_string()).or_default() += 1;
                return Ok(self.slot(tenant));
            }
            if self.max_queued > 0 && queued >= self.max_queued {
                return Err(TooManyQueued {
                    tenant: tenant.to_string(),
                    queued,
                });
            }
            let (tx, rx) = oneshot::channel();
            let queue = s.queues.entry(tenant.to_string()).or_default();
            queue.push_back(tx);
            if queue.len() == 1 {
                if running < self.max_running {
                    s.turns.push_back(tenant.to_string());
                } else {
                    s.blocked.insert(tenant.to_string());
                }
            }
            rx
        };
        // Senders live in `queues` until they are handed a slot, so one
        // always arrives while `self` lives.
        Ok(rx.await.unwrap_or_else(|_| Slot {
            slots: self.clone(),
            tenant: tenant.to_string(),
            armed: false,
        }))
    }

    fn slot(self: &Arc<Self>, tenant: &str) -> Slot {
        Slot {
            slots: self.clone(),
            tenant: tenant.to_string(),
            armed: true,
        }
    }

    /// Frees a slot of `tenant` and hands free slots to waiting tenants in
    /// turn.
    fn release(self: &Arc<Self>, tenant: &str) {
        let mut handed = Vec::new();
        {
            let mut s = self.state.lock();
            s.free += 1;
            if let Some(n) = s.running.get_mut(tenant) {
                *n -= 1;
                if *n == 0 {
                    s.running.remove(tenant);
                }
            }
            // Below its limit again: its waiters take turns again.
            if s.blocked.remove(tenant) {
                s.turns.push_back(tenant.to_string());
            }
            while s.free > 0 {
                let Some(next) = s.turns.pop_front() else {
                    break;
                };
                let Some(tx) = s.queues.get_mut(&next).and_then(VecDeque::pop_front) else {
                    s.queues.remove(&next);
                    continue;
                };
                s.free -= 1;
                let running = {
                    let n = s.running.entry(next.clone()).or_default();
                    *n += 1;
                    *n
                };
                if s.queues.get(&next).is_some_and(|q| !q.is_empty()) {
                    if running < self.max_running {
                        s.turns.push_back(next.clone());
                    } else {
                        s.blocked.insert(next.clone());
                    }
                } else {
                    s.queues.remove(&next);
                }
                handed.push((tx, next));
            }
        }
        // Outside the lock: for a waiter gone (its client closed) the send
        // fails and the slot it returns is dropped, which hands it on.
        for (tx, next) in handed {
            drop(tx.send(self.slot(&next)));
        }
    }

    /// Queries running and waiting now (metrics, tests).
    pub fn load(&self) -> (usize, usize) {
        let s = self.state.lock();
        (
            s.running.values().sum(),
            s.queues.values().map(VecDeque::len).sum(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_tenant_never_takes_every_slot_and_turns_go_round() {
        let slots = FairSlots::new(2, 0, 0);
        let a1 = slots.acquire("a").await.unwrap();
        // a may run one of two: its second query waits, b's runs at once.
        let s = slots.clone();
        let a2 = tokio::spawn(async move { s.acquire("a").await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(slots.load(), (1, 1));
        let b1 = tokio::time::timeout(Duration::from_secs(1), slots.acquire("b"))
            .await
            .expect("b waits behind a")
            .unwrap();
        drop(a1);
        tokio::time::timeout(Duration::from_secs(1), a2)
            .await
            .expect("a's second query runs once its first ended")
            .unwrap()
            .unwrap();
        drop(b1);
        assert_eq!(slots.load(), (0, 0));
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin_not_first_come() {
        let slots = FairSlots::new(1, 0, 0);
        let first = slots.acquire("x").await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        // a queues three, then b one: b runs second, not fourth.
        for t in ["a", "a", "a", "b"] {
            let (s, o) = (slots.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let slot = s.acquire(t).await.unwrap();
                o.lock().push(t);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(slot);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock(), vec!["a", "b", "a", "a"]);
    }

    #[tokio::test]
    async fn too_many_waiting_is_refused_and_a_gone_waiter_passes_its_turn() {
        let slots = FairSlots::new(1, 0, 1);
        let held = slots.acquire("a").await.unwrap();
        let s = slots.clone();
        let gone = tokio::spawn(async move { s.acquire("b").await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let err = slots
            .acquire("b")
            .await
            .err()
            .expect("b's second waiter is refused");
        assert_eq!(err.queued, 1);
        gone.abort(); // the client went away
        let s = slots.clone();
        let c = tokio::spawn(async move { s.acquire("c").await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), c)
            .await
            .expect("c got the slot b's gone waiter was handed")
            .unwrap()
            .unwrap();
        assert_eq!(slots.load(), (0, 0));
    }
}
