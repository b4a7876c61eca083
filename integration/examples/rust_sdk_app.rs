//! A busy Rust program profiled live by the official Rust SDK (the
//! `pyroscope` crate with its pprof-rs backend), pushing to the Ignis node
//! given on the command line. Built by `cargo test` and run by the
//! integration test `sdk_live`.
//!
//! Usage: `rust_sdk_app SERVER_URL APP_NAME SECONDS`
//!
//! Burns CPU in `busy_fib` for SECONDS, stops the agent (which uploads the
//! last interval) and prints `{"cpu_seconds": …}`: the process CPU time spent
//! meanwhile, for the test to compare with what Ignis stored.

use std::time::{Duration, Instant};

use pyroscope::backend::{BackendConfig, PprofConfig, pprof_backend};
use pyroscope::pyroscope::PyroscopeAgentBuilder;

#[inline(never)]
fn busy_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        busy_fib(n - 1) + busy_fib(n - 2)
    }
}

/// Process CPU time (user + system) in seconds, from `/proc/self/stat`
/// (clock ticks of 1/100 s, Linux's fixed `USER_HZ`).
fn process_cpu_seconds() -> Result<f64, Box<dyn std::error::Error>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("bad /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).ok_or("no utime")?.parse()?;
    let stime: f64 = fields.get(12).ok_or("no stime")?.parse()?;
    Ok((utime + stime) / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, app, seconds] = args.as_slice() else {
        return Err("usage: rust_sdk_app SERVER_URL APP_NAME SECONDS".into());
    };
    let seconds: f64 = seconds.parse()?;
    let agent = PyroscopeAgentBuilder::new(
        url,
        app,
        100,
        "pyroscope-rs",
        env!("CARGO_PKG_VERSION"),
        pprof_backend(PprofConfig { sample_rate: 100 }, BackendConfig::default()),
    )
    .tags(vec![("run", "live")])
    .build()?;
    let running = agent.start()?;
    let cpu0 = process_cpu_seconds()?;
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut sink = 0u64;
    while Instant::now() < end {
        sink = sink.wrapping_add(busy_fib(std::hint::black_box(24)));
    }
    let cpu = process_cpu_seconds()? - cpu0;
    let ready = running.stop()?;
    ready.shutdown();
    std::hint::black_box(sink);
    println!("{{\"cpu_seconds\": {cpu}}}");
    Ok(())
}
