//! `multipart/form-data` bodies of `/ingest` uploads (the Go SDK's pprof
//! with `sample_type_config`, Java's JFR with `labels`): their file parts.

use bytes::Bytes;

use crate::error::IngestError;
use crate::legacy::MultipartParts;

/// The file parts of a whole multipart `body` sent with `content_type`
/// (which names the boundary). Pyroscope reads file parts only; unknown
/// part names are skipped.
pub async fn parse_multipart(
    content_type: &str,
    body: Vec<u8>,
) -> Result<MultipartParts, IngestError> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| IngestError::invalid(format!("invalid multipart Content-Type: {e}")))?;
    let stream =
        futures::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(body)) });
    let mut form = multer::Multipart::new(stream, boundary);
    let mut parts = MultipartParts::default();
    let bad = |e: multer::Error| IngestError::invalid(format!("invalid multipart body: {e}"));
    while let Some(field) = form.next_field().await.map_err(bad)? {
        if field.file_name().is_none() {
            continue;
        }
        let name = field.name().unwrap_or("").to_string();
        let data = field.bytes().await.map_err(bad)?.to_vec();
        match name.as_str() {
            "profile" => parts.profile = Some(data),
            "prev_profile" => parts.prev_profile = Some(data),
            "sample_type_config" => parts.sample_type_config = Some(data),
            "jfr" => parts.jfr = Some(data),
            "labels" => parts.labels = Some(data),
            _ => {}
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn file_parts_are_read_and_broken_bodies_refused() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"profile.pprof\"\r\n\r\nPPROF\r\n--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nnot a file\r\n--b\r\nContent-Disposition: form-data; name=\"sample_type_config\"; filename=\"c.json\"\r\n\r\n{}\r\n--b--\r\n";
        let parts = block_on(parse_multipart(
            "multipart/form-data; boundary=b",
            body.to_vec(),
        ))
        .unwrap();
        assert_eq!(parts.profile.as_deref(), Some(&b"PPROF"[..]));
        assert_eq!(parts.sample_type_config.as_deref(), Some(&b"{}"[..]));
        let e = block_on(parse_multipart("multipart/form-data", body.to_vec())).unwrap_err();
        assert!(e.to_string().contains("Content-Type"), "{e}");
        let e = block_on(parse_multipart(
            "multipart/form-data; boundary=b",
            body[..60].to_vec(),
        ))
        .unwrap_err();
        assert!(e.to_string().contains("invalid multipart body"), "{e}");
    }
}
