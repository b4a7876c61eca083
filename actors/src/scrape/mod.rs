//! Pull mode: scraping Go `net/http/pprof` endpoints listed in `config.toml`,
//! turning cumulative profiles into deltas, and storing them like pushed ones.

pub mod config;
pub mod delta;
pub mod kind;
pub mod scraper;
pub mod status;

pub use config::{ScrapeConfig, ScrapeTargetConfig};
pub use delta::{DeltaOutcome, DeltaState};
pub use kind::ProfileKind;
pub use scraper::{ScrapeContext, Scraper};
pub use status::{ProfileHealth, ScrapeStatus};
