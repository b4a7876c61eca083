//! Bounds-checked reading of JFR's primitive encodings: big-endian integers,
//! LEB128 varints (when the chunk uses compressed integers) and strings.

use super::error::JfrError;

/// A string as JFR encodes it: absent, inline, or a `java.lang.String` pool key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JfrStr {
    /// Encoding 0: `null`.
    Null,
    /// Encodings 1, 3, 4 and 5: the text itself.
    Text(String),
    /// Encoding 2: a key into the chunk's `java.lang.String` constant pool.
    Pool(u64),
}

/// A cursor over one region of a chunk that never reads past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    base: usize,
    compressed: bool,
}

impl<'a> Reader<'a> {
    /// Reads `data`, which starts `base` bytes into its chunk (for messages).
    pub fn new(data: &'a [u8], base: usize, compressed: bool) -> Self {
        Self {
            data,
            pos: 0,
            base,
            compressed,
        }
    }

    /// Current position, relative to the start of `data`.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    /// Whether integers are LEB128 varints.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    fn truncated(&self, needed: usize) -> JfrError {
        JfrError::Truncated {
            offset: self.base + self.pos,
            needed: needed - self.remaining(),
        }
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], JfrError> {
        if n > self.remaining() {
            return Err(self.truncated(n));
        }
        let out = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), JfrError> {
        self.bytes(n).map(|_| ())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], JfrError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, JfrError> {
        Ok(self.array::<1>()?[0])
    }

    /// A raw big-endian `u16`.
    pub fn raw_u16(&mut self) -> Result<u16, JfrError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// A raw big-endian `i32`.
    pub fn raw_i32(&mut self) -> Result<i32, JfrError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    /// A raw big-endian `i64`.
    pub fn raw_i64(&mut self) -> Result<i64, JfrError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A big-endian IEEE `f32`.
    pub fn f32(&mut self) -> Result<f32, JfrError> {
        Ok(f32::from_be_bytes(self.array()?))
    }

    /// A big-endian IEEE `f64`.
    pub fn f64(&mut self) -> Result<f64, JfrError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// JFR's LEB128 varint: 7 bits per byte for 8 bytes, then a full 9th byte.
    pub fn varint(&mut self) -> Result<u64, JfrError> {
        let mut v = 0u64;
        for i in 0..8 {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok(v | (u64::from(self.u8()?) << 56))
    }

    /// A `long`.
    pub fn long(&mut self) -> Result<i64, JfrError> {
        if self.compressed {
            Ok(self.varint()? as i64)
        } else {
            self.raw_i64()
        }
    }

    /// An `int` (a varint is truncated to 32 bits, as the JDK does).
    pub fn int(&mut self) -> Result<i32, JfrError> {
        if self.compressed {
            Ok(self.varint()? as i32)
        } else {
            self.raw_i32()
        }
    }

    /// A `short`.
    pub fn short(&mut self) -> Result<i16, JfrError> {
        if self.compressed {
            Ok(self.varint()? as i16)
        } else {
            Ok(self.raw_u16()? as i16)
        }
    }

    /// A `char` (one UTF-16 code unit).
    pub fn char(&mut self) -> Result<u16, JfrError> {
        if self.compressed {
            Ok(self.varint()? as u16)
        } else {
            self.raw_u16()
        }
    }

    /// An element count: a non-negative `int` whose elements, at least
    /// `min_size` bytes each, fit in what is left.
    pub fn count(&mut self, min_size: usize, what: &str) -> Result<usize, JfrError> {
        let at = self.base + self.pos;
        let n = self.int()?;
        let n = usize::try_from(n)
            .map_err(|_| JfrError::invalid(format!("negative {what} count {n} at offset {at}")))?;
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(JfrError::invalid(format!(
                "{what} count {n} at offset {at} exceeds the {} bytes left",
                self.remaining()
            )));
        }
        Ok(n)
    }

    /// A string in any of JFR's encodings.
    pub fn string(&mut self) -> Result<JfrStr, JfrError> {
        let at = self.base + self.pos;
        Ok(match self.u8()? {
            0 => JfrStr::Null,
            1 => JfrStr::Text(String::new()),
            2 => JfrStr::Pool(self.long()? as u64),
            3 => {
                let n = self.count(1, "UTF-8 string byte")?;
                JfrStr::Text(String::from_utf8_lossy(self.bytes(n)?).into_owned())
            }
            4 => {
                let n = self.count(1, "string char")?;
                let mut units = Vec::with_capacity(n);
                for _ in 0..n {
                    units.push(self.char()?);
                }
                JfrStr::Text(String::from_utf16_lossy(&units))
            }
            5 => {
                let n = self.count(1, "Latin-1 string byte")?;
                JfrStr::Text(self.bytes(n)?.iter().map(|&b| char::from(b)).collect())
            }
            e => {
                return Err(JfrError::invalid(format!(
                    "unknown string encoding {e} at offset {at}"
                )));
            }
        })
    }

    /// Skips a string without decoding it.
    pub fn skip_string(&mut self) -> Result<(), JfrError> {
        let at = self.base + self.pos;
        match self.u8()? {
            0 | 1 => Ok(()),
            2 => self.long().map(|_| ()),
            3 | 5 => {
                let n = self.count(1, "string byte")?;
                self.skip(n)
            }
            4 => {
                let n = self.count(1, "string char")?;
                for _ in 0..n {
                    self.char()?;
                }
                Ok(())
            }
            e => Err(JfrError::invalid(format!(
                "unknown string encoding {e} at offset {at}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfr_varints_and_strings() {
        let mut r = Reader::new(
            &[
                0x05, 0xac, 0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            0,
            true,
        );
        assert_eq!(r.varint().unwrap(), 5);
        assert_eq!(r.varint().unwrap(), 300);
        assert_eq!(r.varint().unwrap(), u64::MAX);
        assert!(matches!(r.varint(), Err(JfrError::Truncated { .. })));

        let mut r = Reader::new(&[0, 0, 0, 7, 0xff, 0xff, 0xff, 0xfe], 0, false);
        assert_eq!(r.int().unwrap(), 7);
        assert_eq!(r.int().unwrap(), -2);

        let data = [0, 1, 2, 9, 3, 2, b'h', b'i', 4, 1, 0x41, 5, 1, 0xe9, 6];
        let mut r = Reader::new(&data, 0, true);
        assert_eq!(r.string().unwrap(), JfrStr::Null);
        assert_eq!(r.string().unwrap(), JfrStr::Text(String::new()));
        assert_eq!(r.string().unwrap(), JfrStr::Pool(9));
        assert_eq!(r.string().unwrap(), JfrStr::Text("hi".into()));
        assert_eq!(r.string().unwrap(), JfrStr::Text("A".into()));
        assert_eq!(r.string().unwrap(), JfrStr::Text("é".into()));
        assert!(r.string().is_err());
    }

    #[test]
    fn jfr_counts_are_bounded_by_the_data_left() {
        let mut r = Reader::new(&[0x7f, 1, 2], 0, true);
        assert!(r.count(1, "x").is_err());
        let mut r = Reader::new(&[0x02, 1, 2], 0, true);
        assert_eq!(r.count(1, "x").unwrap(), 2);
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0x0f], 0, true);
        assert!(r.count(1, "x").is_err(), "negative after truncation to i32");
        let mut r = Reader::new(&[3, 200, 1], 0, true);
        assert!(r.string().is_err());
    }
}
