//! Profile ids as clients see them: Ignis's 64-bit profile id written and
//! read as a UUID (`00000000-0000-0000-xxxx-xxxxxxxxxxxx`, the id in its low
//! 64 bits), the form of Pyroscope's exemplars and `profile_id_selector`.

/// A profile id that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("profile id {0:?} is not a UUID (8-4-4-4-12 hex digits)")]
pub struct ProfileIdError(pub String);

/// The UUID form of a profile id ([`parse_profile_id`]'s inverse).
pub fn format_profile_id(id: u64) -> String {
    let hex = format!("{id:016x}");
    format!("00000000-0000-0000-{}-{}", &hex[..4], &hex[4..])
}

/// The profile id a UUID names: its low 64 bits. A UUID whose high 64 bits
/// are not zero names no profile Ignis stores (`None`). Accepts the
/// hyphenated form in either case, and 32 bare hex digits.
pub fn parse_profile_id(s: &str) -> Result<Option<u64>, ProfileIdError> {
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
    let (Some(hi), Some(lo)) = (half(&digits[..16]), half(&digits[16..])) else {
        return Err(bad());
    };
    Ok((hi == 0 && lo != 0).then_some(lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_uuid() {
        for id in [1, 0x1234_5678_9abc_def0, u64::MAX, crate::new_profile_id()] {
            let s = format_profile_id(id);
            assert_eq!(s.len(), 36, "{s}");
            assert_eq!(parse_profile_id(&s), Ok(Some(id)), "{s}");
            assert_eq!(parse_profile_id(&s.to_uppercase()), Ok(Some(id)));
            assert_eq!(parse_profile_id(&s.replace('-', "")), Ok(Some(id)));
        }
        assert_eq!(
            format_profile_id(0x1234_5678_9abc_def0),
            "00000000-0000-0000-1234-56789abcdef0"
        );
    }

    #[test]
    fn uuids_of_no_stored_profile_and_garbage() {
        // A client's random UUID names no profile; id 0 is "no id".
        assert_eq!(
            parse_profile_id("9f1c2b3a-4d5e-4f60-8a7b-6c5d4e3f2a1b"),
            Ok(None)
        );
        assert_eq!(
            parse_profile_id("00000000-0000-0000-0000-000000000000"),
            Ok(None)
        );
        for bad in [
            "",
            "not-a-uuid",
            "00000000-0000-0000-0000-00000000000g",
            "00000000x0000-0000-0000-000000000001",
            "000000000000000000000000000000001",
            "é0000000-0000-0000-0000-00000000001",
        ] {
            assert!(parse_profile_id(bad).is_err(), "{bad:?}");
        }
    }
}
