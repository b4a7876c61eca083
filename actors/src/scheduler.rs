//! The query-scheduler: the queue between query-frontends and querier
//! workers. A frontend enqueues the parts of a query it could not answer
//! from its cache ([`crate::frontend`]); querier workers
//! ([`crate::worker`]) pull them, run them and hand back the merges, which
//! the scheduler relays to the waiting frontend.
//!
//! - Each tenant has its own queue; workers are served round-robin across
//!   tenants, so a tenant flooding the scheduler delays only itself.
//! - A tenant may have at most `max_outstanding` sub-queries queued or
//!   running; past it one is refused at once (429 to the client).
//! - A frontend that goes away (its client closed the connection) takes
//!   its queued sub-queries with it, and the workers running the others
//!   learn it ([`Scheduler::cancelled`]) and stop them.
//! - A job whose worker leaves the cluster (killed, partitioned) goes back
//!   to the front of its tenant's queue ([`Scheduler::requeue_lost`]), and
//!   so does one whose worker stopped watching it for [`JOB_LEASE`] (a
//!   worker keeps a [`Scheduler::cancelled`] call open while it runs a job).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot, watch};

use crate::metrics::Metrics;
use crate::peer::protocol::{SubAnswer, SubQuery, WireFailure};
use crate::querier::QueryFailure;

/// How long a job handed out may wait for its worker to say it runs it
/// before it is queued again ([`Scheduler::requeue_unconfirmed`]).
const HANDOUT_CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// How long a confirmed job may go without its worker watching it (a
/// worker keeps a [`Scheduler::cancelled`] call open while it runs a job,
/// renewed every few seconds) before it is queued again
/// ([`Scheduler::requeue_silent`]): the worker hangs, or cannot reach this
/// scheduler any more, though gossip still lists its node.
pub const JOB_LEASE: Duration = Duration::from_secs(30);

/// One sub-query at the scheduler.
struct Job {
    tenant: String,
    query: SubQuery,
    /// Where its answer goes; `None` once answered.
    reply: Option<oneshot::Sender<SubAnswer>>,
    /// The worker running it, once handed out.
    worker: Option<String>,
    /// When it was handed out, until its worker says it runs it (asks
    /// whether it is still wanted, [`Scheduler::cancelled`], the first
    /// thing a worker does with a job).
    unconfirmed_since: Option<std::time::Instant>,
    /// Set to true when the frontend waiting for it goes away.
    gone: watch::Sender<bool>,
    /// Calls of its worker watching it now ([`Scheduler::cancelled`]).
    watchers: usize,
    /// When its worker last started or ended watching it.
    heard: Option<std::time::Instant>,
    /// Times it was handed out: a watching call of an earlier holder does
    /// not count for the current one.
    handouts: u64,
}

#[derive(Default)]
struct State {
    /// Queued job ids per tenant, oldest first.
    queues: HashMap<String, VecDeque<u64>>,
    /// Tenants with queued jobs, in turn order.
    turns: VecDeque<String>,
    jobs: HashMap<u64, Job>,
    /// Jobs queued or running per tenant.
    outstanding: HashMap<String, usize>,
    /// Jobs handed to a worker and not answered, per tenant.
    running: HashMap<String, usize>,
    /// Workers waiting for a job now.
    idle: usize,
    /// The process ([`crate::worker::worker_process`]) last seen of each
    /// querier node.
    processes: HashMap<String, String>,
    /// The job each worker holds (was handed and has not answered).
    held: HashMap<String, u64>,
}

impl State {
    fn push(&mut self, id: u64, tenant: &str, front: bool) {
        let queue = self.queues.entry(tenant.to_string()).or_default();
        if front {
            queue.push_front(id);
        } else {
            queue.push_back(id);
        }
        if queue.len() == 1 {
            self.turns.push_back(tenant.to_string());
        }
    }

    /// The next queued job, the tenants taking turns; a tenant running on
    /// all workers but one waits (the last is another tenant's, as with
    /// the query slots).
    fn pop(&mut self) -> Option<(u64, String)> {
        let workers = self.idle + self.running.values().sum::<usize>();
        let cap = workers.saturating_sub(1).max(1);
        for _ in 0..self.turns.len() {
            let tenant = self.turns.pop_front()?;
            if self.running.get(&tenant).copied().unwrap_or(0) >= cap {
                self.turns.push_back(tenant);
                continue;
            }
            let queue = self.queues.get_mut(&tenant)?;
            let id = queue.pop_front()?;
            if queue.is_empty() {
                self.queues.remove(&tenant);
            } else {
                self.turns.push_back(tenant.clone());
            }
            *self.running.entry(tenant.clone()).or_default() += 1;
            return Some((id, tenant));
        }
        None
    }

    /// A job of `tenant` handed to a worker is no longer running there.
    fn stopped(&mut self, tenant: &str) {
        if let Some(n) = self.running.get_mut(tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.running.remove(tenant);
            }
        }
    }

    /// Takes job `id` out of its tenant's queue (if queued).
    fn unqueue(&mut self, id: u64, tenant: &str) {
        let Some(queue) = self.queues.get_mut(tenant) else {
            return;
        };
        queue.retain(|&j| j != id);
        if queue.is_empty() {
            self.queues.remove(tenant);
            self.turns.retain(|t| t != tenant);
        }
    }

    fn queued(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }
}

/// Per-tenant fair queues of sub-queries.
pub struct Scheduler {
    state: Mutex<State>,
    /// Wakes workers waiting for a job.
    work: Notify,
    next_id: AtomicU64,
    max_outstanding: usize,
    metrics: Metrics,
}

/// Counts a worker waiting in [`Scheduler::next`].
struct Idle<'a>(&'a Scheduler);

impl<'a> Idle<'a> {
    fn new(scheduler: &'a Scheduler) -> Self {
        scheduler.state.lock().idle += 1;
        Self(scheduler)
    }
}

impl Drop for Idle<'_> {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.idle = s.idle.saturating_sub(1);
    }
}

/// One call of a worker watching its job; when it ends (answered, timed
/// out, or the connection dropped) the job's lease runs from then.
struct Watching<'a> {
    scheduler: &'a Scheduler,
    id: u64,
    handout: u64,
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        if let Some(j) = self.scheduler.state.lock().jobs.get_mut(&self.id)
            && j.handouts == self.handout
        {
            j.watchers = j.watchers.saturating_sub(1);
            j.heard = Some(std::time::Instant::now());
        }
    }
}

/// Removes a job when the frontend waiting for it goes away.
struct Waiter<'a> {
    scheduler: &'a Scheduler,
    id: u64,
    tenant: String,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut s = self.scheduler.state.lock();
        if let Some(job) = s.jobs.remove(&self.id)
            && job.reply.is_some()
        {
            // A worker running it stops.
            job.gone.send_replace(true);
            let outcome = if job.worker.is_some() {
                s.stopped(&self.tenant);
                "abandoned"
            } else {
                "cancelled"
            };
            self.scheduler.count(outcome);
        }
        s.unqueue(self.id, &self.tenant);
        if let Some(n) = s.outstanding.get_mut(&self.tenant) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.outstanding.remove(&self.tenant);
            }
        }
        self.scheduler.publish(&s);
        drop(s);
        self.scheduler.work.notify_waiters();
    }
}

impl Scheduler {
    /// A scheduler letting each tenant have `max_outstanding` sub-queries
    /// queued or running (0: no limit).
    pub fn new(max_outstanding: usize, metrics: Metrics) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            work: Notify::new(),
            next_id: AtomicU64::new(1),
            max_outstanding,
            metrics,
        })
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .scheduler_sub_queries
            .get_or_create(&vec![("outcome", outcome.to_string())])
            .inc();
    }

    fn publish(&self, s: &State) {
        self.metrics.scheduler_queued.set(s.queued() as i64);
    }

    /// Queues `query` and waits for its answer. Dropping the future (the
    /// frontend's client went away) cancels it.
    pub async fn enqueue(&self, query: SubQuery) -> SubAnswer {
        let tenant = query.tenant.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rx = {
            let mut s = self.state.lock();
            let n = s.outstanding.get(&tenant).copied().unwrap_or(0);
            if self.max_outstanding > 0 && n >= self.max_outstanding {
                drop(s);
                self.count("refused");
                return SubAnswer::Failed(WireFailure::from(&QueryFailure::TooManyQueries(
                    format!(
                        "tenant {tenant} has {n} sub-queries queued or running at the \
                         query-scheduler, the limit of query.max_outstanding_per_tenant; \
                         retry when some end"
                    ),
                )));
            }
            s.outstanding.insert(tenant.clone(), n + 1);
            let (tx, rx) = oneshot::channel();
            s.jobs.insert(
                id,
                Job {
                    tenant: tenant.clone(),
                    query,
                    reply: Some(tx),
                    worker: None,
                    unconfirmed_since: None,
                    gone: watch::channel(false).0,
                    watchers: 0,
                    heard: None,
                    handouts: 0,
                },
            );
            s.push(id, &tenant, false);
            self.publish(&s);
            tracing::debug!(id, tenant, "query-scheduler: job queued");
            rx
        };
        let _waiter = Waiter {
            scheduler: self,
            id,
            tenant,
        };
        self.work.notify_waiters();
        rx.await.unwrap_or_else(|_| {
            SubAnswer::Failed(WireFailure::from(&QueryFailure::Internal(
                "the query-scheduler dropped a sub-query".into(),
            )))
        })
    }

    /// The next job for `worker`, waiting at most `wait` for one. A worker
    /// of a node that restarted (same node, another process) first gets
    /// back the jobs its node's previous process held; a worker asking
    /// again while it holds a job never got that job (the reply was lost
    /// on the way, or the worker gave up waiting for it), which is queued
    /// again: a worker runs one job at a time and asks for the next only
    /// once it answered the last.
    pub async fn next(&self, worker: &str, wait: Duration) -> Option<(u64, SubQuery)> {
        let node = crate::worker::worker_node(worker);
        let process = crate::worker::worker_process(worker);
        let (previous, lost) = {
            let mut s = self.state.lock();
            let previous = match s.processes.get(node) {
                Some(p) if p == process => None,
                _ => s.processes.insert(node.to_string(), process.to_string()),
            };
            (previous, s.held.remove(worker))
        };
        if let Some(gone) = previous {
            self.requeue_where(|w| crate::worker::worker_process(w) == gone);
        }
        if lost.is_some() {
            self.requeue_where(|w| w == worker);
        }
        let deadline = tokio::time::Instant::now() + wait;
        let _idle = Idle::new(self);
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.state.lock();
                while let Some((id, tenant)) = s.pop() {
                    // A cancelled job may still be listed: skip it.
                    if let Some(job) = s.jobs.get_mut(&id) {
                        tracing::debug!(id, worker, "query-scheduler: job handed out");
                        job.worker = Some(worker.to_string());
                        job.unconfirmed_since = Some(std::time::Instant::now());
                        job.handouts += 1;
                        let query = job.query.clone();
                        s.held.insert(worker.to_string(), id);
                        self.publish(&s);
                        return Some((id, query));
                    }
                    s.stopped(&tenant);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Hands the frontend waiting for job `id` its answer (ignored when it
    /// went away or another worker answered first).
    pub fn done(&self, id: u64, worker: &str, answer: SubAnswer) {
        let mut s = self.state.lock();
        let Some(job) = s.jobs.get_mut(&id) else {
            return;
        };
        if job.worker.as_deref() != Some(worker) {
            tracing::debug!(id, worker, holder = ?job.worker, "query-scheduler: an answer from a worker not holding the job, ignored");
            return;
        }
        if let Some(tx) = job.reply.take() {
            let tenant = job.tenant.clone();
            let outcome = match &answer {
                SubAnswer::Merged(_) | SubAnswer::Series(_) => "done",
                SubAnswer::Failed(_) => "failed",
            };
            let _ = tx.send(answer);
            s.held.remove(worker);
            s.stopped(&tenant);
            drop(s);
            tracing::debug!(id, worker, outcome, "query-scheduler: job answered");
            self.count(outcome);
            // A tenant at its running limit may take the next job.
            self.work.notify_waiters();
        }
    }

    /// Resolves once job `id` is no longer wanted (its frontend went away,
    /// or it was answered): a worker running it stops. At once for a job
    /// the scheduler does not hold.
    pub async fn cancelled(&self, id: u64) {
        let gone = self.state.lock().jobs.get_mut(&id).map(|j| {
            // Its worker has it: the handout reached it, and it watches.
            j.unconfirmed_since = None;
            j.watchers += 1;
            j.heard = Some(std::time::Instant::now());
            (j.gone.subscribe(), j.handouts)
        });
        if let Some((mut gone, handout)) = gone {
            let _watching = Watching {
                scheduler: self,
                id,
                handout,
            };
            // An error means the job was dropped: gone too.
            let _ = gone.wait_for(|g| *g).await;
        }
    }

    /// Puts back the running jobs whose worker has not watched them
    /// ([`Scheduler::cancelled`]) for `lease`: the worker hangs or lost
    /// its way to this scheduler.
    pub fn requeue_silent(&self, lease: Duration) -> usize {
        let now = std::time::Instant::now();
        self.requeue_jobs(|j| {
            j.unconfirmed_since.is_none()
                && j.watchers == 0
                && j.heard.is_some_and(|t| now - t >= lease)
        })
    }

    /// Puts the jobs of workers whose node is not in `alive` back at the
    /// front of their tenants' queues; returns how many.
    pub fn requeue_lost(&self, alive: &HashSet<String>) -> usize {
        self.requeue_where(|w| !alive.contains(crate::worker::worker_node(w)))
            + self.requeue_unconfirmed(HANDOUT_CONFIRM_WAIT)
            + self.requeue_silent(JOB_LEASE)
    }

    /// Puts back the jobs handed out more than `wait` ago whose worker
    /// never said it runs them: the reply carrying the job was lost (the
    /// worker's call was dropped mid-way, or timed out), and the worker
    /// may never ask this scheduler again.
    pub fn requeue_unconfirmed(&self, wait: Duration) -> usize {
        let now = std::time::Instant::now();
        self.requeue_jobs(|j| j.unconfirmed_since.is_some_and(|t| now - t >= wait))
    }

    /// Puts the jobs of workers `lost` names back at the front of their
    /// tenants' queues; returns how many.
    fn requeue_where(&self, lost: impl Fn(&str) -> bool) -> usize {
        self.requeue_jobs(|j| j.worker.as_deref().is_some_and(&lost))
    }

    /// Puts the running jobs `lost` picks back at the front of their
    /// tenants' queues; returns how many.
    fn requeue_jobs(&self, lost: impl Fn(&Job) -> bool) -> usize {
        let mut s = self.state.lock();
        let lost: Vec<(u64, String)> = s
            .jobs
            .iter()
            .filter(|(_, j)| j.reply.is_some() && j.worker.is_some() && lost(j))
            .map(|(&id, j)| (id, j.tenant.clone()))
            .collect();
        for (id, tenant) in &lost {
            if let Some(job) = s.jobs.get_mut(id) {
                job.unconfirmed_since = None;
                job.watchers = 0;
                job.heard = None;
                let worker = job.worker.take().unwrap_or_default();
                tracing::warn!(
                    tenant,
                    worker,
                    "query-scheduler: a sub-query's querier left or never got it; queued again"
                );
                if s.held.get(&worker) == Some(id) {
                    s.held.remove(&worker);
                }
            }
            s.stopped(tenant);
            s.push(*id, tenant, true);
        }
        self.publish(&s);
        drop(s);
        if !lost.is_empty() {
            for _ in &lost {
                self.count("requeued");
            }
            self.work.notify_waiters();
        }
        lost.len()
    }

    /// Sub-queries queued (not yet handed to a worker).
    pub fn queued(&self) -> usize {
        self.state.lock().queued()
    }

    /// Sub-queries of `tenant` queued or running.
    pub fn outstanding(&self, tenant: &str) -> usize {
        self.state
            .lock()
            .outstanding
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }
}

impl From<&QueryFailure> for WireFailure {
    fn from(e: &QueryFailure) -> Self {
        use ignis_query::QueryError as Q;
        let kind = match e {
            QueryFailure::Query(Q::Unimplemented(_)) => 1,
            QueryFailure::Query(Q::ResourceExhausted(_)) => 2,
            QueryFailure::Query(_) => 0,
            QueryFailure::Unavailable(_) => 3,
            QueryFailure::TooManyQueries(_) => 4,
            QueryFailure::Corrupt(_) => 5,
            QueryFailure::Internal(_) => 6,
        };
        let message = match e {
            QueryFailure::Query(q) => q.to_string(),
            QueryFailure::Unavailable(m)
            | QueryFailure::TooManyQueries(m)
            | QueryFailure::Corrupt(m)
            | QueryFailure::Internal(m) => m.clone(),
        };
        Self { kind, message }
    }
}

impl From<WireFailure> for QueryFailure {
    fn from(WireFailure { kind, message }: WireFailure) -> Self {
        use ignis_query::QueryError as Q;
        match kind {
            0 => Self::Query(Q::Invalid(message)),
            1 => Self::Query(Q::Unimplemented(message)),
            2 => Self::Query(Q::ResourceExhausted(message)),
            3 => Self::Unavailable(message),
            4 => Self::TooManyQueries(message),
            5 => Self::Corrupt(message),
            _ => Self::Internal(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(tenant: &str, start: i64) -> SubQuery {
        SubQuery {
            tenant: tenant.into(),
            start_ns: start,
            end_ns: start + 1,
            selections: Vec::new(),
            series: None,
            bulk: false,
        }
    }

    fn merged(n: u8) -> SubAnswer {
        SubAnswer::Merged(vec![vec![n]])
    }

    /// A frontend waiting for the answer to `sub(tenant, start)`.
    fn frontend(
        s: &Arc<Scheduler>,
        tenant: &str,
        start: i64,
    ) -> tokio::task::JoinHandle<SubAnswer> {
        let (s, q) = (s.clone(), sub(tenant, start));
        tokio::spawn(async move { s.enqueue(q).await })
    }

    #[tokio::test]
    async fn workers_take_tenants_in_turn_and_answers_reach_the_frontend() {
        let s = Scheduler::new(0, Metrics::new());
        let mut waiting = Vec::new();
        for (t, start) in [("a", 1), ("a", 2), ("a", 3), ("b", 10)] {
            waiting.push(frontend(&s, t, start));
        }
        while s.queued() < 4 {
            tokio::task::yield_now().await;
        }
        let wait = Duration::from_millis(100);
        let mut order = Vec::new();
        for _ in 0..4 {
            let (id, q) = s.next("w", wait).await.unwrap();
            order.push(q.start_ns);
            s.done(id, "w", merged(q.start_ns as u8));
        }
        // b's only job comes second, not after a's three.
        assert_eq!(order, vec![1, 10, 2, 3]);
        for (w, want) in waiting.into_iter().zip([1u8, 2, 3, 10]) {
            assert_eq!(w.await.unwrap(), merged(want));
        }
        assert!(s.next("w", Duration::from_millis(10)).await.is_none());
        assert_eq!(s.outstanding("a"), 0);
    }

    #[tokio::test]
    async fn a_tenant_past_its_outstanding_limit_is_refused_and_cancelled_jobs_leave() {
        let s = Scheduler::new(2, Metrics::new());
        let first = frontend(&s, "a", 1);
        let second = frontend(&s, "a", 2);
        while s.outstanding("a") < 2 {
            tokio::task::yield_now().await;
        }
        match s.enqueue(sub("a", 3)).await {
            SubAnswer::Failed(f) => {
                assert_eq!(f.kind, 4);
                assert!(f.message.contains("max_outstanding_per_tenant"), "{f:?}");
            }
            other => panic!("{other:?}"),
        }
        // Another tenant is not refused.
        let other = frontend(&s, "b", 5);
        // The first frontend goes away: its job leaves the queue.
        first.abort();
        let _ = first.await;
        while s.outstanding("a") > 1 || s.outstanding("b") < 1 {
            tokio::task::yield_now().await;
        }
        let mut seen = Vec::new();
        while let Some((id, q)) = s.next("w", Duration::from_millis(20)).await {
            seen.push(q.start_ns);
            s.done(id, "w", merged(0));
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![2, 5]);
        second.await.unwrap();
        other.await.unwrap();
    }

    #[tokio::test]
    async fn a_lost_workers_job_runs_again_and_only_its_worker_answers() {
        let s = Scheduler::new(0, Metrics::new());
        let waiting = frontend(&s, "a", 7);
        let (id, _) = s.next("gone", Duration::from_secs(5)).await.unwrap();
        // Another worker cannot answer for it.
        s.done(id, "other", merged(9));
        let alive: HashSet<String> = ["w".to_string()].into();
        assert_eq!(s.requeue_lost(&alive), 1);
        let (again, q) = s.next("w", Duration::from_secs(5)).await.unwrap();
        assert_eq!((again, q.start_ns), (id, 7));
        s.done(id, "gone", merged(1));
        s.done(id, "w", merged(2));
        assert_eq!(waiting.await.unwrap(), merged(2));
    }

    #[tokio::test]
    async fn a_tenant_on_all_workers_but_one_leaves_the_last_to_another() {
        let s = Scheduler::new(0, Metrics::new());
        let spawn = |t: &'static str, start: i64| frontend(&s, t, start);
        let a: Vec<_> = (0..3).map(|i| spawn("a", i)).collect();
        while s.queued() < 3 {
            tokio::task::yield_now().await;
        }
        let short = Duration::from_millis(30);
        // Two workers: a runs on one; the other waits for another tenant.
        let (first, _) = s.next("w1", short).await.expect("a job");
        let waiting = {
            let s = s.clone();
            tokio::spawn(async move { s.next("w2", Duration::from_secs(5)).await })
        };
        tokio::time::sleep(short).await;
        let b = spawn("b", 100);
        let (second, q) = waiting.await.unwrap().expect("b's job");
        assert_eq!(q.tenant, "b");
        s.done(second, "w2", merged(0));
        b.await.unwrap();
        // a's next job waits for its first to end, then goes.
        assert!(s.next("w2", short).await.is_none());
        s.done(first, "w1", merged(0));
        let (third, q) = s.next("w2", short).await.expect("a's next");
        assert_eq!(q.tenant, "a");
        s.done(third, "w2", merged(0));
        let (last, _) = s.next("w1", short).await.expect("a's last");
        s.done(last, "w1", merged(0));
        for w in a {
            w.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_restarted_querier_gets_back_the_jobs_of_its_previous_process() {
        let s = Scheduler::new(0, Metrics::new());
        let waiting = frontend(&s, "a", 7);
        let (id, _) = s.next("n#1/0", Duration::from_secs(5)).await.unwrap();
        // Another worker of the same process asks: the running job stays
        // with the worker running it.
        assert!(s.next("n#1/1", Duration::from_millis(10)).await.is_none());
        let (again, _) = s.next("n#2/0", Duration::from_secs(5)).await.unwrap();
        assert_eq!(again, id);
        s.done(id, "n#2/0", merged(3));
        assert_eq!(waiting.await.unwrap(), merged(3));
    }

    /// A worker's open call asking whether job `id` is still wanted (it
    /// confirms the handout and watches the job while it runs).
    fn watching(s: &Arc<Scheduler>, id: u64) -> tokio::task::JoinHandle<()> {
        let s = s.clone();
        tokio::spawn(async move { s.cancelled(id).await })
    }

    #[tokio::test]
    async fn a_handout_its_worker_never_confirms_is_queued_again() {
        let s = Scheduler::new(0, Metrics::new());
        let waiting = frontend(&s, "a", 7);
        let wait = Duration::from_secs(5);
        // Confirmed (the worker asks whether the job is still wanted): it stays.
        let (id, _) = s.next("n#1/0", wait).await.unwrap();
        let confirm = watching(&s, id);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(s.requeue_unconfirmed(Duration::ZERO), 0);
        confirm.abort();
        // Handed out again (as after a lost reply) and never confirmed: the
        // job goes to the next worker that asks, whose answer counts.
        assert_eq!(s.requeue_where(|_| true), 1);
        let (again, _) = s.next("m#1/0", wait).await.unwrap();
        assert_eq!(again, id);
        assert_eq!(s.requeue_unconfirmed(Duration::ZERO), 1);
        let (third, _) = s.next("k#1/0", wait).await.unwrap();
        assert_eq!(third, id);
        s.done(id, "m#1/0", merged(1));
        s.done(id, "k#1/0", merged(2));
        assert_eq!(waiting.await.unwrap(), merged(2));
    }

    #[tokio::test]
    async fn a_job_its_worker_stops_watching_is_queued_again_after_the_lease() {
        let s = Scheduler::new(0, Metrics::new());
        let waiting = frontend(&s, "a", 7);
        let wait = Duration::from_secs(5);
        let (id, _) = s.next("n#1/0", wait).await.unwrap();
        let watch = watching(&s, id);
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Watched: no lease runs out, however short.
        assert_eq!(s.requeue_silent(Duration::ZERO), 0);
        // The watching call ends (its connection dropped) and no other
        // comes: within the lease the job stays, past it it is queued again.
        watch.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(s.requeue_silent(Duration::from_secs(60)), 0);
        assert_eq!(s.requeue_silent(Duration::from_millis(10)), 1);
        let (again, _) = s.next("m#1/0", wait).await.unwrap();
        assert_eq!(again, id);
        s.done(id, "n#1/0", merged(1));
        s.done(id, "m#1/0", merged(2));
        assert_eq!(
            waiting.await.unwrap(),
            merged(2),
            "the silent worker's late answer is ignored"
        );
    }

    #[tokio::test]
    async fn a_job_whose_handout_never_reached_its_worker_is_handed_out_again() {
        let s = Scheduler::new(0, Metrics::new());
        let waiting = frontend(&s, "a", 7);
        // The reply carrying the job is lost (the worker's call timed out):
        // the worker asks again, holding nothing, and gets the job again.
        let (id, _) = s.next("n#1/0", Duration::from_secs(5)).await.unwrap();
        let (again, _) = s.next("n#1/0", Duration::from_secs(5)).await.unwrap();
        assert_eq!(again, id);
        s.done(id, "n#1/0", merged(4));
        assert_eq!(waiting.await.unwrap(), merged(4));
        assert_eq!(s.queued(), 0);
    }

    #[tokio::test]
    async fn a_running_job_whose_frontend_went_away_is_cancelled() {
        let s = Scheduler::new(0, Metrics::new());
        let frontend = frontend(&s, "a", 1);
        let (id, _) = s.next("w", Duration::from_secs(5)).await.unwrap();
        let cancelled = {
            let s = s.clone();
            tokio::spawn(async move { s.cancelled(id).await })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!cancelled.is_finished(), "still wanted");
        frontend.abort();
        tokio::time::timeout(Duration::from_secs(5), cancelled)
            .await
            .expect("the worker learns it")
            .unwrap();
        // An unknown (answered, cancelled) job is not wanted.
        tokio::time::timeout(Duration::from_secs(1), s.cancelled(12345))
            .await
            .expect("at once");
    }

    #[test]
    fn failures_keep_their_kind_across_the_wire() {
        use ignis_query::QueryError as Q;
        for f in [
            QueryFailure::Query(Q::Invalid("bad".into())),
            QueryFailure::Query(Q::Unimplemented("later".into())),
            QueryFailure::Query(Q::ResourceExhausted("budget".into())),
            QueryFailure::Unavailable("down".into()),
            QueryFailure::TooManyQueries("busy".into()),
            QueryFailure::Corrupt("bad block".into()),
            QueryFailure::Internal("bug".into()),
        ] {
            let back = QueryFailure::from(WireFailure::from(&f));
            assert_eq!(format!("{back:?}"), format!("{f:?}"));
        }
    }
}
