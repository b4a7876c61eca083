//! Bounded gzip decoding: detects the gzip magic and refuses to inflate past a limit.

use std::borrow::Cow;
use std::io::Read;

use super::error::{IngestError, Reason};

/// True when `data` starts with the gzip magic bytes.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

/// Inflates `data` if it is gzip, refusing output larger than `limit` bytes.
/// Plain data is returned as is (and also checked against `limit`).
pub fn maybe_gunzip<'a>(
    data: &'a [u8],
    limit: usize,
    what: &str,
) -> Result<Cow<'a, [u8]>, IngestError> {
    if !is_gzip(data) {
        if data.len() > limit {
            return Err(too_large(what, Some(data.len()), limit, Bound::Profile));
        }
        return Ok(Cow::Borrowed(data));
    }
    gunzip(data, limit, what).map(Cow::Owned)
}

/// Inflates gzip `data`, refusing output larger than `limit` bytes.
///
/// The output starts in one buffer of the size the gzip trailer states
/// (when that is within `limit` and within deflate's largest ratio of the
/// input, so a forged trailer cannot make a small body reserve much): a
/// well-formed body costs one allocation and no copy. Output past that
/// buffer is gathered in 1 MiB parts and joined once it is known to fit,
/// so a bomb costs at most `limit` bytes (a doubling buffer would reach
/// twice that), and a body within the limit twice its size for a moment.
pub fn gunzip(data: &[u8], limit: usize, what: &str) -> Result<Vec<u8>, IngestError> {
    inflate_within(data, limit, what, Bound::Profile)
}

/// [`gunzip`] of a whole request body: past `limit` the error is
/// `body_size_limit_exceeded` and names `ingestion_body_limit_bytes`.
pub fn gunzip_body(data: &[u8], limit: usize, what: &str) -> Result<Vec<u8>, IngestError> {
    inflate_within(data, limit, what, Bound::Body)
}

/// Which setting a limit comes from.
#[derive(Clone, Copy)]
enum Bound {
    Profile,
    Body,
}

fn inflate_within(
    data: &[u8],
    limit: usize,
    what: &str,
    bound: Bound,
) -> Result<Vec<u8>, IngestError> {
    const PART: usize = 1 << 20;
    let bad =
        |e: std::io::Error| IngestError::malformed(format!("invalid gzip data in {what}: {e}"));
    let cap = match stated_size(data) {
        Some(n) if n <= limit && n <= data.len().saturating_mul(MAX_DEFLATE_RATIO) => n,
        _ => data.len().saturating_mul(4).clamp(4096, PART).min(limit),
    };
    let mut decoder = flate2::read::MultiGzDecoder::new(data);
    let mut first = Vec::with_capacity(cap);
    // Reads at most `cap` bytes: the buffer never grows.
    (&mut decoder)
        .take(cap as u64)
        .read_to_end(&mut first)
        .map_err(bad)?;
    if first.len() < cap {
        return Ok(first);
    }
    // Full: a small first read tells the usual end (the trailer was
    // right) from more output, before a larger buffer is made.
    let mut total = first.len();
    let mut parts = vec![first];
    let mut buf = vec![0u8; 256];
    loop {
        let n = decoder.read(&mut buf).map_err(bad)?;
        if n == 0 {
            break;
        }
        total += n;
        if total > limit {
            return Err(too_large(what, None, limit, bound));
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if parts.last().is_none_or(|p| p.len() == p.capacity()) {
                parts.push(Vec::with_capacity(PART.min(limit)));
            }
            let Some(part) = parts.last_mut() else { break };
            let take = rest.len().min(part.capacity() - part.len());
            part.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        buf.resize(64 << 10, 0);
    }
    if parts.len() == 1 {
        return Ok(parts.pop().unwrap_or_default());
    }
    let mut out = Vec::with_capacity(total);
    for p in parts {
        out.extend_from_slice(&p);
    }
    Ok(out)
}

/// Deflate's largest expansion: 258 bytes from every 2 bits, about 1032:1.
const MAX_DEFLATE_RATIO: usize = 1032;

/// The uncompressed size a gzip member's trailer states (ISIZE, modulo
/// 2^32; the last member's only): a hint, never trusted for a bound.
fn stated_size(data: &[u8]) -> Option<usize> {
    let tail: [u8; 4] = data.get(data.len().checked_sub(4)?..)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(tail)).ok()
}

fn too_large(what: &str, actual: Option<usize>, limit: usize, bound: Bound) -> IngestError {
    let actual = actual.map_or_else(|| "more".to_string(), |a| a.to_string());
    let (reason, setting) = match bound {
        Bound::Profile => (Reason::ProfileSizeLimit, "max_profile_size_bytes"),
        Bound::Body => (Reason::BodySizeLimit, "ingestion_body_limit_bytes"),
    };
    IngestError::new(
        reason,
        format!(
            "uncompressed {what} exceeds the size limit ({setting}, actual: {actual}, limit: {limit})"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn inflates_and_passes_plain() {
        assert_eq!(&*maybe_gunzip(&gz(b"hello"), 10, "x").unwrap(), b"hello");
        assert_eq!(&*maybe_gunzip(b"plain", 10, "x").unwrap(), b"plain");
    }

    #[test]
    fn refuses_bombs_and_garbage() {
        let bomb = gz(&vec![0u8; 10 << 20]);
        let e = maybe_gunzip(&bomb, 1 << 20, "profile").unwrap_err();
        assert_eq!(e.reason, Reason::ProfileSizeLimit);
        let e = maybe_gunzip(&[0x1f, 0x8b, 1, 2, 3], 100, "profile").unwrap_err();
        assert_eq!(e.reason, Reason::MalformedProfile);
        assert!(e.message.contains("invalid gzip"));
    }

    #[test]
    fn inflates_across_parts_exactly() {
        let data: Vec<u8> = (0..(3 << 20) + 12_345).map(|i| (i % 251) as u8).collect();
        let member = gz(&data);
        assert_eq!(gunzip(&member, 4 << 20, "x").unwrap(), data);
        // Two members read as one stream; exactly at the limit passes.
        let two = [member.clone(), member].concat();
        let out = gunzip(&two, 2 * data.len(), "x").unwrap();
        assert_eq!(out.len(), 2 * data.len());
        assert_eq!(&out[data.len()..], &data[..]);
        assert!(gunzip(&two, 2 * data.len() - 1, "x").is_err());
    }

    #[test]
    fn sizes_the_output_from_the_trailer_and_refuses_a_forged_one() {
        let data: Vec<u8> = (0..70_000).map(|i| (i % 97) as u8).collect();
        let out = gunzip(&gz(&data), 1 << 20, "x").unwrap();
        assert_eq!(out, data);
        assert_eq!(
            out.capacity(),
            data.len(),
            "one allocation of the stated size"
        );
        // A trailer claiming more than the body can hold is not believed,
        // and the stream's own check rejects it.
        let mut forged = gz(b"hello");
        let n = forged.len();
        forged[n - 4..].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let e = gunzip(&forged, usize::MAX, "x").unwrap_err();
        assert_eq!(e.reason, Reason::MalformedProfile);
    }
}
