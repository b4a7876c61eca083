//! Chunk headers: a recording is a sequence of self-contained chunks, each
//! starting with a fixed 68-byte header.

use super::error::JfrError;
use super::reader::Reader;

/// Size of a chunk header.
pub const HEADER_SIZE: usize = 68;

const MAGIC: &[u8; 4] = b"FLR\0";
/// Feature flag: integers are LEB128 varints.
const FEATURE_COMPRESSED_INTS: u32 = 1;

/// The fixed header of one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Format major version (2 for JDK 11+ and async-profiler).
    pub major: u16,
    /// Format minor version.
    pub minor: u16,
    /// Size of the whole chunk, header included.
    pub size: usize,
    /// Offset of the newest checkpoint event (the head of the pool chain).
    pub constant_pool_offset: usize,
    /// Offset of the metadata event.
    pub metadata_offset: usize,
    /// Wall-clock start of the chunk, in ns since the epoch.
    pub start_nanos: i64,
    /// Chunk duration in ns.
    pub duration_nanos: i64,
    /// Tick counter at the chunk start.
    pub start_ticks: i64,
    /// Tick frequency (durations in events are in ticks).
    pub ticks_per_second: i64,
    /// Feature flags (bit 0: compressed integers).
    pub features: u32,
}

impl ChunkHeader {
    /// Parses and checks the header of the chunk that starts `data`
    /// (`at` is the chunk's offset in the file, for messages).
    pub fn parse(data: &[u8], at: usize) -> Result<Self, JfrError> {
        let mut r = Reader::new(data, at, false);
        if r.bytes(4).map_err(|_| JfrError::BadMagic(at))? != MAGIC {
            return Err(JfrError::BadMagic(at));
        }
        let major = r.raw_u16()?;
        let minor = r.raw_u16()?;
        if major != 2 {
            return Err(JfrError::Version { major, minor });
        }
        let size = r.raw_i64()?;
        let cp = r.raw_i64()?;
        let meta = r.raw_i64()?;
        let header = Self {
            major,
            minor,
            size: offset(size, "chunk size", at)?,
            constant_pool_offset: offset(cp, "constant pool offset", at)?,
            metadata_offset: offset(meta, "metadata offset", at)?,
            start_nanos: r.raw_i64()?,
            duration_nanos: r.raw_i64()?,
            start_ticks: r.raw_i64()?,
            ticks_per_second: r.raw_i64()?,
            features: r.raw_i32()? as u32,
        };
        if header.size < HEADER_SIZE {
            return Err(JfrError::invalid(format!(
                "chunk at offset {at}: size {} is smaller than its header",
                header.size
            )));
        }
        for (what, o) in [
            ("constant pool", header.constant_pool_offset),
            ("metadata", header.metadata_offset),
        ] {
            if o < HEADER_SIZE || o >= header.size {
                return Err(JfrError::invalid(format!(
                    "chunk at offset {at}: {what} offset {o} is outside the chunk (size {})",
                    header.size
                )));
            }
        }
        if header.ticks_per_second <= 0 {
            return Err(JfrError::invalid(format!(
                "chunk at offset {at}: ticks per second {} is not positive",
                header.ticks_per_second
            )));
        }
        Ok(header)
    }

    /// Whether integers are LEB128 varints.
    pub fn compressed_ints(&self) -> bool {
        self.features & FEATURE_COMPRESSED_INTS != 0
    }

    /// Converts a span of ticks to nanoseconds (saturating).
    pub fn ticks_to_nanos(&self, ticks: i64) -> i64 {
        let ns = i128::from(ticks) * 1_000_000_000 / i128::from(self.ticks_per_second.max(1));
        i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX })
    }
}

/// A header value that must be a non-negative offset.
fn offset(v: i64, what: &str, at: usize) -> Result<usize, JfrError> {
    usize::try_from(v)
        .map_err(|_| JfrError::invalid(format!("chunk at offset {at}: negative {what} {v}")))
}

/// One chunk: its header and all its bytes (header included).
#[derive(Debug, Clone)]
pub struct Chunk<'a> {
    /// Offset of the chunk in the recording.
    pub offset: usize,
    /// The parsed header.
    pub header: ChunkHeader,
    /// The chunk's bytes, from its magic to its end.
    pub data: &'a [u8],
}

impl<'a> Chunk<'a> {
    /// A reader over `[start, end)` of this chunk.
    pub fn reader(&self, start: usize, end: usize) -> Result<Reader<'a>, JfrError> {
        if start > end || end > self.data.len() {
            return Err(JfrError::invalid(format!(
                "region {start}..{end} is outside the chunk (size {})",
                self.data.len()
            )));
        }
        Ok(Reader::new(
            &self.data[start..end],
            start,
            self.header.compressed_ints(),
        ))
    }
}

/// Splits a recording into its chunks, checking every header.
pub fn split_chunks(data: &[u8]) -> Result<Vec<Chunk<'_>>, JfrError> {
    if data.is_empty() {
        return Err(JfrError::invalid("empty recording"));
    }
    let mut chunks = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        let header = ChunkHeader::parse(rest, at)?;
        let size = header.size;
        if size > rest.len() {
            return Err(JfrError::invalid(format!(
                "chunk at offset {at} is truncated: header says {size} bytes, {} present",
                rest.len()
            )));
        }
        chunks.push(Chunk {
            offset: at,
            header,
            data: &rest[..size],
        });
        at += size;
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(size: i64, cp: i64, meta: i64, tps: i64) -> Vec<u8> {
        let mut h = b"FLR\0".to_vec();
        h.extend_from_slice(&2u16.to_be_bytes());
        h.extend_from_slice(&1u16.to_be_bytes());
        for v in [size, cp, meta, 1, 2, 3, tps] {
            h.extend_from_slice(&v.to_be_bytes());
        }
        h.extend_from_slice(&1u32.to_be_bytes());
        h
    }

    #[test]
    fn jfr_header_checks() {
        let mut ok = header(100, 80, 70, 1_000_000_000);
        ok.resize(100, 0);
        let h = ChunkHeader::parse(&ok, 0).unwrap();
        assert_eq!(
            (h.size, h.constant_pool_offset, h.metadata_offset),
            (100, 80, 70)
        );
        assert!(h.compressed_ints());
        assert_eq!(h.ticks_to_nanos(5), 5);
        assert_eq!(
            split_chunks(&[ok.clone(), ok.clone()].concat())
                .unwrap()
                .len(),
            2
        );

        let mut bad = ok.clone();
        bad[0] = b'X';
        assert_eq!(ChunkHeader::parse(&bad, 0), Err(JfrError::BadMagic(0)));
        for (size, cp, meta, tps) in [
            (100, 100, 70, 1),
            (100, 80, 10, 1),
            (100, 80, 70, 0),
            (-1, 80, 70, 1),
            (10, 5, 5, 1),
        ] {
            let mut h = header(size, cp, meta, tps);
            h.resize(100, 0);
            assert!(
                ChunkHeader::parse(&h, 0).is_err(),
                "{size} {cp} {meta} {tps}"
            );
        }
        assert!(split_chunks(&ok[..99]).is_err());
        assert!(split_chunks(&[ok.clone(), vec![0]].concat()).is_err());
        assert!(split_chunks(&[]).is_err());
        assert!(split_chunks(&ok[..10]).is_err());
    }

    #[test]
    fn jfr_ticks_convert_at_any_frequency() {
        let mut h = header(100, 80, 70, 2_500_000_000);
        h.resize(100, 0);
        let h = ChunkHeader::parse(&h, 0).unwrap();
        assert_eq!(h.ticks_to_nanos(5_000_000_000), 2_000_000_000);
        assert_eq!(h.ticks_to_nanos(-5_000_000_000), -2_000_000_000);
        let mut h = header(100, 80, 70, 1);
        h.resize(100, 0);
        let h = ChunkHeader::parse(&h, 0).unwrap();
        assert_eq!(h.ticks_to_nanos(i64::MAX), i64::MAX);
    }
}
