//! The profiles a Go `net/http/pprof` endpoint serves, and how each is stored.

use serde::{Deserialize, Serialize};

/// One profile of a scrape target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProfileKind {
    /// `/debug/pprof/profile?seconds=N`: CPU time over the N seconds.
    Cpu,
    /// `/debug/pprof/heap`: allocations (cumulative) and memory in use.
    Heap,
    /// `/debug/pprof/allocs`: the same Go profile as `heap`.
    Allocs,
    /// `/debug/pprof/goroutine`: goroutines alive now.
    Goroutine,
    /// `/debug/pprof/mutex`: lock contention (cumulative).
    Mutex,
    /// `/debug/pprof/block`: blocking on synchronization (cumulative).
    Block,
}

impl ProfileKind {
    /// The kinds scraped when a target names none (`heap` is left out: Go
    /// serves the same profile as `allocs`).
    pub const DEFAULT: [ProfileKind; 5] = [
        ProfileKind::Cpu,
        ProfileKind::Allocs,
        ProfileKind::Goroutine,
        ProfileKind::Mutex,
        ProfileKind::Block,
    ];

    /// The name used in config, metrics and the status page.
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileKind::Cpu => "cpu",
            ProfileKind::Heap => "heap",
            ProfileKind::Allocs => "allocs",
            ProfileKind::Goroutine => "goroutine",
            ProfileKind::Mutex => "mutex",
            ProfileKind::Block => "block",
        }
    }

    /// The `__name__` of its series, as Grafana Alloy's scraper names them.
    pub fn metric(self) -> &'static str {
        match self {
            ProfileKind::Cpu => "process_cpu",
            ProfileKind::Heap | ProfileKind::Allocs => "memory",
            ProfileKind::Goroutine => "goroutine",
            ProfileKind::Mutex => "mutex",
            ProfileKind::Block => "block",
        }
    }

    /// The path and query below the target's pprof prefix.
    pub fn path(self, cpu_seconds: u64) -> String {
        match self {
            ProfileKind::Cpu => format!("/profile?seconds={cpu_seconds}"),
            other => format!("/{}", other.as_str()),
        }
    }

    /// Whether the sample type `name` of this kind counts from process start.
    pub fn is_cumulative(self, sample_type: &str) -> bool {
        match self {
            ProfileKind::Heap | ProfileKind::Allocs => sample_type.starts_with("alloc_"),
            ProfileKind::Mutex | ProfileKind::Block => true,
            ProfileKind::Cpu | ProfileKind::Goroutine => false,
        }
    }

    /// Whether any of its sample types is cumulative.
    pub fn needs_delta(self) -> bool {
        matches!(
            self,
            ProfileKind::Heap | ProfileKind::Allocs | ProfileKind::Mutex | ProfileKind::Block
        )
    }
}

impl std::fmt::Display for ProfileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
