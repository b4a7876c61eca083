//! Query lanes: a tenant's concurrent queries yield the CPU to single ones.
//!
//! Every query's CPU work (block reads and decodes, the merge) runs in one
//! of two lanes. [`Lane::Interactive`] is the process's usual threads.
//! [`Lane::Bulk`] is a runtime of its own whose threads run at a lower
//! scheduling priority (Linux's `SCHED_IDLE` class and a `nice`,
//! [`set_bulk_nice`]): the work of a tenant
//! that already has queries running, whether a flood of dashboards or one
//! long range split into parts, goes there, so on a busy node the kernel
//! gives the CPU to another tenant's single query (and to ingest) first.
//! On an idle node a bulk query runs as fast as any: priority only decides
//! who runs when both want a core.
//!
//! The lane of the running task is a task-local ([`in_lane`],
//! [`current`]), so the reads of a query find it without threading it
//! through every call.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

/// Where a query's CPU work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Lane {
    /// The usual threads: a tenant's only running query.
    #[default]
    Interactive,
    /// Threads at a lower priority: a tenant's queries beyond its first.
    Bulk,
}

tokio::task_local! {
    static LANE: LaneCell;
}

/// A query's lane, shared by its tasks: it may turn bulk while the query
/// runs (its tenant started another), and the query's work from then on
/// (block reads, the merge) runs on the bulk lane's threads. Clones share it.
#[derive(Debug, Clone, Default)]
pub struct LaneCell(Arc<AtomicBool>);

impl LaneCell {
    /// A cell holding `lane`.
    pub fn new(lane: Lane) -> Self {
        Self(Arc::new(AtomicBool::new(lane == Lane::Bulk)))
    }

    /// The lane now.
    pub fn get(&self) -> Lane {
        if self.0.load(Ordering::Relaxed) {
            Lane::Bulk
        } else {
            Lane::Interactive
        }
    }

    /// Turns the lane bulk, for good.
    pub fn demote(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// True when both are the same query's cell.
    pub fn same(&self, other: &LaneCell) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// The `nice` value of the bulk lane's threads (0: the same priority).
static BULK_NICE: AtomicI32 = AtomicI32::new(DEFAULT_BULK_NICE);

/// The bulk lane's default `nice`: about a tenth of the CPU of a normal
/// thread when both want a core (Linux's CFS weights 110 against 1024).
pub const DEFAULT_BULK_NICE: i32 = 10;

/// Sets the `nice` value (0–19) of the bulk lane's threads started from now
/// on; call it before the first query (the node does, from its config).
pub fn set_bulk_nice(nice: i32) {
    BULK_NICE.store(nice.clamp(0, 19), Ordering::Relaxed);
}

/// Whether the bulk lane's threads go in Linux's `SCHED_IDLE` class.
static BULK_IDLE: AtomicBool = AtomicBool::new(true);

/// Puts the bulk lane's threads started from now on in Linux's
/// `SCHED_IDLE` class (the default) or leaves them in the normal one with
/// only their `nice`: in `SCHED_IDLE` a normal thread that wakes takes
/// their core at once, and while normal threads keep every core busy they
/// get almost no CPU.
pub fn set_bulk_idle(idle: bool) {
    BULK_IDLE.store(idle, Ordering::Relaxed);
}

/// Runs `fut` with `lane` as its lane ([`current`]).
pub async fn in_lane<F: Future>(lane: Lane, fut: F) -> F::Output {
    in_cell(LaneCell::new(lane), fut).await
}

/// Runs `fut` in the lane `cell` holds (which may turn bulk meanwhile).
pub async fn in_cell<F: Future>(cell: LaneCell, fut: F) -> F::Output {
    LANE.scope(cell, fut).await
}

/// The lane of the running task (interactive outside [`in_lane`]).
pub fn current() -> Lane {
    scoped().unwrap_or_default()
}

/// The lane of the running task, if it runs inside [`in_lane`].
pub fn scoped() -> Option<Lane> {
    LANE.try_with(LaneCell::get).ok()
}

/// The lane cell of the running task, if it runs inside [`in_lane`].
pub fn current_cell() -> Option<LaneCell> {
    LANE.try_with(LaneCell::clone).ok()
}

impl Lane {
    /// Its name in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Interactive => "interactive",
            Lane::Bulk => "bulk",
        }
    }

    /// The runtime the lane's async CPU work (Parquet decoding) runs on.
    pub fn runtime(self) -> std::io::Result<&'static Runtime> {
        match self {
            Lane::Interactive => crate::executor::executor(),
            Lane::Bulk => bulk_runtime(),
        }
    }

    /// Runs `fut` on the lane's runtime, in the lane: in the running
    /// task's lane cell when that holds this lane (so a later demotion
    /// reaches the new task too), else in a cell of its own.
    pub fn spawn<F>(self, fut: F) -> std::io::Result<JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let cell = current_cell()
            .filter(|c| c.get() == self)
            .unwrap_or_else(|| LaneCell::new(self));
        Ok(self.runtime()?.spawn(in_cell(cell, fut)))
    }

    /// Runs `f` on a blocking thread of the lane: the current runtime's
    /// pool for the interactive lane, the bulk runtime's (low priority)
    /// for the bulk lane.
    pub fn spawn_blocking<F, R>(self, f: F) -> std::io::Result<JoinHandle<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Ok(match self {
            Lane::Interactive => tokio::task::spawn_blocking(f),
            Lane::Bulk => bulk_runtime()?.spawn_blocking(f),
        })
    }
}

/// The bulk lane's runtime, started on first use (one per process, built
/// by one caller only, like [`crate::executor::executor`]).
fn bulk_runtime() -> std::io::Result<&'static Runtime> {
    static RT: OnceLock<Runtime> = OnceLock::new();
    static BUILDING: Mutex<()> = Mutex::new(());
    crate::executor::runtime_once(&RT, &BUILDING, || {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("ignis-bulk")
            .on_thread_start(lower_this_threads_priority)
            .enable_all()
            .build()
    })
}

/// Gives the calling thread the bulk lane's `nice` (Linux: a per-thread
/// value; lowering one's own priority needs no privilege). Best effort: a
/// refusal leaves the thread as it was.
fn lower_this_threads_priority() {
    let nice = BULK_NICE.load(Ordering::Relaxed);
    if nice > 0 {
        // SCHED_IDLE: a normal thread that wakes takes the core from a bulk
        // one at once (in the normal class it may wait for the bulk
        // thread's time slice, a few ms per hand-off of its query).
        sys::set_nice(nice);
        if BULK_IDLE.load(Ordering::Relaxed) {
            sys::set_idle_policy();
        }
    }
}

/// The calling thread's `nice` value (0 where threads have none).
#[cfg(test)]
fn this_threads_nice() -> i32 {
    sys::nice()
}

#[cfg(target_os = "linux")]
mod sys {
    /// Sets the calling thread's `nice`.
    pub(super) fn set_nice(nice: i32) {
        // SAFETY: gettid and setpriority take plain integers and touch no
        // memory of ours.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice);
        }
    }

    /// Puts the calling thread in the `SCHED_IDLE` class (true when the
    /// kernel agreed).
    pub(super) fn set_idle_policy() -> bool {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: gettid takes nothing; sched_setscheduler reads `param`,
        // which lives across the call.
        unsafe { libc::sched_setscheduler(libc::gettid(), libc::SCHED_IDLE, &param) == 0 }
    }

    /// The `SCHED_IDLE` policy number.
    #[cfg(test)]
    pub(super) const IDLE: i32 = libc::SCHED_IDLE;

    /// The calling thread's scheduling policy.
    #[cfg(test)]
    pub(super) fn policy() -> i32 {
        // SAFETY: plain integers in and out.
        unsafe { libc::sched_getscheduler(libc::gettid()) }
    }

    /// The calling thread's `nice`.
    #[cfg(test)]
    pub(super) fn nice() -> i32 {
        // SAFETY: as above (getpriority's -1 is a valid value; an error is
        // read as it).
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub(super) fn set_nice(_nice: i32) {}
    pub(super) fn set_idle_policy() -> bool {
        false
    }
    #[cfg(test)]
    pub(super) const IDLE: i32 = -1;
    #[cfg(test)]
    pub(super) fn policy() -> i32 {
        0
    }
    #[cfg(test)]
    pub(super) fn nice() -> i32 {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bulk_work_runs_at_the_lower_priority_and_knows_its_lane() {
        let base = this_threads_nice();
        let expected = if cfg!(target_os = "linux") {
            base.max(DEFAULT_BULK_NICE)
        } else {
            base
        };
        let bulk = Lane::Bulk
            .spawn(async { (current(), this_threads_nice()) })
            .unwrap()
            .await
            .unwrap();
        assert_eq!(bulk, (Lane::Bulk, expected));
        let blocking = Lane::Bulk
            .spawn_blocking(this_threads_nice)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(blocking, expected);
        if cfg!(target_os = "linux") {
            let policy = Lane::Bulk
                .spawn_blocking(sys::policy)
                .unwrap()
                .await
                .unwrap();
            assert_eq!(
                policy,
                sys::IDLE,
                "bulk threads are in the SCHED_IDLE class"
            );
            assert_ne!(sys::policy(), sys::IDLE);
        }
        let here = Lane::Interactive
            .spawn_blocking(this_threads_nice)
            .unwrap()
            .await
            .unwrap();
        assert_eq!(here, base);
        assert_eq!((current(), scoped()), (Lane::Interactive, None));
        assert_eq!(
            in_lane(Lane::Bulk, async { (current(), scoped()) }).await,
            (Lane::Bulk, Some(Lane::Bulk))
        );
        // A query's lane turns bulk while it runs: its later work and the
        // tasks it spawned see it.
        let cell = LaneCell::new(Lane::Interactive);
        let seen = in_cell(cell.clone(), async {
            let before = current();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let task = Lane::Interactive
                .spawn(async move {
                    let _ = rx.await;
                    current()
                })
                .unwrap();
            cell.demote();
            let _ = tx.send(());
            (before, current(), task.await.unwrap())
        })
        .await;
        assert_eq!(seen, (Lane::Interactive, Lane::Bulk, Lane::Bulk));
    }
}
