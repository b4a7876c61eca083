//! The shared fixtures (`../shared/fixtures` beside the repository, or
//! `IGNIS_FIXTURES`) as tests read them (feature `testing`). Panics on a
//! missing fixture: tests only.

use std::path::{Path, PathBuf};

/// Where the shared fixtures are.
pub fn fixtures_dir() -> PathBuf {
    std::env::var("IGNIS_FIXTURES").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        Into::into,
    )
}

/// The ground truth of `fixture` (e.g. `go/cpu`): its `.expected.json`.
pub fn truth(fixture: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures_dir().join(format!("{fixture}.expected.json")))
        .expect("the shared fixtures are beside the repository");
    serde_json::from_str(&text).expect("ground truth is JSON")
}
