//! `meta.json`: what a block holds. Written last, so a block without it is
//! incomplete and ignored.

use serde::{Deserialize, Serialize};

/// The block format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 3;

/// The Parquet files of a block of the current format, in the order they are written.
pub const BLOCK_FILES: [&str; 9] = [
    "series.parquet",
    "profiles.parquet",
    "samples.parquet",
    "spans.parquet",
    "stacks.parquet",
    "locations.parquet",
    "functions.parquet",
    "mappings.parquet",
    "strings.parquet",
];

/// The span table, present from format 3 on.
pub const SPANS_FILE: &str = "spans.parquet";

/// The Parquet files a block of format `version` holds.
pub fn block_files(version: u32) -> impl Iterator<Item = &'static str> {
    BLOCK_FILES
        .into_iter()
        .filter(move |&f| version >= 3 || f != SPANS_FILE)
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
    /// `(span, stack, value)` span samples (0 before format 3).
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
}

/// Compaction lineage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compaction {
    /// 1 for blocks cut from a head; higher once compacted.
    pub level: u32,
    /// The level-1 blocks this one covers (itself for level 1).
    pub sources: Vec<String>,
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
