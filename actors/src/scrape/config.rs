//! `[scrape]` in `config.toml`: the pull-mode targets and how often to scrape them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::kind::ProfileKind;

/// Pull-mode settings: Go `net/http/pprof` endpoints scraped on an interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrapeConfig {
    /// Seconds between two scrapes of the same profile of a target.
    pub interval_secs: u64,
    /// Seconds of CPU profile per scrape (`profile?seconds=N`); 0 = the interval minus one second.
    pub cpu_seconds: u64,
    /// Seconds a scrape may take, on top of the CPU profile's own duration.
    pub timeout_secs: u64,
    /// Largest accepted scrape response, in bytes.
    pub max_response_bytes: usize,
    /// The targets.
    pub targets: Vec<ScrapeTargetConfig>,
}

impl Default for ScrapeConfig {
    fn default() -> Self {
        Self {
            interval_secs: 15,
            cpu_seconds: 0,
            timeout_secs: 10,
            max_response_bytes: 64 << 20,
            targets: Vec::new(),
        }
    }
}

/// One scraped program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeTargetConfig {
    /// Base URL of the program, e.g. `http://127.0.0.1:6060`.
    pub url: String,
    /// Where `net/http/pprof` is mounted.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// `service_name` of its series (default: the URL's `host:port`).
    #[serde(default)]
    pub service_name: Option<String>,
    /// Extra series labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Profiles to scrape (default: cpu, allocs, goroutine, mutex, block).
    #[serde(default = "default_profiles")]
    pub profiles: Vec<ProfileKind>,
    /// Tenant the profiles are stored for (default: `tenancy.default_tenant`).
    #[serde(default)]
    pub tenant: Option<String>,
}

fn default_prefix() -> String {
    "/debug/pprof".into()
}

fn default_profiles() -> Vec<ProfileKind> {
    ProfileKind::DEFAULT.to_vec()
}

impl ScrapeConfig {
    /// Time between scrapes.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs)
    }

    /// Seconds of CPU profile per scrape.
    pub fn cpu_seconds(&self) -> u64 {
        if self.cpu_seconds > 0 {
            self.cpu_seconds
        } else {
            self.interval_secs.saturating_sub(1).max(1)
        }
    }

    /// Time limit of one scrape of `kind`.
    pub fn timeout(&self, kind: ProfileKind) -> Duration {
        let extra = if kind == ProfileKind::Cpu {
            self.cpu_seconds()
        } else {
            0
        };
        Duration::from_secs(self.timeout_secs + extra)
    }

    /// Checks the settings, naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.targets.is_empty() {
            return Ok(());
        }
        if self.interval_secs == 0 {
            return Err("scrape.interval_secs must be > 0".into());
        }
        if self.timeout_secs == 0 {
            return Err("scrape.timeout_secs must be > 0".into());
        }
        if self.cpu_seconds() >= self.interval_secs.max(2) {
            return Err(format!(
                "scrape.cpu_seconds ({}) must be shorter than scrape.interval_secs ({})",
                self.cpu_seconds(),
                self.interval_secs
            ));
        }
        if self.max_response_bytes == 0 {
            return Err("scrape.max_response_bytes must be > 0".into());
        }
        let mut seen = std::collections::HashSet::new();
        for t in &self.targets {
            let url = t
                .base_url()
                .map_err(|e| format!("scrape target {:?}: {e}", t.url))?;
            if !seen.insert(url.clone()) {
                return Err(format!("scrape target {url} is listed twice"));
            }
            if t.profiles.is_empty() {
                return Err(format!("scrape target {url}: profiles is empty"));
            }
            if t.profiles.contains(&ProfileKind::Heap) && t.profiles.contains(&ProfileKind::Allocs)
            {
                return Err(format!(
                    "scrape target {url}: heap and allocs are the same Go profile (memory); list one"
                ));
            }
            if let Some(tenant) = &t.tenant {
                crate::validate_tenant_id(tenant)
                    .map_err(|e| format!("scrape target {url}: tenant: {e}"))?;
            }
            for k in t.labels.keys() {
                if k.starts_with("__") || k == "service_name" {
                    return Err(format!(
                        "scrape target {url}: label {k:?} is reserved (use service_name for it)"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ScrapeTargetConfig {
    /// The target's URL without a trailing slash, checked to be http(s).
    pub fn base_url(&self) -> Result<String, String> {
        let url = reqwest::Url::parse(&self.url).map_err(|e| format!("bad url: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("url must be http:// or https://".into());
        }
        if url.host_str().is_none() {
            return Err("url has no host".into());
        }
        Ok(self.url.trim_end_matches('/').to_string())
    }

    /// `host:port` of the target (the `instance` label).
    pub fn instance(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => match (u.host_str(), u.port_or_known_default()) {
                (Some(h), Some(p)) => format!("{h}:{p}"),
                (Some(h), None) => h.to_string(),
                _ => self.url.clone(),
            },
            Err(_) => self.url.clone(),
        }
    }

    /// The `service_name` of its series.
    pub fn service(&self) -> String {
        self.service_name.clone().unwrap_or_else(|| self.instance())
    }

    /// The URL a scrape of `kind` fetches.
    pub fn url_for(&self, kind: ProfileKind, cpu_seconds: u64) -> String {
        format!(
            "{}{}{}",
            self.url.trim_end_matches('/'),
            self.path_prefix.trim_end_matches('/'),
            kind.path(cpu_seconds)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> ScrapeTargetConfig {
        ScrapeTargetConfig {
            url: url.into(),
            path_prefix: default_prefix(),
            service_name: None,
            labels: BTreeMap::new(),
            profiles: default_profiles(),
            tenant: None,
        }
    }

    #[test]
    fn urls_instances_and_defaults() {
        let t = target("http://127.0.0.1:6060/");
        assert_eq!(
            t.url_for(ProfileKind::Cpu, 14),
            "http://127.0.0.1:6060/debug/pprof/profile?seconds=14"
        );
        assert_eq!(
            t.url_for(ProfileKind::Mutex, 14),
            "http://127.0.0.1:6060/debug/pprof/mutex"
        );
        assert_eq!(t.service(), "127.0.0.1:6060");
        let c = ScrapeConfig::default();
        assert_eq!(c.cpu_seconds(), 14);
        assert_eq!(c.timeout(ProfileKind::Cpu), Duration::from_secs(24));
    }

    #[test]
    fn validation_names_the_problem() {
        let mut c = ScrapeConfig {
            targets: vec![target("ftp://x")],
            ..Default::default()
        };
        assert!(c.validate().unwrap_err().contains("http"));
        c.targets = vec![target("http://a:1"), target("http://a:1")];
        assert!(c.validate().unwrap_err().contains("twice"));
        let mut t = target("http://a:1");
        t.profiles = vec![ProfileKind::Heap, ProfileKind::Allocs];
        c.targets = vec![t];
        assert!(c.validate().unwrap_err().contains("same Go profile"));
        let mut t = target("http://a:1");
        t.labels.insert("__name__".into(), "x".into());
        c.targets = vec![t];
        assert!(c.validate().unwrap_err().contains("reserved"));
        c.targets = vec![target("http://a:1")];
        c.cpu_seconds = 15;
        assert!(c.validate().unwrap_err().contains("shorter"));
        c.cpu_seconds = 0;
        assert!(c.validate().is_ok());
    }
}
