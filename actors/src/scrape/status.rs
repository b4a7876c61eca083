//! Health of every scraped target and profile, for `/scrape` and `/metrics`.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::Serialize;

use super::kind::ProfileKind;

/// The state of one profile of one target.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileHealth {
    /// The scraped URL.
    pub url: String,
    /// The profile.
    pub profile: ProfileKind,
    /// `service_name` of its series.
    pub service_name: String,
    /// Tenant its profiles are stored for.
    pub tenant: String,
    /// `unknown` (not scraped yet), `up`, `down`, or `elsewhere` (another node owns it).
    pub health: &'static str,
    /// End of the last scrape (ms since the epoch), 0 if none.
    pub last_scrape_ms: u64,
    /// Duration of the last scrape in ms.
    pub last_duration_ms: u64,
    /// What went wrong last, empty after a success.
    pub last_error: String,
    /// What the last successful scrape stored: `stored`, `baseline`, `reset` or `empty`.
    pub last_outcome: &'static str,
    /// Scrapes done.
    pub scrapes: u64,
    /// Scrapes that failed.
    pub failures: u64,
    /// Profiles stored from this target's profile.
    pub stored: u64,
}

/// Every target's health, keyed by (URL, profile).
#[derive(Debug, Default)]
pub struct ScrapeStatus {
    entries: Mutex<BTreeMap<(String, ProfileKind), ProfileHealth>>,
}

impl ScrapeStatus {
    /// Registers a target's profile before its first scrape.
    pub fn register(&self, h: ProfileHealth) {
        self.entries.lock().insert((h.url.clone(), h.profile), h);
    }

    /// Applies `f` to the entry of (`url`, `profile`), if registered.
    pub fn update(&self, url: &str, profile: ProfileKind, f: impl FnOnce(&mut ProfileHealth)) {
        if let Some(h) = self.entries.lock().get_mut(&(url.to_string(), profile)) {
            f(h);
        }
    }

    /// All entries, sorted by URL then profile.
    pub fn snapshot(&self) -> Vec<ProfileHealth> {
        self.entries.lock().values().cloned().collect()
    }
}
