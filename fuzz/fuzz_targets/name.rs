//! The legacy `name` parameter (`app{k=v,…}`) and time parameters
//! (`now-1h`, seconds, milliseconds, RFC 3339).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ignis_ingest::name::parse_name(s);
        let _ = ignis_storage::attime::parse_time_ns(s, 1_795_000_000_000_000_000);
    }
});
