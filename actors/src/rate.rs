//! Per-tenant ingest rate limits: a token bucket of bytes, held by the
//! tenant's distributor (its own state, no lock).

use std::time::{Duration, Instant};

/// An ingest rate: `bytes_per_sec` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IngestRate {
    /// Sustained bytes per second (the WAL record size of what is stored:
    /// decompressed profiles and their labels).
    pub bytes_per_sec: f64,
    /// Most bytes accepted at once; a push larger than this never passes.
    pub burst: f64,
}

/// A push over the rate, and when one of its size could pass.
#[derive(Debug, Clone, PartialEq)]
pub struct OverRate {
    /// What the client is told.
    pub message: String,
    /// How long until a push of this size would pass (`None`: never, it is
    /// larger than the burst).
    pub retry_after: Option<Duration>,
}

/// A token bucket of bytes.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: IngestRate,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: IngestRate, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate.burst,
            last: now,
        }
    }

    /// Takes `bytes` if the bucket holds them; otherwise takes nothing and
    /// says when a push of this size could pass.
    pub fn take(&mut self, bytes: u64, now: Instant) -> Result<(), OverRate> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate.bytes_per_sec).min(self.rate.burst);
        let want = bytes as f64;
        if want <= self.tokens {
            self.tokens -= want;
            return Ok(());
        }
        let message = format!(
            "push rate limit ({:.0} bytes/s, burst {:.0} bytes) exceeded while adding {bytes} bytes",
            self.rate.bytes_per_sec, self.rate.burst
        );
        let retry_after = (want <= self.rate.burst && self.rate.bytes_per_sec > 0.0)
            .then(|| Duration::from_secs_f64((want - self.tokens) / self.rate.bytes_per_sec));
        Err(OverRate {
            message,
            retry_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustains_the_rate_and_allows_the_burst() {
        let t0 = Instant::now();
        let rate = IngestRate {
            bytes_per_sec: 1000.0,
            burst: 2000.0,
        };
        let mut b = TokenBucket::new(rate, t0);
        assert!(b.take(1500, t0).is_ok(), "the burst passes at once");
        let over = b.take(1000, t0).expect_err("500 left");
        assert_eq!(over.retry_after, Some(Duration::from_millis(500)));
        assert!(b.take(1000, t0 + Duration::from_millis(500)).is_ok());
        // Refilled, but never beyond the burst.
        assert!(b.take(2000, t0 + Duration::from_secs(60)).is_ok());
        assert!(b.take(1, t0 + Duration::from_secs(60)).is_err());
        // Larger than the burst: never.
        let never = b
            .take(2001, t0 + Duration::from_secs(3600))
            .expect_err("too big");
        assert_eq!(never.retry_after, None);
        assert!(
            never.message.contains("push rate limit"),
            "{}",
            never.message
        );
    }
}
