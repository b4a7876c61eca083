//! [`ProfileId`]: the 128-bit id of a profile, written and read as a UUID
//! (the form of exemplars and `profile_id_selector`). A profile keeps the id
//! its client sent (a Push `RawSample.ID`, an OTLP `profile_id`:
//! [`ProfileId::from_client`], [`ProfileId::from_bytes`]); the distributor
//! draws one for a profile sent without ([`ProfileId::generate`]). Its low 64
//! bits are the profile's key: replicas of a profile share it, queries count
//! a `(series, timestamp, key)` once (so a push the client re-sends with the
//! same ids counts once), and blocks join their tables by it.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A profile id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile id {0:?} is not a UUID (8-4-4-4-12 hex digits)")]
pub struct ProfileIdError(pub String);

/// A profile's id: a UUID, whose low 64 bits are its key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProfileId {
    /// The UUID's first 8 bytes, big-endian (0 for ids stored before
    /// Ignis kept whole UUIDs).
    pub hi: u64,
    /// Its last 8 bytes, big-endian: the key.
    pub lo: u64,
}

impl ProfileId {
    /// The id whose key is `key` and high half 0 (rows written before
    /// Ignis kept whole UUIDs; 0 is "no id", format-1 blocks).
    pub const fn from_key(key: u64) -> Self {
        Self { hi: 0, lo: key }
    }

    /// The key: the low 64 bits.
    pub const fn key(self) -> u64 {
        self.lo
    }

    /// A new id, unique across nodes and restarts with overwhelming
    /// probability (a per-process random seed, the clock and a counter,
    /// hashed), shaped as a version-4 UUID. Replicas of a profile share it.
    pub fn generate() -> Self {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed = *SEED.get_or_init(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let stack = 0u8;
            let entropy = format!(
                "{now}/{}/{:p}/{:?}",
                std::process::id(),
                &stack,
                std::thread::current().id()
            );
            xxhash_rust::xxh3::xxh3_64(entropy.as_bytes())
        });
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let bits = xxhash_rust::xxh3::xxh3_128_with_seed(&n.to_le_bytes(), seed);
        // Version 4 (random) and the RFC 4122 variant, as UUID tools expect.
        let hi = ((bits >> 64) as u64 & !0xf000) | 0x4000;
        let lo = (bits as u64 & !(0xc000_0000_0000_0000)) | 0x8000_0000_0000_0000;
        Self { hi, lo }
    }

    /// The id a client sent as a UUID string, when it is one Ignis keeps: a
    /// UUID whose key is not 0 (0 is "no id"). Anything else (empty, not a
    /// UUID) gets a drawn id instead: clients name profiles freely.
    pub fn from_client(s: &str) -> Option<Self> {
        Self::parse(s.trim()).ok().filter(|id| id.key() != 0)
    }

    /// The id a client sent as 16 bytes (OTLP's `profile_id`), when it is
    /// one Ignis keeps (16 bytes, key not 0).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let b: &[u8; 16] = b.try_into().ok()?;
        let (hi, lo) = b.split_at(8);
        let id = Self {
            hi: u64::from_be_bytes(hi.try_into().ok()?),
            lo: u64::from_be_bytes(lo.try_into().ok()?),
        };
        (id.key() != 0).then_some(id)
    }

    /// Parses a UUID: the hyphenated form in either case, or 32 bare hex
    /// digits.
    pub fn parse(s: &str) -> Result<Self, ProfileIdError> {
        let bad = || ProfileIdError(s.chars().take(64).collect());
        let b = s.as_bytes();
        let digits: Vec<u8> = match b.len() {
            36 => {
                if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                    return Err(bad());
                }
                b.iter().copied().filter(|&c| c != b'-').collect()
            }
            32 => b.to_vec(),
            _ => return Err(bad()),
        };
        if digits.len() != 32 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(bad());
        }
        // All ASCII hex digits: both halves parse.
        let half = |d: &[u8]| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
        };
        match (half(&digits[..16]), half(&digits[16..])) {
            (Some(hi), Some(lo)) => Ok(Self { hi, lo }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (hi, lo) = (self.hi, self.lo);
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xffff,
            lo >> 48,
            lo & 0xffff_ffff_ffff
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_ids_are_kept_when_they_are_uuids() {
        let id = ProfileId::from_client(" 6ba7b810-9dad-11d1-80b4-00c04fd430c8 ").unwrap();
        assert_eq!(id.to_string(), "6ba7b810-9dad-11d1-80b4-00c04fd430c8");
        assert_eq!(ProfileId::from_client(""), None);
        assert_eq!(ProfileId::from_client("profile-1"), None);
        assert_eq!(
            ProfileId::from_client("ffffffff-ffff-ffff-0000-000000000000"),
            None
        );
        let bytes: Vec<u8> = (1..=16).collect();
        let id = ProfileId::from_bytes(&bytes).unwrap();
        assert_eq!(id.to_string(), "01020304-0506-0708-090a-0b0c0d0e0f10");
        assert_eq!(ProfileId::from_bytes(&bytes[..15]), None);
        assert_eq!(ProfileId::from_bytes(&[0; 16]), None);
    }

    #[test]
    fn ids_round_trip_through_their_uuid() {
        let client = "734fd599-6865-419e-9475-932762d8f469";
        let id = ProfileId::parse(client).unwrap();
        assert_eq!(id.to_string(), client);
        assert_eq!(id.key(), 0x9475_9327_62d8_f469);
        assert_eq!(ProfileId::parse(&client.to_uppercase()), Ok(id));
        assert_eq!(ProfileId::parse(&client.replace('-', "")), Ok(id));
        for id in [
            ProfileId::from_key(1),
            ProfileId::from_key(u64::MAX),
            ProfileId::generate(),
        ] {
            assert_eq!(ProfileId::parse(&id.to_string()), Ok(id), "{id}");
        }
        assert_eq!(
            ProfileId::from_key(0x1234_5678_9abc_def0).to_string(),
            "00000000-0000-0000-1234-56789abcdef0"
        );
    }

    #[test]
    fn generated_ids_are_distinct_version_4_uuids() {
        let (a, b) = (ProfileId::generate(), ProfileId::generate());
        assert_ne!(a, b);
        assert_ne!(a.key(), b.key());
        let s = a.to_string();
        assert_eq!(&s[14..15], "4", "{s}");
        assert!("89ab".contains(&s[19..20]), "{s}");
        assert_ne!(a.key(), 0);
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "not-a-uuid",
            "00000000-0000-0000-0000-00000000000g",
            "00000000x0000-0000-0000-000000000001",
            "000000000000000000000000000000001",
            "é0000000-0000-0000-0000-00000000001",
        ] {
            assert!(ProfileId::parse(bad).is_err(), "{bad:?}");
        }
    }
}
