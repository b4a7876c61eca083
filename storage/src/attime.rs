//! Legacy time parameters (`from`, `until`): epoch numbers in s/ms/µs/ns,
//! `YYYYMMDD`, or `now`-relative offsets such as `now-1h30m`.

/// Parses a legacy time value into nanoseconds since the epoch; `None` if invalid.
pub fn parse_time_ns(value: &str, now_ns: i64) -> Option<i64> {
    let v: String = value
        .chars()
        .filter(|c| !matches!(c, '_' | ',' | ' '))
        .collect();
    if v.is_empty() {
        return None;
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        if v.len() == 8
            && let Some(ns) = yyyymmdd_ns(&v)
        {
            return Some(ns);
        }
        let n: i64 = v.parse().ok()?;
        return Some(match v.len() {
            13 => n.saturating_mul(1_000_000),
            16 => n.saturating_mul(1_000),
            19 => n,
            _ => n.saturating_mul(1_000_000_000),
        });
    }
    // Relative: anything before the first sign is the reference (always now).
    let Some(pos) = v.find(['+', '-']) else {
        return Some(now_ns);
    };
    let mut t = now_ns;
    let mut rest = &v[pos..];
    let mut sign: i64 = 1;
    while !rest.is_empty() {
        // A group without its own sign takes the previous one: `now-1h30m`.
        if rest.starts_with('-') {
            sign = -1;
        } else if rest.starts_with('+') {
            sign = 1;
        }
        rest = rest.trim_start_matches(['+', '-']);
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = rest[..digits].parse().unwrap_or(0);
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let secs: i64 = match unit {
            u if u.starts_with("mon") || u == "M" => 30 * 86_400,
            u if u.starts_with("min") || u == "m" => 60,
            u if u.starts_with('s') => 1,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "y" => 365 * 86_400,
            _ => 0,
        };
        t = t.saturating_add(sign * n.saturating_mul(secs).saturating_mul(1_000_000_000));
        if digits == 0 && unit_len == 0 {
            break;
        }
    }
    Some(t)
}

fn yyyymmdd_ns(v: &str) -> Option<i64> {
    let y: i64 = v[..4].parse().ok()?;
    let m: i64 = v[4..6].parse().ok()?;
    let d: i64 = v[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || y < 1970 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // Past 2262 the nanoseconds do not fit an i64: not a time we take.
    days.checked_mul(86_400 * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;

    #[test]
    fn dates_past_2262_do_not_overflow() {
        // Found by the `name` fuzz target (it panicked in debug builds and
        // wrapped in release ones).
        assert_eq!(parse_time_ns("41030103", NOW), Some(41_030_103_000_000_000));
        assert_eq!(yyyymmdd_ns("41030103"), None);
        assert_eq!(yyyymmdd_ns("22620411"), Some(9_223_286_400_000_000_000));
    }

    #[test]
    fn epochs_in_all_units() {
        assert_eq!(
            parse_time_ns("1795494490", NOW),
            Some(1_795_494_490_000_000_000)
        );
        assert_eq!(
            parse_time_ns("1795494490123", NOW),
            Some(1_795_494_490_123_000_000)
        );
        assert_eq!(
            parse_time_ns("1795495020000000000", NOW),
            Some(1_795_495_020_000_000_000)
        );
        assert_eq!(
            parse_time_ns("20230101", NOW),
            Some(1_672_531_200_000_000_000)
        );
    }

    #[test]
    fn relative_offsets() {
        assert_eq!(parse_time_ns("now", NOW), Some(NOW));
        assert_eq!(parse_time_ns("now-1h", NOW), Some(NOW - 3_600_000_000_000));
        assert_eq!(
            parse_time_ns("now-1h30m", NOW),
            Some(NOW - 5_400_000_000_000)
        );
        assert_eq!(parse_time_ns("", NOW), None);
    }
}
