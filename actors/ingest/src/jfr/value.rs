//! Values decoded generically from the metadata: any event or pool entry is
//! read field by field from its class description.

use super::error::JfrError;
use super::metadata::{ClassDef, Encoding, FieldDef, MAX_VALUE_DEPTH, Metadata};
use super::reader::{JfrStr, Reader};

/// Most elements accepted in an array whose elements can take zero bytes
/// (field-less structs), so such arrays cannot allocate without bound.
const MAX_EMPTY_ELEMENTS: usize = 1024;

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `boolean`, `byte`, `char`, `short`, `int` or `long`.
    Int(i64),
    /// `float` or `double`.
    Float(f64),
    /// `java.lang.String`.
    Str(JfrStr),
    /// A constant-pool key (the pool is the field's type).
    Ref(u64),
    /// An array field.
    Array(Vec<Value>),
    /// A struct: its field values in metadata order.
    Object(Vec<Value>),
}

impl Value {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }

    /// The pool key, if this is a reference.
    pub fn as_ref_key(&self) -> Option<u64> {
        match self {
            Value::Ref(k) => Some(*k),
            _ => None,
        }
    }
}

/// A decoded struct together with its class, for field access by name.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// The struct's class.
    pub class: &'a ClassDef,
    /// Its field values.
    pub values: &'a [Value],
}

impl<'a> Fields<'a> {
    /// Views `value` as an instance of `class` (`None` if it is not a struct).
    pub fn new(class: &'a ClassDef, value: &'a Value) -> Option<Self> {
        match value {
            Value::Object(values) => Some(Self { class, values }),
            _ => None,
        }
    }

    /// The field called `name` and its value.
    pub fn get(&self, name: &str) -> Option<(&'a FieldDef, &'a Value)> {
        let i = self.class.field_index(name)?;
        Some((self.class.fields.get(i)?, self.values.get(i)?))
    }

    /// The integer field called `name`.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name)?.1.as_int()
    }
}

/// Decodes one value of class `id` (not a pool reference, not an array).
pub fn decode(md: &Metadata, id: u64, r: &mut Reader<'_>, depth: usize) -> Result<Value, JfrError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(JfrError::TooDeep("value"));
    }
    let class = md.class(id)?;
    Ok(match class.encoding {
        Encoding::Boolean => Value::Int(i64::from(r.u8()? != 0)),
        Encoding::Byte => Value::Int(i64::from(r.u8()? as i8)),
        Encoding::Char => Value::Int(i64::from(r.char()?)),
        Encoding::Short => Value::Int(i64::from(r.short()?)),
        Encoding::Int => Value::Int(i64::from(r.int()?)),
        Encoding::Long => Value::Int(r.long()?),
        Encoding::Float => Value::Float(f64::from(r.f32()?)),
        Encoding::Double => Value::Float(r.f64()?),
        Encoding::String => Value::Str(r.string()?),
        Encoding::Struct => {
            let mut values = Vec::with_capacity(class.fields.len());
            for f in &class.fields {
                values.push(decode_field(md, f, r, depth)?);
            }
            Value::Object(values)
        }
    })
}

/// Decodes the value of field `f`.
pub fn decode_field(
    md: &Metadata,
    f: &FieldDef,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Value, JfrError> {
    if !f.array {
        return decode_scalar(md, f, r, depth);
    }
    let n = array_len(md, f, r)?;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(decode_scalar(md, f, r, depth)?);
    }
    Ok(Value::Array(values))
}

fn decode_scalar(
    md: &Metadata,
    f: &FieldDef,
    r: &mut Reader<'_>,
    depth: usize,
) -> Result<Value, JfrError> {
    if f.constant_pool {
        Ok(Value::Ref(r.long()? as u64))
    } else {
        decode(md, f.class_id, r, depth + 1)
    }
}

fn array_len(md: &Metadata, f: &FieldDef, r: &mut Reader<'_>) -> Result<usize, JfrError> {
    let min = if f.constant_pool {
        1
    } else {
        md.class(f.class_id)?.min_size
    };
    let n = r.count(min, "array element")?;
    if min == 0 && n > MAX_EMPTY_ELEMENTS {
        return Err(JfrError::invalid(format!(
            "array of {n} empty values in field {}",
            f.name
        )));
    }
    Ok(n)
}

/// Skips one value of class `id` without building it.
pub fn skip(md: &Metadata, id: u64, r: &mut Reader<'_>, depth: usize) -> Result<(), JfrError> {
    if depth > MAX_VALUE_DEPTH {
        return Err(JfrError::TooDeep("value"));
    }
    let class = md.class(id)?;
    match class.encoding {
        Encoding::Boolean | Encoding::Byte => r.skip(1),
        Encoding::Char | Encoding::Short | Encoding::Int | Encoding::Long if r.compressed() => {
            r.varint().map(|_| ())
        }
        Encoding::Char | Encoding::Short => r.skip(2),
        Encoding::Int | Encoding::Float => r.skip(4),
        Encoding::Long | Encoding::Double => r.skip(8),
        Encoding::String => r.skip_string(),
        Encoding::Struct => {
            for f in &class.fields {
                let n = if f.array { array_len(md, f, r)? } else { 1 };
                for _ in 0..n {
                    if f.constant_pool {
                        r.long()?;
                    } else {
                        skip(md, f.class_id, r, depth + 1)?;
                    }
                }
            }
            Ok(())
        }
    }
}
