//! The WAL's segment files: records appended one after another, each framed
//! with its length and a CRC, so a replay reads every whole record and stops
//! at a torn one.
//!
//! A segment is named by the sequence number of its first record
//! (`<seq, 20 digits>.seg`) and starts with [`SEGMENT_MAGIC`]. A frame is
//! `len: u32 LE | crc32(payload): u32 LE | payload`, the payload
//! `seq: u64 LE | stream length: u16 LE | stream | record`. A segment made
//! ahead of time is zeros past its last record: a frame header of zeros
//! followed by nothing but zeros ends it cleanly (no frame is that short).

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

/// The first bytes of every segment file: the format and its version.
pub(super) const SEGMENT_MAGIC: &[u8; 8] = b"IGNWAL01";

/// Length and CRC before every payload.
const FRAME_HEADER: usize = 8;

/// Sequence number and stream length at the start of every payload.
const PAYLOAD_HEADER: usize = 10;

/// A frame longer than this is damage, not a record (a push is bounded far
/// below it by the ingest limits).
const MAX_PAYLOAD: usize = 1 << 30;

/// The file name of the segment whose first record is `first_seq`.
pub(super) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number a segment file name stands for.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Appends the frame of one record to `buf`. A stream name longer than
/// `u16::MAX` bytes or a record past [`MAX_PAYLOAD`] is refused.
pub(super) fn encode_frame(
    buf: &mut Vec<u8>,
    seq: u64,
    stream: &str,
    record: &[u8],
) -> Result<(), String> {
    let stream_len = u16::try_from(stream.len())
        .map_err(|_| format!("stream name of {} bytes", stream.len()))?;
    let payload_len = PAYLOAD_HEADER + stream.len() + record.len();
    if payload_len > MAX_PAYLOAD {
        return Err(format!("record of {} bytes", record.len()));
    }
    let start = buf.len();
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&stream_len.to_le_bytes());
    buf.extend_from_slice(stream.as_bytes());
    buf.extend_from_slice(record);
    let crc = crc32fast::hash(&buf[start + FRAME_HEADER..]);
    buf[start + 4..start + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One record read back from a segment.
pub(super) struct Frame<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// The stream it was appended to.
    pub stream: &'a str,
    /// The record's bytes.
    pub record: &'a [u8],
}

/// How reading a segment ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum SegmentEnd {
    /// Every byte belonged to a whole record.
    Clean,
    /// Whole records up to `offset`, zeros after it (a segment made ahead,
    /// never filled).
    Zeros {
        /// Where the zeros start.
        offset: u64,
    },
    /// The bytes from `offset` on are not a whole record (a write a crash
    /// interrupted, or damage): `reason` says what is wrong.
    Torn {
        /// Where the first bad frame starts (the length of the good part).
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// Reads the segment at `path` record by record, calling `f` for each
/// whole one, and says where it ended. `f` returning an error stops the read.
pub(super) fn read_segment<E: From<std::io::Error>>(
    path: &Path,
    mut f: impl FnMut(Frame<'_>) -> Result<(), E>,
) -> Result<SegmentEnd, E> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 8];
    if read_full(&mut reader, &mut magic)? < magic.len() || &magic != SEGMENT_MAGIC {
        return Ok(SegmentEnd::Torn {
            offset: 0,
            reason: "no segment header".into(),
        });
    }
    let mut offset = SEGMENT_MAGIC.len() as u64;
    let mut payload = Vec::new();
    loop {
        let torn = |reason: String| Ok(SegmentEnd::Torn { offset, reason });
        let mut header = [0u8; FRAME_HEADER];
        match read_full(&mut reader, &mut header)? {
            0 => return Ok(SegmentEnd::Clean),
            n if header[..n].iter().all(|&b| b == 0) => {
                return if rest_is_zeros(&mut reader)? {
                    Ok(SegmentEnd::Zeros { offset })
                } else {
                    torn("zeros where a frame header should be, then more data".into())
                };
            }
            n if n < FRAME_HEADER => return torn(format!("a frame header cut after {n} bytes")),
            _ => {}
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let rest = size.saturating_sub(offset + FRAME_HEADER as u64);
        if !(PAYLOAD_HEADER..=MAX_PAYLOAD).contains(&len) || len as u64 > rest {
            return torn(format!(
                "a frame of {len} bytes with {rest} left in the file"
            ));
        }
        payload.resize(len, 0);
        if read_full(&mut reader, &mut payload)? < len {
            return torn("the file ended inside a frame".into());
        }
        if crc32fast::hash(&payload) != crc {
            return torn("a frame whose checksum does not match".into());
        }
        let seq = u64::from_le_bytes(payload[..8].try_into().unwrap_or_default());
        let stream_len = u16::from_le_bytes([payload[8], payload[9]]) as usize;
        let Some(stream) = payload
            .get(PAYLOAD_HEADER..PAYLOAD_HEADER + stream_len)
            .and_then(|s| std::str::from_utf8(s).ok())
        else {
            return torn("a frame whose stream name is damaged".into());
        };
        f(Frame {
            seq,
            stream,
            record: &payload[PAYLOAD_HEADER + stream_len..],
        })?;
        offset += (FRAME_HEADER + len) as u64;
    }
}

/// Reads `reader` to its end; says whether every byte was zero.
fn rest_is_zeros(reader: &mut impl Read) -> std::io::Result<bool> {
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = read_full(reader, &mut chunk)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        if n < chunk.len() {
            return Ok(true);
        }
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(path: &Path, frames: &[(u64, &str, &[u8])]) -> Vec<u8> {
        let mut bytes = SEGMENT_MAGIC.to_vec();
        for (seq, stream, record) in frames {
            encode_frame(&mut bytes, *seq, stream, record).unwrap();
        }
        File::create(path).unwrap().write_all(&bytes).unwrap();
        bytes
    }

    fn read(path: &Path) -> (Vec<(u64, String, Vec<u8>)>, SegmentEnd) {
        let mut out = Vec::new();
        let end = read_segment::<std::io::Error>(path, |f| {
            out.push((f.seq, f.stream.to_string(), f.record.to_vec()));
            Ok(())
        })
        .unwrap();
        (out, end)
    }

    #[test]
    fn names_round_trip() {
        assert_eq!(segment_name(42), "00000000000000000042.seg");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        for bad in [
            "42.seg",
            "0000000000000000004x.seg",
            "00000000000000000042.wal",
        ] {
            assert_eq!(parse_segment_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_read_back_and_every_cut_of_the_last_is_torn_at_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(7));
        let frames: [(u64, &str, &[u8]); 3] = [
            (7, "acme", b"one"),
            (9, "acme#1", b""),
            (12, "b", &[5; 300]),
        ];
        let bytes = write(&path, &frames);
        let (read_back, end) = read(&path);
        assert_eq!(end, SegmentEnd::Clean);
        let want: Vec<_> = frames
            .iter()
            .map(|(s, n, r)| (*s, n.to_string(), r.to_vec()))
            .collect();
        assert_eq!(read_back, want);
        // The last frame starts after the first two.
        let last = bytes.len() - (FRAME_HEADER + PAYLOAD_HEADER + 1 + 300);
        for cut in last + 1..bytes.len() {
            File::create(&path)
                .unwrap()
                .write_all(&bytes[..cut])
                .unwrap();
            let (read_back, end) = read(&path);
            assert_eq!(read_back, want[..2], "cut at {cut}");
            assert!(
                matches!(end, SegmentEnd::Torn { offset, .. } if offset == last as u64),
                "cut at {cut}: {end:?}"
            );
        }
        // A flipped bit in a payload is caught by its checksum.
        let mut damaged = bytes.clone();
        damaged[last + FRAME_HEADER + 12] ^= 1;
        File::create(&path).unwrap().write_all(&damaged).unwrap();
        let (read_back, end) = read(&path);
        assert_eq!(read_back.len(), 2);
        assert!(matches!(end, SegmentEnd::Torn { reason, .. } if reason.contains("checksum")));
        // Zeros after the last frame (a segment made ahead) end it,
        // however many; zeros and then data are damage.
        for zeros in [1, 7, 8, 9, 200_000] {
            let mut padded = bytes.clone();
            padded.resize(bytes.len() + zeros, 0);
            File::create(&path).unwrap().write_all(&padded).unwrap();
            assert_eq!(
                read(&path),
                (
                    want.clone(),
                    SegmentEnd::Zeros {
                        offset: bytes.len() as u64
                    }
                ),
                "{zeros} zeros"
            );
            padded.push(1);
            File::create(&path).unwrap().write_all(&padded).unwrap();
            let (read_back, end) = read(&path);
            assert_eq!(read_back, want, "{zeros} zeros, then data");
            assert!(
                matches!(&end, SegmentEnd::Torn { offset, .. } if *offset == bytes.len() as u64),
                "{zeros} zeros, then data: {end:?}"
            );
        }
        // A file without the header holds nothing.
        File::create(&path).unwrap().write_all(b"IGNWAL").unwrap();
        assert!(matches!(read(&path), (r, SegmentEnd::Torn { offset: 0, .. }) if r.is_empty()));
    }
}
