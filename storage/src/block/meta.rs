//! `meta.json`: what a block holds. Written last, so a block without it is
//! incomplete and ignored.

use serde::{Deserialize, Serialize};

/// The block format version this code writes and reads (8: window totals
/// name their exemplar).
pub const FORMAT_VERSION: u32 = 8;

/// The first format whose span table has a `trace_id` column.
pub const TRACE_IDS_SINCE: u32 = 7;

/// The first format whose window totals name each window's exemplar
/// ([`super::WINDOW_BEST_COLUMNS`]).
pub const WINDOW_EXEMPLARS_SINCE: u32 = 8;

/// The Parquet files of a block of the current format, in the order they are written.
pub const BLOCK_FILES: [&str; 11] = [
    "series.parquet",
    "profiles.parquet",
    "samples.parquet",
    "spans.parquet",
    "stacks.parquet",
    "locations.parquet",
    "functions.parquet",
    "mappings.parquet",
    "strings.parquet",
    "rollups.parquet",
    "totals.parquet",
];

/// The span table, present from format 3 on.
pub const SPANS_FILE: &str = "spans.parquet";

/// The rollup table (stacks pre-merged per series and time window), present
/// from format 4 on.
pub const ROLLUPS_FILE: &str = "rollups.parquet";

/// The window totals table (profile totals summed per series and time
/// window), present from format 6 on.
pub const TOTALS_FILE: &str = "totals.parquet";

/// The Parquet files a block of format `version` holds.
pub fn block_files(version: u32) -> impl Iterator<Item = &'static str> {
    BLOCK_FILES.into_iter().filter(move |&f| match f {
        SPANS_FILE => version >= 3,
        ROLLUPS_FILE => version >= 4,
        TOTALS_FILE => version >= 6,
        _ => true,
    })
}

/// The files a whole decode of a block of format `version` reads: all but
/// the rollups and window totals, which only pruned reads use.
pub fn row_files(version: u32) -> impl Iterator<Item = &'static str> {
    block_files(version).filter(|&f| f != ROLLUPS_FILE && f != TOTALS_FILE)
}

/// Description of one block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockMeta {
    /// Format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Block id (a ULID: sorts by creation time).
    pub ulid: String,
    /// Owning tenant.
    pub tenant: String,
    /// Earliest profile timestamp (ns).
    pub min_time_ns: i64,
    /// Latest profile timestamp (ns).
    pub max_time_ns: i64,
    /// Row counts.
    pub stats: BlockStats,
    /// The window lengths (ns, finest first) of its rollup table; empty
    /// before format 4.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollup_resolutions_ns: Vec<i64>,
    /// Compaction lineage.
    pub compaction: Compaction,
    /// Files and their sizes.
    pub files: Vec<BlockFile>,
    /// The last WAL record this block holds, so a restart after an upload
    /// whose WAL truncation did not happen replays nothing twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalPosition>,
}

/// A position in a node's WAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalPosition {
    /// The WAL's epoch ([`crate::Wal::epoch`]).
    pub epoch: String,
    /// The last sequence number included.
    pub last_seq: u64,
    /// The WAL stream it is of ([`crate::wal::stream_name`]); absent: the
    /// tenant's first stream (the only one before tenants had shards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
}

impl WalPosition {
    /// The WAL stream of a block of `tenant` at this position.
    pub fn stream_of<'a>(&'a self, tenant: &'a str) -> &'a str {
        self.stream.as_deref().unwrap_or(tenant)
    }
}

/// Row counts of a block.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// Series.
    pub series: u64,
    /// Profiles (one per series and timestamp).
    pub profiles: u64,
    /// `(stack, value)` samples.
    pub samples: u64,
    /// `(span, trace, stack, value)` span samples (0 before format 3).
    #[serde(default)]
    pub span_samples: u64,
    /// Distinct stacks.
    pub stacks: u64,
    /// Distinct locations.
    pub locations: u64,
    /// Distinct functions.
    pub functions: u64,
    /// Distinct mappings.
    pub mappings: u64,
    /// Distinct strings.
    pub strings: u64,
    /// Rows of the rollup table (0 before format 4).
    #[serde(default)]
    pub rollup_rows: u64,
    /// Rows of the window totals table (0 before format 6).
    #[serde(default)]
    pub total_rows: u64,
}

impl BlockMeta {
    /// True when the block has a rollup table (format 4 on).
    pub fn has_rollups(&self) -> bool {
        self.format_version >= 4
            && !self.rollup_resolutions_ns.is_empty()
            && self.files.iter().any(|f| f.name == ROLLUPS_FILE)
    }

    /// True when the block has a window totals table (format 6 on), at
    /// its rollup resolutions.
    pub fn has_totals(&self) -> bool {
        self.format_version >= 6
            && !self.rollup_resolutions_ns.is_empty()
            && self.files.iter().any(|f| f.name == TOTALS_FILE)
    }

    /// True when its window totals name each window's exemplar (format 8 on).
    pub fn has_window_exemplars(&self) -> bool {
        self.format_version >= WINDOW_EXEMPLARS_SINCE && self.has_totals()
    }
}

/// Compaction lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for blocks cut from a head; higher once compacted.
    pub level: u32,
    /// The level-1 blocks this one covers (itself for level 1).
    pub sources: Vec<String>,
    /// For a compacted block, the time range (inclusive, ns) it holds of
    /// its sources: their profiles in it, all of them, each once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<(i64, i64)>,
}

/// One file of a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockFile {
    /// File name inside the block directory.
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Rows.
    pub rows: u64,
}
