//! The in-place pprof decoder against prost's: on any bytes both accept
//! with the same profile or both refuse; truncation of an accepted profile
//! never panics.
#![no_main]

use bytes::Bytes;
use ignis_storage::proto::google::v1 as pprof;
use ignis_storage::{FlatProfile, Truncation};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let ours = FlatProfile::decode_plain(Bytes::copy_from_slice(data));
    let theirs = pprof::Profile::decode(data);
    match (ours, theirs) {
        (Ok(mut a), Ok(b)) => {
            assert_eq!(a.to_proto(), b, "the decoders differ");
            let depth = data.first().copied().unwrap_or(0) as u32 % 8;
            let bytes = data.last().copied().unwrap_or(0) as u32 % 16;
            a.truncate(Truncation { stack_depth: depth, symbol_bytes: bytes });
            let _ = a.to_proto();
        }
        (Err(_), Err(_)) => {}
        (a, b) => panic!("one decoder accepts, the other refuses: {:?} / {:?}", a.err(), b.err()),
    }
});
