//! Tenant limits as TOML: the `[limits]` section of the configuration and
//! each `[overrides.<tenant>]` table of the overrides file, which a running
//! node re-reads (a bad file must be refused, never crash it). Relabel rules
//! are compiled while parsing and then run over a label set.
#![no_main]

use ignis_ingest::Limits;
use ignis_ingest::relabel::relabel;
use ignis_storage::Labels;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(limits) = toml::from_str::<Limits>(text) else {
        return;
    };
    let _ = limits.ingest_rate_bytes();
    let mut labels = Labels::from_pairs([
        ("__name__", "process_cpu"),
        ("__type__", "cpu"),
        ("service_name", "fuzz"),
        ("pod", "api-7d4f9"),
    ]);
    let _ = relabel(&limits.ingestion_relabeling_rules, &mut labels);
    let _ = relabel(&limits.sample_type_relabeling_rules, &mut labels);
});
