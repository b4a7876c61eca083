//! Restart backoff for supervised actors.

use std::time::Duration;

/// Exponential restart backoff: 100 ms doubling up to 30 s; reset once an
/// actor has run for a minute without failing.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    restarts: u32,
    last_start: Option<std::time::Instant>,
}

impl Backoff {
    /// Records a restart and returns how long to wait before serving again.
    pub fn on_restart(&mut self) -> Duration {
        if self
            .last_start
            .is_some_and(|t| t.elapsed() > Duration::from_secs(60))
        {
            self.restarts = 0;
        }
        self.restarts = self.restarts.saturating_add(1);
        let ms = 100u64.saturating_mul(1 << self.restarts.min(9).saturating_sub(1));
        Duration::from_millis(ms.min(30_000))
    }

    /// Records that the actor started.
    pub fn on_start(&mut self) {
        self.last_start = Some(std::time::Instant::now());
    }

    /// Restarts so far (since the last reset).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::default();
        assert_eq!(b.on_restart(), Duration::from_millis(100));
        assert_eq!(b.on_restart(), Duration::from_millis(200));
        for _ in 0..20 {
            b.on_restart();
        }
        assert_eq!(b.on_restart(), Duration::from_millis(25_600));
    }
}
