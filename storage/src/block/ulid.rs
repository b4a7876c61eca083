//! ULIDs for block ids: 48 bits of milliseconds, 80 bits of entropy,
//! Crockford base32 (26 characters), sortable by creation time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new ULID string.
pub fn new_ulid() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as u64 & 0xFFFF_FFFF_FFFF;
    let seed = [
        now.as_nanos() as u64,
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u64::from(std::process::id()),
        &COUNTER as *const _ as u64,
    ];
    let mut bytes = Vec::with_capacity(32);
    for s in seed {
        bytes.extend_from_slice(&s.to_le_bytes());
    }
    let entropy = xxhash_rust::xxh3::xxh3_128(&bytes) & ((1u128 << 80) - 1);
    let value: u128 = (u128::from(ms) << 80) | entropy;
    (0..26)
        .rev()
        .map(|i| ALPHABET[((value >> (i * 5)) & 31) as usize] as char)
        .collect()
}

/// The creation time (Unix ms) a ULID encodes, if it is one.
pub fn ulid_time_ms(ulid: &str) -> Option<i64> {
    if ulid.len() != 26 {
        return None;
    }
    let mut value: u128 = 0;
    for c in ulid.bytes() {
        let d = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        value = (value << 5) | d as u128;
    }
    i64::try_from(value >> 80).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_time_reads_back() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let t = ulid_time_ms(&new_ulid()).unwrap();
        assert!((before..before + 1000).contains(&t), "{before} {t}");
        assert_eq!(ulid_time_ms("not a ulid"), None);
    }

    #[test]
    fn unique_sortable_26_chars() {
        let a = new_ulid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_ulid();
        assert_eq!(a.len(), 26);
        assert!(a < b, "{a} !< {b}");
        assert_ne!(new_ulid(), new_ulid());
    }
}
