//! An OTLP profiles export, as protobuf (first byte even) or OTLP/JSON
//! (odd), converted, validated and split.
#![no_main]

use ignis_ingest::Limits;
use ignis_ingest::otlp::{Encoding, decode_otlp, decode_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let encoding = if pick % 2 == 0 {
        Encoding::Protobuf
    } else {
        Encoding::Json
    };
    if let Ok(req) = decode_request(body, encoding) {
        let _ = decode_otlp(&req, &Limits::default(), 1_795_000_000_000_000_000);
    }
});
