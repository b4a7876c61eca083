//! Label selectors (`{a="b", c=~"re"}`, a leading metric name): parsed,
//! then matched against a label set (regexes compiled and run).
#![no_main]

use ignis_storage::Labels;
use ignis_storage::selector::{matches_all, parse_selector};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data)
        && let Ok(matchers) = parse_selector(s)
    {
        let labels = Labels::from_pairs([
            ("__name__", "process_cpu"),
            ("service_name", "fuzz"),
            ("pod", "api-7d4f9"),
        ]);
        let _ = matches_all(&matchers, &labels);
        let _ = matches_all(&matchers, &Labels::new());
    }
});
