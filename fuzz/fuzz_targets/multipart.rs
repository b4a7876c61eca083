//! The `multipart/form-data` framing of `/ingest` uploads: a boundary and a
//! body, split into file parts (the parts' contents are `multipart_jfr`'s).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % 71).min(rest.len());
    let (boundary, body) = rest.split_at(n);
    let content_type = format!(
        "multipart/form-data; boundary={}",
        String::from_utf8_lossy(boundary)
    );
    let _ = futures::executor::block_on(ignis_ingest::parse_multipart(&content_type, body.to_vec()));
});
