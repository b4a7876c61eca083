//! The runtime DataFusion work runs on: SQL queries and pruned block reads.
//!
//! Parquet decoding is CPU work; on the HTTP workers' single-threaded
//! runtimes it would stall every other request of the worker. One
//! multi-threaded runtime per process (a thread per core) runs it instead;
//! it lives as long as the process, so it is never dropped inside an async
//! context.

use std::sync::{Mutex, OnceLock, PoisonError};

use tokio::runtime::Runtime;

/// The stack of the DataFusion runtime's threads: planning recurses over a
/// query's trees, and a rejected SQL text's parse (up to
/// [`crate::sql_shape::MAX_SQL_BYTES`] deep) is dropped there. Only the
/// pages touched take memory.
pub const SQL_THREAD_STACK_BYTES: usize = 16 << 20;

/// The process's DataFusion runtime, started on first use. Built by one
/// caller only: a second runtime built by a concurrent first caller would
/// be dropped, and dropping a runtime inside an async context panics.
pub fn executor() -> std::io::Result<&'static Runtime> {
    static RT: OnceLock<Runtime> = OnceLock::new();
    static BUILDING: Mutex<()> = Mutex::new(());
    runtime_once(&RT, &BUILDING, || {
        tokio::runtime::Builder::new_multi_thread()
            .thread_name("ignis-datafusion")
            .thread_stack_size(SQL_THREAD_STACK_BYTES)
            .enable_all()
            .build()
    })
}

/// The runtime in `cell`, built by `build` on first use by one caller only
/// (holding `building`): a second runtime built by a concurrent first
/// caller would be dropped, and dropping a runtime inside an async context
/// panics.
pub(crate) fn runtime_once(
    cell: &'static OnceLock<Runtime>,
    building: &'static Mutex<()>,
    build: impl FnOnce() -> std::io::Result<Runtime>,
) -> std::io::Result<&'static Runtime> {
    if let Some(rt) = cell.get() {
        return Ok(rt);
    }
    let _one = building.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(rt) = cell.get() {
        return Ok(rt);
    }
    let rt = build()?;
    Ok(cell.get_or_init(|| rt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_first_calls_inside_async_contexts_build_one_runtime() {
        // Before the build lock, racing first callers each built a runtime
        // and the loser's was dropped where it was called: inside an async
        // context, a panic (when this test is the first to call).
        let rts: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let local = tokio::runtime::Builder::new_current_thread()
                            .build()
                            .expect("runtime");
                        local.block_on(async { executor().map(|rt| rt as *const Runtime as usize) })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("no panic").expect("runtime"))
                .collect()
        });
        assert!(rts.windows(2).all(|w| w[0] == w[1]), "one runtime");
    }
}
