//! SQL over a tenant's profiles, executed by DataFusion.
//!
//! Every source (a block in the bucket, or a head still in memory) exposes
//! the same tables: the Parquet files of a block read through opendal, or
//! the same Arrow batches built from a head ([`head_tables`]). Two views
//! union them, so one plan covers blocks and memory:
//!
//! - `profiles`: `block, service_name, profile_type, labels, time,
//!   timestamp_ns, total, num_samples, profile_id` — one row per profile and
//!   series;
//! - `samples`: `block, service_name, profile_type, labels, time,
//!   timestamp_ns, profile_id, value, leaf_function` — one row per stack of a
//!   profile, with the innermost function's name;
//! - `spans`: `block, service_name, profile_type, labels, time,
//!   timestamp_ns, profile_id, span_id, trace_id, value, leaf_function` — one
//!   row per stack of a span or trace in a profile (blocks of format 3 and
//!   memory; `span_id` is the little-endian `u64` of the 16 hex characters,
//!   0 for none; `trace_id` the 32 hex characters, NULL for none and in
//!   blocks before format 7).
//!
//! Blocks are chosen by their time range first; DataFusion then prunes
//! row groups by their statistics. Parquet footers come from the node's
//! shared cache ([`Bucket`]), so a block's footers are read from the bucket
//! once, not on every query. Queries are read-only (no DDL, DML or
//! statements), run within a memory limit of their own, and are bounded in
//! shape and functions first ([`crate::sql_shape`]).

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{ParquetReadOptions, SQLOptions, SessionConfig, SessionContext};
use ignis_storage::block::{BlockMeta, BlockTable};

use crate::bucket::{BUCKET_URL, Bucket};
use crate::error::QueryError;

/// At most this many blocks are read by one SQL query.
pub const MAX_BLOCKS: usize = 256;

/// What one SQL query reads.
pub struct SqlInput {
    /// The bucket (with its footer cache), when blocks are read.
    pub bucket: Option<Arc<Bucket>>,
    /// Blocks whose time range overlaps the query's.
    pub blocks: Vec<BlockMeta>,
    /// Tables of the data still in memory (see [`head_tables`]).
    ///
    /// [`head_tables`]: ignis_storage::block::head_tables
    pub heads: Vec<Vec<BlockTable>>,
}

/// Settings of [`run_sql`].
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Rows returned at most (more are cut, and the answer says so).
    pub max_rows: usize,
    /// Memory the query may use, in bytes.
    pub max_memory: usize,
}

/// The answer: column names and rows as JSON objects.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlAnswer {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<serde_json::Value>,
    /// True when more rows existed than `max_rows`.
    pub truncated: bool,
    /// Blocks read (after pruning by time).
    pub blocks: usize,
}

fn df_err(e: impl std::fmt::Display) -> QueryError {
    QueryError::invalid(format!("SQL: {e}"))
}

/// One source's part of the `spans` view (format 3 blocks and heads;
/// `with_traces`: the table has a `trace_id` column, format 7 on).
fn spans_part(prefix: &str, block: &str, with_traces: bool) -> String {
    let trace = if with_traces {
        // 32 lowercase hex characters, NULL for a sample without a trace.
        "NULLIF(encode(CAST(s.trace_id AS BYTEA), 'hex'), '00000000000000000000000000000000')"
    } else {
        "CAST(NULL AS VARCHAR)"
    };
    format!(
        "SELECT '{block}' AS block, se.service_name, se.profile_type, se.labels, \
         to_timestamp_nanos(s.timestamp_ns) AS time, s.timestamp_ns, s.profile_id, s.span_id, \
         {trace} AS trace_id, s.value, st.value AS leaf_function \
         FROM {prefix}_spans s JOIN {prefix}_series se ON s.series_ref = se.series_ref \
         LEFT JOIN {prefix}_stacks k ON s.stack_id = k.stack_id \
         LEFT JOIN {prefix}_locations l ON l.location_id = k.location_ids[1] \
         LEFT JOIN {prefix}_functions f ON f.function_id = l.line_function_ids[1] \
         LEFT JOIN {prefix}_strings st ON st.string_id = f.name"
    )
}

/// One source's part of the `profiles` and `samples` views.
fn view_parts(prefix: &str, block: &str, with_ids: bool) -> (String, String) {
    let id = if with_ids {
        "p.profile_id"
    } else {
        "CAST(0 AS BIGINT UNSIGNED)"
    };
    let sid = if with_ids {
        "s.profile_id"
    } else {
        "CAST(0 AS BIGINT UNSIGNED)"
    };
    let profiles = format!(
        "SELECT '{block}' AS block, se.service_name, se.profile_type, se.labels, \
         to_timestamp_nanos(p.timestamp_ns) AS time, p.timestamp_ns, p.total, p.num_samples, \
         {id} AS profile_id \
         FROM {prefix}_profiles p JOIN {prefix}_series se ON p.series_ref = se.series_ref"
    );
    let samples = format!(
        "SELECT '{block}' AS block, se.service_name, se.profile_type, se.labels, \
         to_timestamp_nanos(s.timestamp_ns) AS time, s.timestamp_ns, {sid} AS profile_id, \
         s.value, st.value AS leaf_function \
         FROM {prefix}_samples s JOIN {prefix}_series se ON s.series_ref = se.series_ref \
         LEFT JOIN {prefix}_stacks k ON s.stack_id = k.stack_id \
         LEFT JOIN {prefix}_locations l ON l.location_id = k.location_ids[1] \
         LEFT JOIN {prefix}_functions f ON f.function_id = l.line_function_ids[1] \
         LEFT JOIN {prefix}_strings st ON st.string_id = f.name"
    );
    (profiles, samples)
}

const TABLES: [&str; 6] = [
    "series",
    "profiles",
    "samples",
    "stacks",
    "locations",
    "functions",
];

/// Runs `sql` (one read-only query) over `input`.
pub async fn run_sql(
    input: SqlInput,
    sql: &str,
    limits: SqlLimits,
) -> Result<SqlAnswer, QueryError> {
    crate::sql_shape::check_sql_shape(sql)?;
    if input.blocks.len() > MAX_BLOCKS {
        return Err(QueryError::invalid(format!(
            "the time range covers {} blocks; SQL reads at most {MAX_BLOCKS}: narrow the range",
            input.blocks.len()
        )));
    }
    let max_memory = limits.max_memory.max(1 << 20);
    let runtime = match &input.bucket {
        Some(bucket) => bucket.runtime(Some(max_memory)).map_err(df_err)?,
        None => RuntimeEnvBuilder::new()
            .with_memory_limit(max_memory, 1.0)
            .build_arc()
            .map_err(df_err)?,
    };
    let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
    // Sums saturate as everywhere else in Ignis instead of wrapping.
    ctx.register_udaf(crate::sql_sum::saturating_sum());
    for f in crate::sql_shape::UNBOUNDED_FUNCTIONS {
        ctx.deregister_udf(f);
        ctx.deregister_udtf(f);
    }
    let (mut profiles, mut samples, mut spans) = (Vec::new(), Vec::new(), Vec::new());
    for (i, meta) in input.blocks.iter().enumerate() {
        if input.bucket.is_none() {
            break;
        }
        let prefix = format!("b{i}");
        let with_spans = meta.format_version >= 3;
        let extra: &[&str] = if with_spans {
            &["strings", "spans"]
        } else {
            &["strings"]
        };
        for t in TABLES.iter().chain(extra) {
            let url = format!(
                "{BUCKET_URL}/{}/blocks/{}/{t}.parquet",
                meta.tenant, meta.ulid
            );
            ctx.register_parquet(
                &format!("{prefix}_{t}"),
                &url,
                ParquetReadOptions::default(),
            )
            .await
            .map_err(|e| QueryError::invalid(format!("reading block {}: {e}", meta.ulid)))?;
        }
        let (p, s) = view_parts(&prefix, &meta.ulid, meta.format_version >= 2);
        profiles.push(p);
        samples.push(s);
        if with_spans {
            spans.push(spans_part(
                &prefix,
                &meta.ulid,
                meta.format_version >= ignis_storage::block::TRACE_IDS_SINCE,
            ));
        }
    }
    // Memory: the same tables, as batches. An empty head keeps the views
    // well-formed when there is no data at all, or no span table (only
    // blocks older than format 3).
    let mut heads = input.heads;
    if heads.is_empty() && spans.is_empty() {
        heads.push(
            ignis_storage::block::head_tables(&ignis_storage::Head::new())
                .map_err(|e| QueryError::invalid(e.to_string()))?,
        );
    }
    for (i, tables) in heads.into_iter().enumerate() {
        let prefix = format!("h{i}");
        for t in tables {
            let name = t.file.trim_end_matches(".parquet");
            let batch: RecordBatch = t.batch;
            let mem = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(df_err)?;
            ctx.register_table(format!("{prefix}_{name}"), Arc::new(mem))
                .map_err(df_err)?;
        }
        let (p, s) = view_parts(&prefix, "memory", true);
        profiles.push(p);
        samples.push(s);
        spans.push(spans_part(&prefix, "memory", true));
    }
    for (name, parts) in [
        ("profiles", &profiles),
        ("samples", &samples),
        ("spans", &spans),
    ] {
        let view = format!("CREATE VIEW {name} AS {}", parts.join(" UNION ALL "));
        ctx.sql(&view)
            .await
            .map_err(df_err)?
            .collect()
            .await
            .map_err(df_err)?;
    }
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await.map_err(df_err)?;
    let columns: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let batches = df
        .limit(0, Some(limits.max_rows.saturating_add(1)))
        .map_err(df_err)?
        .collect()
        .await
        .map_err(df_err)?;
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for b in &batches {
        writer.write(b).map_err(df_err)?;
    }
    writer.finish().map_err(df_err)?;
    let bytes = writer.into_inner();
    let mut rows: Vec<serde_json::Value> = if bytes.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&bytes).map_err(df_err)?
    };
    let truncated = rows.len() > limits.max_rows;
    rows.truncate(limits.max_rows);
    Ok(SqlAnswer {
        columns,
        rows,
        truncated,
        blocks: input.blocks.len(),
    })
}
