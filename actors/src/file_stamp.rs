//! Noticing that a file changed: its modification time and length, compared
//! between checks (overrides and TLS certificate files are re-read on a
//! change).

use std::path::Path;
use std::time::SystemTime;

/// A file's modification time and length (`None`: it is missing).
pub type FileStamp = Option<(SystemTime, u64)>;

/// The stamp of `path` now.
pub fn file_stamp(path: &Path) -> FileStamp {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
}
