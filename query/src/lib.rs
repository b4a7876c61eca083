//! Ignis query: label selectors, stack merging across sources, flame graphs,
//! pprof export, time series, and the query API built from them.

#![warn(missing_docs)]

pub use ignis_storage::attime;
pub mod block_read;
pub mod block_scan;
pub mod block_slice;
pub mod bucket;
pub mod budget;
pub mod diff;
pub mod dot;
pub mod engine;
pub mod error;
pub mod executor;
pub mod flamegraph;
pub mod head_source;
pub mod heatmap;
pub mod lane;
pub mod pgo;
pub mod pprof_export;
pub mod prelisted;
pub mod premerged;
pub mod preseries;
pub mod render;
pub mod rollup_read;
pub mod scope;
pub mod selector;
pub mod series_labels;
pub mod source;
pub mod sql;
pub mod sql_shape;
pub mod sql_sum;
pub mod timeseries;
pub mod totals_read;

pub use block_slice::BlockSlice;
pub use budget::MemoryBudget;
pub use engine::{Engine, QueryLimits};
pub use error::QueryError;
pub use premerged::Premerged;
pub use preseries::PreSeries;
pub use scope::Scope;
pub use source::{
    MergedStacks, ProfileSelector, ProfileTotal, Seen, Selection, Source, SpanSelector, SpanTotal,
};
