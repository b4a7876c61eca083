//! The per-tenant active series limit, held by the tenant's distributor:
//! a series is active while it was pushed within the last
//! [`ACTIVE_WINDOW_NS`]; a push that would make more than the limit active
//! is refused whole (nothing stored), as Pyroscope's `series_limit`.

use std::collections::HashMap;

/// How long a series stays active after its last push: an hour, the span
/// of an ingester's head.
pub const ACTIVE_WINDOW_NS: i64 = 3600 * 1_000_000_000;

/// A push refused by the series limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverSeries {
    /// Series active before the push plus the ones it would add.
    pub active: usize,
    /// The limit.
    pub limit: usize,
}

impl OverSeries {
    /// Pyroscope's `series_limit` message.
    pub fn message(&self) -> String {
        format!(
            "Maximum active series limit exceeded ({}/{}), reduce the number of active streams (reduce labels or reduce label values), or contact your administrator to see if the limit can be increased",
            self.active, self.limit
        )
    }
}

/// The series of one tenant pushed recently (by fingerprint, with the time
/// they were last pushed), at most `limit` of them.
#[derive(Debug)]
pub struct ActiveSeries {
    limit: usize,
    last_push_ns: HashMap<u64, i64>,
}

impl ActiveSeries {
    /// A tracker allowing `limit` active series (at least 1).
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            last_push_ns: HashMap::new(),
        }
    }

    /// Changes the limit; series already active stay active.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Series active now.
    pub fn len(&self) -> usize {
        self.last_push_ns.len()
    }

    /// True when no series is tracked.
    pub fn is_empty(&self) -> bool {
        self.last_push_ns.is_empty()
    }

    /// Admits a push of the series `fingerprints` at `now_ns`: all of them
    /// become (or stay) active, or none does and the push is refused.
    pub fn admit(&mut self, fingerprints: &[u64], now_ns: i64) -> Result<(), OverSeries> {
        let new = self.new_series(fingerprints);
        if self.last_push_ns.len() + new > self.limit {
            let oldest = now_ns.saturating_sub(ACTIVE_WINDOW_NS);
            self.last_push_ns.retain(|_, &mut t| t >= oldest);
            let new = self.new_series(fingerprints);
            if self.last_push_ns.len() + new > self.limit {
                return Err(OverSeries {
                    active: self.last_push_ns.len() + new,
                    limit: self.limit,
                });
            }
        }
        for &f in fingerprints {
            self.last_push_ns.insert(f, now_ns);
        }
        Ok(())
    }

    /// How many distinct `fingerprints` are not active.
    fn new_series(&self, fingerprints: &[u64]) -> usize {
        let mut unseen: Vec<u64> = fingerprints
            .iter()
            .copied()
            .filter(|f| !self.last_push_ns.contains_key(f))
            .collect();
        unseen.sort_unstable();
        unseen.dedup();
        unseen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * 1_000_000_000;

    #[test]
    fn a_push_past_the_limit_is_refused_whole() {
        let mut a = ActiveSeries::new(3);
        a.admit(&[1, 2, 2], 0).unwrap();
        assert_eq!(a.len(), 2);
        let err = a.admit(&[3, 4], MIN).unwrap_err();
        assert_eq!(
            err,
            OverSeries {
                active: 4,
                limit: 3
            }
        );
        assert_eq!(a.len(), 2, "nothing of a refused push is admitted");
        // Known series always pass; one more new one fits.
        a.admit(&[1, 2, 3], MIN).unwrap();
        assert!(a.admit(&[4], MIN).is_err());
    }

    #[test]
    fn series_idle_for_the_window_make_room() {
        let mut a = ActiveSeries::new(2);
        a.admit(&[1], 0).unwrap();
        a.admit(&[2], 30 * MIN).unwrap();
        assert!(a.admit(&[3], 59 * MIN).is_err());
        // Series 1 was last pushed an hour and a minute ago: it is no longer active.
        a.admit(&[3], 61 * MIN).unwrap();
        assert_eq!(a.len(), 2);
        assert!(a.admit(&[1], 61 * MIN).is_err());
    }
}
