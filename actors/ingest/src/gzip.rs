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
            return Err(too_large(what, Some(data.len()), limit));
        }
        return Ok(Cow::Borrowed(data));
    }
    gunzip(data, limit, what).map(Cow::Owned)
}

/// Inflates gzip `data`, refusing output larger than `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize, what: &str) -> Result<Vec<u8>, IngestError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let decoder = flate2::read::MultiGzDecoder::new(data);
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::malformed(format!("invalid gzip data in {what}: {e}")))?;
    if out.len() > limit {
        return Err(too_large(what, None, limit));
    }
    Ok(out)
}

fn too_large(what: &str, actual: Option<usize>, limit: usize) -> IngestError {
    let actual = actual.map_or_else(|| "more".to_string(), |a| a.to_string());
    IngestError::new(
        Reason::ProfileSizeLimit,
        format!(
            "uncompressed {what} exceeds the size limit (max_profile_size_bytes, actual: {actual}, limit: {limit})"
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
}
