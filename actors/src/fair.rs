//! [`FairSlots`]: a node's query slots shared fairly among tenants. Each
//! tenant waits in its own queue; a freed slot goes to the next tenant in
//! round-robin order (not to whoever asked first), a tenant runs at most
//! `max_running` queries at once (so others always find a slot) and may
//! have at most `max_queued` waiting (past it a query is refused at once).
//! A waiting query whose client went away gives its turn to the next.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use ignis_query::lane::{Lane, LaneCell};
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
    /// Tenants with their own `(max_running, max_queued)`.
    own: HashMap<String, (usize, usize)>,
}

/// Query slots shared fairly among tenants.
pub struct FairSlots {
    total: usize,
    max_running: usize,
    max_queued: usize,
    state: Mutex<State>,
}

/// One running query's slot; freed (and handed on) when dropped.
pub struct Slot {
    slots: Arc<FairSlots>,
    tenant: String,
    armed: bool,
    lane: Lane,
}

impl Slot {
    /// The lane the query runs in: bulk when its tenant had another query
    /// running or waiting as this one got its slot (a flood, or a long
    /// range split into parts), interactive otherwise.
    pub fn lane(&self) -> Lane {
        self.lane
    }
}

/// The lane of a query of a tenant that now runs `running` queries (this
/// one included) and has `queued` more waiting.
fn lane_of(running: usize, queued: usize) -> Lane {
    if running > 1 || queued > 0 {
        Lane::Bulk
    } else {
        Lane::Interactive
    }
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
            total,
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
            let (max_running, max_queued) = self.limits_of(&s, tenant);
            let running = s.running.get(tenant).copied().unwrap_or(0);
            let queued = s.queues.get(tenant).map_or(0, VecDeque::len);
            if s.free > 0 && running < max_running && queued == 0 && s.turns.is_empty() {
                s.free -= 1;
                *s.running.entry(tenant.to_string()).or_default() += 1;
                return Ok(self.slot(tenant, lane_of(running + 1, 0)));
            }
            if max_queued > 0 && queued >= max_queued {
                return Err(TooManyQueued {
                    tenant: tenant.to_string(),
                    queued,
                });
            }
            let (tx, rx) = oneshot::channel();
            let queue = s.queues.entry(tenant.to_string()).or_default();
            queue.push_back(tx);
            if queue.len() == 1 {
                if running < max_running {
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
            lane: Lane::Interactive,
        }))
    }

    fn slot(self: &Arc<Self>, tenant: &str, lane: Lane) -> Slot {
        Slot {
            slots: self.clone(),
            tenant: tenant.to_string(),
            armed: true,
            lane,
        }
    }

    /// `tenant`'s `(max_running, max_queued)`: its own or the node's.
    fn limits_of(&self, s: &State, tenant: &str) -> (usize, usize) {
        match s.own.get(tenant) {
            Some(&(running, queued)) => (running, queued),
            None => (self.max_running, self.max_queued),
        }
    }

    /// The `(max_running, max_queued)` in force for `tenant` (0 queued: no limit).
    pub fn tenant_limits(&self, tenant: &str) -> (usize, usize) {
        self.limits_of(&self.state.lock(), tenant)
    }

    /// Gives `tenant` its own limits: at most `max_running` queries at once
    /// and `max_queued` waiting (each 0: the node's).
    pub fn set_tenant_limits(
        self: &Arc<Self>,
        tenant: &str,
        max_running: usize,
        max_queued: usize,
    ) {
        let handed = {
            let mut s = self.state.lock();
            if max_running == 0 && max_queued == 0 {
                s.own.remove(tenant);
            } else {
                let running = match max_running {
                    0 => self.max_running,
                    n => n.min(self.total),
                };
                let queued = match max_queued {
                    0 => self.max_queued,
                    n => n,
                };
                s.own.insert(tenant.to_string(), (running, queued));
            }
            // A raised limit lets its blocked waiters take turns; a lowered
            // one applies as its running queries end.
            self.unblock(&mut s, tenant);
            self.hand_out(&mut s)
        };
        self.send(handed);
    }

    /// Frees a slot of `tenant` and hands free slots to waiting tenants in
    /// turn.
    fn release(self: &Arc<Self>, tenant: &str) {
        let handed = {
            let mut s = self.state.lock();
            s.free += 1;
            if let Some(n) = s.running.get_mut(tenant) {
                *n -= 1;
                if *n == 0 {
                    s.running.remove(tenant);
                }
            }
            self.unblock(&mut s, tenant);
            self.hand_out(&mut s)
        };
        self.send(handed);
    }

    /// Puts `tenant`'s blocked waiters back in turn once it is below its
    /// running limit.
    fn unblock(&self, s: &mut State, tenant: &str) {
        let running = s.running.get(tenant).copied().unwrap_or(0);
        if running < self.limits_of(s, tenant).0 && s.blocked.remove(tenant) {
            s.turns.push_back(tenant.to_string());
        }
    }

    /// Takes free slots for waiting tenants in turn; returns whom to send them.
    fn hand_out(&self, s: &mut State) -> Vec<(oneshot::Sender<Slot>, String, Lane)> {
        let mut handed = Vec::new();
        while s.free > 0 {
            let Some(next) = s.turns.pop_front() else {
                break;
            };
            let max_running = self.limits_of(s, &next).0;
            if s.running.get(&next).copied().unwrap_or(0) >= max_running {
                // Its limit was lowered while it waited its turn.
                s.blocked.insert(next);
                continue;
            }
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
            let queued = s.queues.get(&next).map_or(0, VecDeque::len);
            let lane = lane_of(running, queued);
            if queued > 0 {
                if running < max_running {
                    s.turns.push_back(next.clone());
                } else {
                    s.blocked.insert(next.clone());
                }
            } else {
                s.queues.remove(&next);
            }
            handed.push((tx, next, lane));
        }
        handed
    }

    /// Sends slots taken by [`FairSlots::hand_out`], outside the lock: for
    /// a waiter gone (its client closed) the send fails and the slot it
    /// returns is dropped, which hands it on.
    fn send(self: &Arc<Self>, handed: Vec<(oneshot::Sender<Slot>, String, Lane)>) {
        for (tx, next, lane) in handed {
            drop(tx.send(self.slot(&next, lane)));
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

/// The queries each tenant has in flight on this node, counted where they
/// enter (before the results cache, the split and the slots): the lane of
/// a query is bulk when its tenant has another one in flight.
#[derive(Default)]
pub struct InFlight {
    /// Per tenant, the lane cells of its queries in flight.
    running: Mutex<HashMap<String, Vec<LaneCell>>>,
}

/// One query in flight; it leaves the count when dropped.
pub struct Entered {
    in_flight: Arc<InFlight>,
    tenant: String,
    cell: LaneCell,
}

impl Entered {
    /// The query's lane: bulk when its tenant had another query in flight
    /// as it entered, or has started one since.
    pub fn lane(&self) -> Lane {
        self.cell.get()
    }

    /// The query's lane cell, to run it in ([`ignis_query::lane::in_cell`]).
    pub fn cell(&self) -> LaneCell {
        self.cell.clone()
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut running = self.in_flight.running.lock();
        if let Some(cells) = running.get_mut(&self.tenant) {
            cells.retain(|c| !c.same(&self.cell));
            if cells.is_empty() {
                running.remove(&self.tenant);
            }
        }
    }
}

impl InFlight {
    /// Counts a query of `tenant` in until the returned guard is dropped.
    /// A tenant's second query in flight runs bulk, and so does from then
    /// on the one already running (a flood yields the CPU to other
    /// tenants from its start, not from its second query).
    pub fn enter(self: &Arc<Self>, tenant: &str) -> Entered {
        let mut running = self.running.lock();
        let cells = running.entry(tenant.to_string()).or_default();
        let lane = lane_of(cells.len() + 1, 0);
        if lane == Lane::Bulk {
            cells.iter().for_each(LaneCell::demote);
        }
        let cell = LaneCell::new(lane);
        cells.push(cell.clone());
        Entered {
            in_flight: self.clone(),
            tenant: tenant.to_string(),
            cell,
        }
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
    async fn a_tenant_with_other_queries_running_or_waiting_runs_in_the_bulk_lane() {
        let slots = FairSlots::new(4, 2, 0);
        let a1 = slots.acquire("a").await.unwrap();
        assert_eq!(a1.lane(), Lane::Interactive, "alone");
        let a2 = slots.acquire("a").await.unwrap();
        assert_eq!(a2.lane(), Lane::Bulk, "a second one at once");
        let b1 = slots.acquire("b").await.unwrap();
        assert_eq!(b1.lane(), Lane::Interactive, "another tenant's first");
        // a's third and fourth wait; the third gets a slot with the fourth
        // still waiting: bulk.
        let (s3, s4) = (slots.clone(), slots.clone());
        let a3 = tokio::spawn(async move { s3.acquire("a").await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let a4 = tokio::spawn(async move { s4.acquire("a").await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a1);
        let a3 = a3.await.unwrap().unwrap();
        assert_eq!(a3.lane(), Lane::Bulk);
        drop(a2);
        let a4 = a4.await.unwrap().unwrap();
        assert_eq!(a4.lane(), Lane::Bulk, "with a3 running");
        drop((a3, a4, b1));
        // Alone again.
        let a5 = slots.acquire("c").await.unwrap();
        assert_eq!(a5.lane(), Lane::Interactive);
    }

    #[test]
    fn a_tenant_with_two_queries_in_flight_runs_both_bulk() {
        let in_flight = Arc::new(InFlight::default());
        let a1 = in_flight.enter("a");
        let b1 = in_flight.enter("b");
        assert_eq!(
            (a1.lane(), b1.lane()),
            (Lane::Interactive, Lane::Interactive)
        );
        // a's second query is bulk, and its first turns bulk with it.
        let a2 = in_flight.enter("a");
        let a1_cell = a1.cell();
        assert_eq!(
            (a1.lane(), b1.lane(), a2.lane()),
            (Lane::Bulk, Lane::Interactive, Lane::Bulk)
        );
        assert_eq!(a1_cell.get(), Lane::Bulk);
        drop((a1, a2));
        assert_eq!(in_flight.enter("a").lane(), Lane::Interactive);
        assert!(in_flight.running.lock().keys().eq(["b"].iter()));
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

    #[tokio::test]
    async fn a_tenant_with_its_own_limits_runs_that_many() {
        let slots = FairSlots::new(4, 1, 0);
        slots.set_tenant_limits("big", 3, 1);
        let held: Vec<Slot> = futures::future::join_all((0..3).map(|_| slots.acquire("big")))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(slots.load(), (3, 0));
        let s = slots.clone();
        let waiting = tokio::spawn(async move { s.acquire("big").await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let err = slots
            .acquire("big")
            .await
            .err()
            .expect("its own queue limit");
        assert_eq!(err.queued, 1);
        // Others keep the node's limit of one.
        let small = slots.acquire("small").await.unwrap();
        let s = slots.clone();
        let small2 = tokio::spawn(async move { s.acquire("small").await.map(|_slot| ()) });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(slots.load(), (4, 2));
        // Raising small's limit lets its waiter run once a slot frees.
        slots.set_tenant_limits("small", 2, 0);
        drop(held);
        tokio::time::timeout(Duration::from_secs(1), small2)
            .await
            .expect("small's second query runs under its raised limit")
            .unwrap()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        drop(small);
        assert_eq!(slots.load(), (0, 0));
    }
}
