//! The protobuf reader behind [`FlatProfile::decode`]: one pass over the
//! bytes, strings kept as ranges, packed fields appended to shared arrays.
//!
//! It accepts and refuses exactly what prost's generated decoder for
//! `google.v1.Profile` does (wire types, varint overflow, UTF-8 strings,
//! unknown fields and groups, prost's recursion limit of 100), so a profile
//! is never stored by one decoder and refused by the other; the differential
//! tests hold it to that.

use crate::proto::google::v1 as pprof;

use super::{FlatError, FlatLocation, FlatProfile, FlatSample, Span};

/// prost's recursion limit (`prost::RECURSION_LIMIT`).
const RECURSION_LIMIT: u32 = 100;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// A cursor over `buf[pos..end]`; positions are offsets into the whole buffer.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    fn err(&self, what: &'static str) -> FlatError {
        FlatError::Malformed { at: self.pos, what }
    }

    fn has_more(&self) -> bool {
        self.pos < self.end
    }

    /// A varint. Most keys, ids and small values take one byte: that case
    /// is inlined and read apart.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, FlatError> {
        if self.pos < self.end
            && let Some(&byte) = self.buf.get(self.pos)
            && byte < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(byte));
        }
        self.varint_long()
    }

    /// [`Reader::varint`] of two to ten bytes; an error past the end, past
    /// ten bytes or past 64 bits (at the position after the bytes read).
    fn varint_long(&mut self) -> Result<u64, FlatError> {
        let rest = self.buf.get(self.pos..self.end).unwrap_or_default();
        let mut value = 0u64;
        for (count, &byte) in rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                self.pos += count + 1;
                if count == 9 && byte >= 0x02 {
                    return Err(self.err("varint overflows 64 bits"));
                }
                return Ok(value);
            }
        }
        if rest.len() < 10 {
            self.pos += rest.len();
            return Err(self.err("truncated varint"));
        }
        self.pos += 10;
        Err(self.err("varint longer than 10 bytes"))
    }

    /// A field key: its tag and wire type.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), FlatError> {
        let key = self.varint()?;
        if key > u64::from(u32::MAX) {
            return Err(self.err("field key larger than 32 bits"));
        }
        let wire_type = (key & 7) as u8;
        if wire_type > FIXED32 {
            return Err(self.err("invalid wire type"));
        }
        let tag = (key as u32) >> 3;
        if tag == 0 {
            return Err(self.err("field tag 0"));
        }
        Ok((tag, wire_type))
    }

    /// The bounds of a length-delimited field's payload, which is skipped.
    fn delimited(&mut self) -> Result<(usize, usize), FlatError> {
        let len = self.varint()?;
        let start = self.pos;
        if len > (self.end - start) as u64 {
            return Err(self.err("length past the end of the message"));
        }
        self.pos = start + len as usize;
        Ok((start, self.pos))
    }

    /// A reader over a nested message's payload.
    fn nested(&mut self, wire_type: u8, ctx: u32) -> Result<Reader<'a>, FlatError> {
        if wire_type != LEN {
            return Err(self.err("message field without the length-delimited wire type"));
        }
        if ctx == 0 {
            return Err(self.err("recursion limit reached"));
        }
        let (pos, end) = self.delimited()?;
        Ok(Reader {
            buf: self.buf,
            pos,
            end,
        })
    }

    /// A singular integer field.
    fn int(&mut self, wire_type: u8) -> Result<u64, FlatError> {
        if wire_type != VARINT {
            return Err(self.err("integer field without the varint wire type"));
        }
        self.varint()
    }

    /// A repeated integer field, packed or not, appended to `out`.
    fn ints<T>(
        &mut self,
        wire_type: u8,
        out: &mut Vec<T>,
        f: impl Fn(u64) -> T,
    ) -> Result<(), FlatError> {
        match wire_type {
            LEN => {
                let (start, end) = self.delimited()?;
                let mut packed = Reader {
                    buf: self.buf,
                    pos: start,
                    end,
                };
                // Every value takes at least one byte.
                out.reserve(end - start);
                while packed.has_more() {
                    out.push(f(packed.varint()?));
                }
                Ok(())
            }
            VARINT => {
                out.push(f(self.varint()?));
                Ok(())
            }
            _ => Err(self.err("repeated integer field with a wrong wire type")),
        }
    }

    /// A string field: its range, checked to be UTF-8.
    fn string(&mut self, wire_type: u8) -> Result<Span, FlatError> {
        if wire_type != LEN {
            return Err(self.err("string field without the length-delimited wire type"));
        }
        let at = self.pos;
        let (start, end) = self.delimited()?;
        if std::str::from_utf8(&self.buf[start..end]).is_err() {
            return Err(FlatError::Malformed {
                at,
                what: "string is not UTF-8",
            });
        }
        Ok(Span::new(start, end))
    }

    /// Skips an unknown field, as prost does (groups included).
    fn skip(&mut self, wire_type: u8, tag: u32, ctx: u32) -> Result<(), FlatError> {
        if ctx == 0 {
            return Err(self.err("recursion limit reached"));
        }
        let len = match wire_type {
            VARINT => {
                self.varint()?;
                0
            }
            FIXED64 => 8,
            FIXED32 => 4,
            LEN => {
                self.delimited()?;
                0
            }
            START_GROUP => loop {
                let (inner_tag, inner_type) = self.key()?;
                if inner_type == END_GROUP {
                    if inner_tag != tag {
                        return Err(self.err("end group tag does not match its start"));
                    }
                    break 0;
                }
                self.skip(inner_type, inner_tag, ctx - 1)?;
            },
            _ => return Err(self.err("unexpected end group tag")),
        };
        if len > self.end - self.pos {
            return Err(self.err("fixed-size field past the end of the message"));
        }
        self.pos += len;
        Ok(())
    }
}

/// Decodes `plain` (an uncompressed `google.v1.Profile`) into `out`, whose
/// arrays are cleared first and reused.
pub(super) fn decode_into(plain: &[u8], out: &mut FlatProfile) -> Result<(), FlatError> {
    if u32::try_from(plain.len()).is_err() {
        return Err(FlatError::TooLarge(plain.len()));
    }
    out.clear_decoded();
    let ctx = RECURSION_LIMIT;
    let mut r = Reader {
        buf: plain,
        pos: 0,
        end: plain.len(),
    };
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => {
                let mut m = r.nested(wt, ctx)?;
                let mut vt = pprof::ValueType::default();
                value_type(&mut m, &mut vt, ctx - 1)?;
                out.sample_types.push(vt);
            }
            2 => {
                let mut m = r.nested(wt, ctx)?;
                sample(&mut m, out, ctx - 1)?;
            }
            3 => {
                let mut m = r.nested(wt, ctx)?;
                out.mappings.push(mapping(&mut m, ctx - 1)?);
            }
            4 => {
                let mut m = r.nested(wt, ctx)?;
                location(&mut m, out, ctx - 1)?;
            }
            5 => {
                let mut m = r.nested(wt, ctx)?;
                out.functions.push(function(&mut m, ctx - 1)?);
            }
            6 => {
                let s = r.string(wt)?;
                out.strings.push(s);
            }
            7 => out.drop_frames = r.int(wt)? as i64,
            8 => out.keep_frames = r.int(wt)? as i64,
            9 => out.time_nanos = r.int(wt)? as i64,
            10 => out.duration_nanos = r.int(wt)? as i64,
            11 => {
                let mut m = r.nested(wt, ctx)?;
                let vt = out.period_type.get_or_insert_with(Default::default);
                value_type(&mut m, vt, ctx - 1)?;
            }
            12 => out.period = r.int(wt)? as i64,
            13 => r.ints(wt, &mut out.comment, |v| v as i64)?,
            14 => out.default_sample_type = r.int(wt)? as i64,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    Ok(())
}

fn value_type(r: &mut Reader, vt: &mut pprof::ValueType, ctx: u32) -> Result<(), FlatError> {
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => vt.r#type = r.int(wt)? as i64,
            2 => vt.unit = r.int(wt)? as i64,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    Ok(())
}

fn sample(r: &mut Reader, out: &mut FlatProfile, ctx: u32) -> Result<(), FlatError> {
    let (locs, values, labels) = (out.location_ids.len(), out.values.len(), out.labels.len());
    // The fields of one sample may come in any order and repeat, but only
    // this sample appends to the three arrays while it is read, so its
    // values are contiguous in each.
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => r.ints(wt, &mut out.location_ids, |v| v)?,
            2 => r.ints(wt, &mut out.values, |v| v as i64)?,
            3 => {
                let mut m = r.nested(wt, ctx)?;
                out.labels.push(label(&mut m, ctx - 1)?);
            }
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    out.samples.push(FlatSample {
        locations: Span::new(locs, out.location_ids.len()),
        values: Span::new(values, out.values.len()),
        labels: Span::new(labels, out.labels.len()),
    });
    Ok(())
}

fn label(r: &mut Reader, ctx: u32) -> Result<pprof::Label, FlatError> {
    let mut l = pprof::Label::default();
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => l.key = r.int(wt)? as i64,
            2 => l.str = r.int(wt)? as i64,
            3 => l.num = r.int(wt)? as i64,
            4 => l.num_unit = r.int(wt)? as i64,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    Ok(l)
}

fn mapping(r: &mut Reader, ctx: u32) -> Result<pprof::Mapping, FlatError> {
    let mut m = pprof::Mapping::default();
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => m.id = r.int(wt)?,
            2 => m.memory_start = r.int(wt)?,
            3 => m.memory_limit = r.int(wt)?,
            4 => m.file_offset = r.int(wt)?,
            5 => m.filename = r.int(wt)? as i64,
            6 => m.build_id = r.int(wt)? as i64,
            7 => m.has_functions = r.int(wt)? != 0,
            8 => m.has_filenames = r.int(wt)? != 0,
            9 => m.has_line_numbers = r.int(wt)? != 0,
            10 => m.has_inline_frames = r.int(wt)? != 0,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    Ok(m)
}

fn location(r: &mut Reader, out: &mut FlatProfile, ctx: u32) -> Result<(), FlatError> {
    let first_line = out.lines.len();
    let mut l = FlatLocation::default();
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => l.id = r.int(wt)?,
            2 => l.mapping_id = r.int(wt)?,
            3 => l.address = r.int(wt)?,
            4 => {
                let mut m = r.nested(wt, ctx)?;
                out.lines.push(line(&mut m, ctx - 1)?);
            }
            5 => l.is_folded = r.int(wt)? != 0,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    l.lines = Span::new(first_line, out.lines.len());
    out.locations.push(l);
    Ok(())
}

fn line(r: &mut Reader, ctx: u32) -> Result<pprof::Line, FlatError> {
    let mut l = pprof::Line::default();
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => l.function_id = r.int(wt)?,
            2 => l.line = r.int(wt)? as i64,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    Ok(l)
}

fn function(r: &mut Reader, ctx: u32) -> Result<pprof::Function, FlatError> {
    let mut f = pprof::Function::default();
    while r.has_more() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => f.id = r.int(wt)?,
            2 => f.name = r.int(wt)? as i64,
            3 => f.system_name = r.int(wt)? as i64,
            4 => f.filename = r.int(wt)? as i64,
            5 => f.start_line = r.int(wt)? as i64,
            _ => r.skip(wt, tag, ctx)?,
        }
    }
    Ok(f)
}
