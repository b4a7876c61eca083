//! Opening a sled database whose previous holder is still letting go.

use std::time::Duration;

/// How long [`open`] waits for a lock held by a database dropped a moment ago.
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Opens `config`'s database, waiting briefly if its directory is still
/// locked: a database of the same directory dropped a moment ago in this
/// process (a node or cache reopened in process) holds the lock until
/// sled's flusher thread wakes and exits. Any other error returns at once.
pub fn open(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if std::time::Instant::now() < deadline
                    && e.to_string().contains("could not acquire lock") =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_dropped_a_moment_ago_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let config = sled::Config::new()
            .path(dir.path())
            .flush_every_ms(Some(500));
        for i in 0..5u8 {
            let db = super::open(&config).unwrap();
            db.insert([i], &[i]).unwrap();
            db.flush().unwrap();
            assert_eq!(db.len(), usize::from(i) + 1);
            drop(db);
        }
    }
}
