//! Group commit: appends wait for the next sync that starts after they were
//! written, and one sync serves every append waiting for it, so concurrent
//! pushes share disk syncs and no actor thread blocks on one.
//!
//! Under load, syncs start at most once per commit window (see
//! [`super::Wal::set_commit_window`]): each sync then covers every append of
//! its window. An append after a quiet spell is synced at once. With
//! [`super::WalSync::Batched`] the same thread syncs on a timer instead and
//! nobody waits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use super::WalError;

/// The default commit window of [`super::WalSync::Always`]: at most one
/// sync per millisecond under load (an acknowledgement waits at most this
/// much longer).
pub const DEFAULT_COMMIT_WINDOW: Duration = Duration::from_millis(1);

pub(super) struct GroupCommit {
    state: Mutex<GroupState>,
    /// Wakes the sync thread.
    kick: Condvar,
    /// Number of completed syncs; waiters watch it.
    done: tokio::sync::watch::Sender<GroupDone>,
    /// The least time between the starts of two syncs, in microseconds.
    window_us: AtomicU64,
}

#[derive(Default)]
struct GroupState {
    /// Syncs started so far.
    started: u64,
    /// A sync has been asked for and not started yet.
    wanted: bool,
    /// The WAL was dropped: the sync thread exits.
    closed: bool,
}

/// Completed syncs: how many, and the last that failed (its number and why).
#[derive(Clone, Default)]
struct GroupDone {
    completed: u64,
    failed: Option<(u64, String)>,
}

impl GroupCommit {
    pub(super) fn new() -> Self {
        Self {
            state: Mutex::new(GroupState::default()),
            kick: Condvar::new(),
            done: tokio::sync::watch::Sender::new(GroupDone::default()),
            window_us: AtomicU64::new(DEFAULT_COMMIT_WINDOW.as_micros() as u64),
        }
    }

    pub(super) fn set_window(&self, window: Duration) {
        let us = u64::try_from(window.as_micros()).unwrap_or(u64::MAX);
        self.window_us.store(us, Ordering::Relaxed);
    }

    /// A wait for the first sync that covers everything written before this call.
    pub(super) fn durable(&self) -> Durable {
        let target = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.wanted = true;
            self.kick.notify_one();
            st.started + 1
        };
        Durable {
            target: Some(target),
            rx: self.done.subscribe(),
        }
    }

    /// Syncs completed so far.
    #[cfg(test)]
    pub(super) fn completed(&self) -> u64 {
        self.done.borrow().completed
    }

    /// The sync thread: waits for requests (or, with a `period`, for it to
    /// pass) and runs one `sync` for all of them.
    pub(super) fn run(&self, period: Option<Duration>, sync: impl Fn() -> std::io::Result<()>) {
        let mut last_start: Option<Instant> = None;
        loop {
            if !self.wait_wanted(period) {
                return;
            }
            // Under load, let the window since the last sync fill up:
            // appends arriving meanwhile join this sync (they ask for the
            // one numbered `started + 1`, which is the one about to start).
            let window = Duration::from_micros(self.window_us.load(Ordering::Relaxed));
            if let Some(rest) = last_start.and_then(|t| window.checked_sub(t.elapsed())) {
                std::thread::sleep(rest);
            }
            {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if st.closed {
                    return;
                }
                st.wanted = false;
                st.started += 1;
            }
            last_start = Some(Instant::now());
            let error = sync().err().map(|e| e.to_string());
            if let Some(e) = &error {
                tracing::error!(error = %e, "WAL sync failed");
            }
            self.done.send_modify(|d| {
                d.completed += 1;
                if let Some(e) = error {
                    d.failed = Some((d.completed, e));
                }
            });
        }
    }

    /// Blocks until a sync is wanted or `period` passed (true) or the WAL
    /// closed (false).
    fn wait_wanted(&self, period: Option<Duration>) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match period {
            Some(p) => {
                if !st.wanted && !st.closed {
                    st = self
                        .kick
                        .wait_timeout(st, p)
                        .map(|(st, _)| st)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
            }
            None => {
                while !st.wanted && !st.closed {
                    st = self.kick.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        !st.closed
    }

    pub(super) fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.kick.notify_one();
    }
}

/// Waits until an appended record is on disk (see [`super::Wal::durable`]).
pub struct Durable {
    target: Option<u64>,
    rx: tokio::sync::watch::Receiver<GroupDone>,
}

impl Durable {
    /// A wait that is over at once ([`super::WalSync::Batched`]).
    pub(super) fn now(group: &GroupCommit) -> Self {
        Self {
            target: None,
            rx: group.done.subscribe(),
        }
    }

    /// True when there is nothing to wait for.
    #[cfg(test)]
    pub(super) fn is_immediate(&self) -> bool {
        self.target.is_none()
    }

    /// Resolves once the record is durable, or with the sync's error.
    pub async fn wait(mut self) -> Result<(), WalError> {
        let Some(target) = self.target else {
            return Ok(());
        };
        let done = self
            .rx
            .wait_for(|d| d.completed >= target)
            .await
            .map_err(|_| WalError::Sync("the WAL was closed".into()))?;
        match &done.failed {
            // The sync that covered this record, or one after it, failed:
            // after a failed sync the kernel may have dropped its pages, so
            // a later success does not prove them written.
            Some((n, e)) if *n >= target => Err(WalError::Sync(e.clone())),
            _ => Ok(()),
        }
    }
}
