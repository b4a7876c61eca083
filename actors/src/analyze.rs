//! What a query over a time range touches on this node (`AnalyzeQuery`):
//! the ingester's in-memory heads and the blocks its store-gateway serves
//! that overlap the range, with their rows and bytes, counted exactly.

use ignis_storage::Head;
use ignis_storage::block::{BlockMeta, SPANS_FILE, SYMBOL_FILES};

use crate::querier::QueryFailure;
use crate::tenants::Tenants;

/// What one kind of storage holds in the range.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Touched {
    /// Heads or blocks overlapping the range.
    pub blocks: u64,
    /// Their series.
    pub series: u64,
    /// Their profile rows.
    pub profiles: u64,
    /// Their `(stack, value)` samples.
    pub samples: u64,
    /// Bytes of their series index (`series.parquet`; 0 in memory).
    pub index_bytes: u64,
    /// Bytes of their profile rows and samples.
    pub profile_bytes: u64,
    /// Bytes of their symbols.
    pub symbol_bytes: u64,
}

impl Touched {
    /// All bytes.
    pub fn bytes(&self) -> u64 {
        self.index_bytes + self.profile_bytes + self.symbol_bytes
    }

    fn add_head(&mut self, h: &Head) {
        let s = h.stats();
        let rows = ignis_storage::head::approx_row_bytes(s.profiles, s.samples, s.span_samples);
        self.blocks += 1;
        self.series += s.series;
        self.profiles += s.profiles;
        self.samples += s.samples;
        self.symbol_bytes += h.approx_bytes().saturating_sub(rows);
        self.profile_bytes += rows;
    }

    fn add_block(&mut self, m: &BlockMeta) {
        self.blocks += 1;
        self.series += m.stats.series;
        self.profiles += m.stats.profiles;
        self.samples += m.stats.samples;
        for f in &m.files {
            match f.name.as_str() {
                "series.parquet" => self.index_bytes += f.size_bytes,
                n if SYMBOL_FILES.contains(&n) => self.symbol_bytes += f.size_bytes,
                n if n == SPANS_FILE || n == "profiles.parquet" || n == "samples.parquet" => {
                    self.profile_bytes += f.size_bytes
                }
                _ => self.symbol_bytes += f.size_bytes,
            }
        }
    }
}

/// This node's share of a query over `[start_ns, end_ns]`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The ingester's heads (short-term storage).
    pub memory: Touched,
    /// The store-gateway's blocks (long-term storage).
    pub blocks: Touched,
}

impl Tenants {
    /// What a query of `tenant` (or of each tenant a federated spec names)
    /// over `[start_ns, end_ns]` touches on this node: heads and sealed
    /// heads, and the blocks its store-gateway serves, that overlap the
    /// range (whole, with their sizes).
    pub async fn analyze(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
    ) -> Result<Analysis, QueryFailure> {
        let mut out = Analysis::default();
        for tenant in crate::tenants::tenant_ids(tenant) {
            self.analyze_one(tenant, start_ns, end_ns, &mut out).await?;
        }
        Ok(out)
    }

    async fn analyze_one(
        &self,
        tenant: &str,
        start_ns: i64,
        end_ns: i64,
        out: &mut Analysis,
    ) -> Result<(), QueryFailure> {
        if let Some(snap) = self.snapshot(tenant).await? {
            for h in snap.all_heads() {
                let s = h.stats();
                let overlaps = s
                    .min_time_ns
                    .zip(s.max_time_ns)
                    .is_some_and(|(lo, hi)| hi >= start_ns && lo <= end_ns);
                if overlaps {
                    out.memory.add_head(h);
                }
            }
        }
        for m in self.local_blocks(tenant, start_ns, end_ns) {
            out.blocks.add_block(&m);
        }
        Ok(())
    }
}
