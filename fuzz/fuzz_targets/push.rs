//! A Push API body: `PushRequest` protobuf, then every raw profile in it
//! (gzip or not) decoded, validated and split.
#![no_main]

use ignis_ingest::{Limits, decode_push};
use ignis_storage::proto::push::v1::PushRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = PushRequest::decode(data) {
        let _ = decode_push(req, &Limits::default(), 1_795_000_000_000_000_000);
    }
});
