//! The metadata event: a string table and an element tree that describes
//! every type of the chunk (classes, their fields, field types, constant-pool
//! flags and array dimensions). Settings and annotations are skipped.

use std::collections::HashMap;

use super::chunk::Chunk;
use super::error::JfrError;
use super::reader::{JfrStr, Reader};

/// Deepest element tree accepted (JDK trees are 5 deep).
const MAX_ELEMENT_DEPTH: usize = 16;
/// Deepest inline nesting of struct fields accepted.
pub const MAX_VALUE_DEPTH: usize = 32;

/// How a type's values are encoded when they are not a pool reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `boolean`: one byte.
    Boolean,
    /// `byte`: one byte.
    Byte,
    /// `char`: varint or 2 bytes.
    Char,
    /// `short`: varint or 2 bytes.
    Short,
    /// `int`: varint or 4 bytes.
    Int,
    /// `long`: varint or 8 bytes.
    Long,
    /// `float`: 4 bytes.
    Float,
    /// `double`: 8 bytes.
    Double,
    /// `java.lang.String`: a JFR string.
    String,
    /// Any other class: its fields, in order.
    Struct,
}

impl Encoding {
    fn of(name: &str) -> Self {
        match name {
            "boolean" => Self::Boolean,
            "byte" => Self::Byte,
            "char" => Self::Char,
            "short" => Self::Short,
            "int" => Self::Int,
            "long" => Self::Long,
            "float" => Self::Float,
            "double" => Self::Double,
            "java.lang.String" => Self::String,
            _ => Self::Struct,
        }
    }

    fn min_size(self, compressed: bool) -> usize {
        match self {
            Self::Struct => 0,
            Self::Boolean | Self::Byte | Self::String => 1,
            Self::Float => 4,
            Self::Double => 8,
            _ if compressed => 1,
            Self::Char | Self::Short => 2,
            Self::Int => 4,
            Self::Long => 8,
        }
    }
}

/// One field of a class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    /// Field name.
    pub name: String,
    /// Id of the field's type.
    pub class_id: u64,
    /// The value is a key into the type's constant pool.
    pub constant_pool: bool,
    /// The value is an array (dimension 1).
    pub array: bool,
}

/// One class (event type, pool type, struct or primitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassDef {
    /// Type id, as used by events and pools.
    pub id: u64,
    /// Fully qualified name, e.g. `jdk.ExecutionSample`.
    pub name: String,
    /// Super type, e.g. `jdk.jfr.Event`.
    pub super_type: Option<String>,
    /// Fields in encoding order.
    pub fields: Vec<FieldDef>,
    /// How a value of this class is encoded.
    pub encoding: Encoding,
    /// Fewest bytes one value of this class can take.
    pub min_size: usize,
}

impl ClassDef {
    /// Index of the field called `name`.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }
}

/// All types of one chunk.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    classes: HashMap<u64, ClassDef>,
    by_name: HashMap<String, u64>,
}

impl Metadata {
    /// The class with this id.
    pub fn class(&self, id: u64) -> Result<&ClassDef, JfrError> {
        self.classes.get(&id).ok_or(JfrError::UnknownType(id))
    }

    /// The id of the class called `name`.
    pub fn id_of(&self, name: &str) -> Option<u64> {
        self.by_name.get(name).copied()
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.classes.len()
    }

    /// Whether no class is described.
    pub fn is_empty(&self) -> bool {
        self.classes.is_empty()
    }
}

/// A node of the metadata element tree (names and values are string-table indexes).
#[derive(Debug)]
struct Element {
    name: usize,
    attributes: Vec<(usize, usize)>,
    children: Vec<Element>,
}

/// Parses the chunk's metadata event.
pub fn parse_metadata(chunk: &Chunk<'_>) -> Result<Metadata, JfrError> {
    let start = chunk.header.metadata_offset;
    let mut r = chunk.reader(start, chunk.data.len())?;
    let size = event_size(&mut r, start)?;
    let mut r = chunk.reader(start, start + size)?;
    r.int()?;
    let ty = r.long()?;
    if ty != 0 {
        return Err(JfrError::invalid(format!(
            "the event at the metadata offset {start} has type {ty}, not 0"
        )));
    }
    r.long()?; // start time
    r.long()?; // duration
    r.long()?; // metadata id
    let n = r.count(1, "metadata string")?;
    let mut strings = Vec::with_capacity(n);
    for _ in 0..n {
        strings.push(match r.string()? {
            JfrStr::Null => String::new(),
            JfrStr::Text(s) => s,
            JfrStr::Pool(_) => {
                return Err(JfrError::invalid(
                    "metadata string table refers to a constant pool",
                ));
            }
        });
    }
    let root = element(&mut r, strings.len(), 0)?;
    build(&root, &strings, chunk.header.compressed_ints())
}

/// Reads an event's size and checks that the event fits in what is left.
pub fn event_size(r: &mut Reader<'_>, at: usize) -> Result<usize, JfrError> {
    let size = r.int()?;
    match usize::try_from(size) {
        Ok(s) if s > r.pos() && s <= r.remaining() + r.pos() => Ok(s),
        _ => Err(JfrError::invalid(format!(
            "event at offset {at} has size {size}, but {} bytes are left",
            r.remaining() + r.pos()
        ))),
    }
}

fn index(r: &mut Reader<'_>, n: usize) -> Result<usize, JfrError> {
    let i = r.int()?;
    usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| {
        JfrError::invalid(format!(
            "metadata string index {i} out of range ({n} strings)"
        ))
    })
}

fn element(r: &mut Reader<'_>, n: usize, depth: usize) -> Result<Element, JfrError> {
    if depth > MAX_ELEMENT_DEPTH {
        return Err(JfrError::TooDeep("metadata element tree"));
    }
    let name = index(r, n)?;
    let count = r.count(2, "metadata attribute")?;
    let mut attributes = Vec::with_capacity(count);
    for _ in 0..count {
        attributes.push((index(r, n)?, index(r, n)?));
    }
    let count = r.count(3, "metadata child element")?;
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        children.push(element(r, n, depth + 1)?);
    }
    Ok(Element {
        name,
        attributes,
        children,
    })
}

fn build(root: &Element, strings: &[String], compressed: bool) -> Result<Metadata, JfrError> {
    let s = |i: usize| strings.get(i).map_or("", String::as_str);
    let attr = |e: &Element, key: &str| {
        e.attributes
            .iter()
            .find(|(k, _)| s(*k) == key)
            .map(|(_, v)| s(*v))
    };
    let id_attr = |e: &Element, key: &str| -> Result<u64, JfrError> {
        let v = attr(e, key).unwrap_or("");
        v.parse()
            .map_err(|_| JfrError::invalid(format!("metadata: bad {key} {v:?}")))
    };
    let mut md = Metadata::default();
    let classes = root
        .children
        .iter()
        .filter(|e| s(e.name) == "metadata")
        .flat_map(|m| m.children.iter())
        .filter(|e| s(e.name) == "class");
    for c in classes {
        let name = attr(c, "name").unwrap_or("").to_string();
        let mut fields = Vec::new();
        for f in c.children.iter().filter(|e| s(e.name) == "field") {
            let array = match attr(f, "dimension").unwrap_or("0") {
                "0" => false,
                "1" => true,
                d => {
                    return Err(JfrError::invalid(format!(
                        "metadata: field of {name} has unsupported dimension {d}"
                    )));
                }
            };
            fields.push(FieldDef {
                name: attr(f, "name").unwrap_or("").to_string(),
                class_id: id_attr(f, "class")?,
                constant_pool: attr(f, "constantPool") == Some("true"),
                array,
            });
        }
        let id = id_attr(c, "id")?;
        md.by_name.insert(name.clone(), id);
        md.classes.insert(
            id,
            ClassDef {
                id,
                encoding: Encoding::of(&name),
                name,
                super_type: attr(c, "superType").map(str::to_string),
                fields,
                min_size: 0,
            },
        );
    }
    let mut memo = HashMap::new();
    let ids: Vec<u64> = md.classes.keys().copied().collect();
    for id in ids {
        let size = min_size(&md, id, compressed, &mut memo, 0)?;
        if let Some(c) = md.classes.get_mut(&id) {
            c.min_size = size;
        }
    }
    Ok(md)
}

/// Fewest bytes a value of class `id` takes; fails on unknown types and on
/// structs that contain themselves inline (or nest too deeply).
fn min_size(
    md: &Metadata,
    id: u64,
    compressed: bool,
    memo: &mut HashMap<u64, usize>,
    depth: usize,
) -> Result<usize, JfrError> {
    if let Some(&n) = memo.get(&id) {
        return Ok(n);
    }
    if depth > MAX_VALUE_DEPTH {
        return Err(JfrError::TooDeep("type (a struct that contains itself?)"));
    }
    let class = md.class(id)?;
    let n = match class.encoding {
        Encoding::Struct => {
            let mut n = 0usize;
            for f in &class.fields {
                n = n.saturating_add(if f.constant_pool || f.array {
                    1
                } else {
                    min_size(md, f.class_id, compressed, memo, depth + 1)?
                });
            }
            n
        }
        e => e.min_size(compressed),
    };
    memo.insert(id, n);
    Ok(n)
}
