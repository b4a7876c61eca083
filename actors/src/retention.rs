//! [`Retention`]: how long a tenant's profiles are kept. Store-gateways stop
//! serving a block once its newest profile is past it; the compactor deletes
//! the block from the bucket a deletion delay later (so every store-gateway
//! has stopped reading it first).

use std::collections::HashMap;
use std::time::Duration;

/// How long profiles are kept: a default and per-tenant overrides (zero:
/// forever).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    /// Kept this long unless overridden (zero: forever).
    pub default: Duration,
    /// Per-tenant overrides (zero: forever).
    pub per_tenant: HashMap<String, Duration>,
}

impl Retention {
    /// The oldest newest-profile time (ns) a block of `tenant` may have at
    /// `now_ns` to be kept; `None` when the tenant keeps everything.
    pub fn cutoff_ns(&self, tenant: &str, now_ns: i64) -> Option<i64> {
        let keep = self.per_tenant.get(tenant).copied().unwrap_or(self.default);
        if keep.is_zero() {
            return None;
        }
        let keep = i64::try_from(keep.as_nanos()).unwrap_or(i64::MAX);
        Some(now_ns.saturating_sub(keep))
    }

    /// True when a block of `tenant` whose newest profile is at
    /// `max_time_ns` is past retention at `now_ns`.
    pub fn expired(&self, tenant: &str, max_time_ns: i64, now_ns: i64) -> bool {
        self.cutoff_ns(tenant, now_ns)
            .is_some_and(|cutoff| max_time_ns < cutoff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_zero_keeps_forever() {
        let r = Retention {
            default: Duration::from_secs(10),
            per_tenant: [
                ("keep".to_string(), Duration::ZERO),
                ("short".to_string(), Duration::from_secs(1)),
            ]
            .into(),
        };
        let now = 100_000_000_000;
        assert_eq!(r.cutoff_ns("a", now), Some(90_000_000_000));
        assert_eq!(r.cutoff_ns("short", now), Some(99_000_000_000));
        assert_eq!(r.cutoff_ns("keep", now), None);
        assert!(r.expired("a", 89_999_999_999, now));
        assert!(!r.expired("a", 90_000_000_000, now));
        assert!(!r.expired("keep", 0, now));
        assert_eq!(Retention::default().cutoff_ns("a", now), None);
    }
}
