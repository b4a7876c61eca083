//! The runtime DataFusion work runs on: SQL queries and pruned block reads.
//!
//! Parquet decoding is CPU work; on the HTTP workers' single-threaded
//! runtimes it would stall every other request of the worker. One
//! multi-threaded runtime per process (a thread per core) runs it instead;
//! it lives as long as the process, so it is never dropped inside an async
//! context.

use std::sync::OnceLock;

use tokio::runtime::Runtime;

/// The process's DataFusion runtime, started on first use.
pub fn executor() -> std::io::Result<&'static Runtime> {
    static RT: OnceLock<Runtime> = OnceLock::new();
    if let Some(rt) = RT.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name("ignis-datafusion")
        .enable_all()
        .build()?;
    Ok(RT.get_or_init(|| rt))
}
