//! Constant pools: checkpoint events chained from the header's pool offset
//! by their `delta` fields. Only the pools needed to name stack frames and
//! thread states are kept; every other pool is decoded and dropped.

use std::collections::{HashMap, HashSet};

use super::chunk::{Chunk, HEADER_SIZE};
use super::error::JfrError;
use super::metadata::{FieldDef, Metadata, event_size};
use super::reader::JfrStr;
use super::value::{Fields, Value, decode, skip};

/// Event type id of checkpoint (constant pool) events.
pub const CHECKPOINT_TYPE: i64 = 1;

/// Text that may live inline, in the string pool or in the symbol pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Text {
    /// No text.
    Null,
    /// Inline text.
    Inline(String),
    /// A `java.lang.String` pool key.
    Str(u64),
    /// A `jdk.types.Symbol` pool key.
    Symbol(u64),
}

/// A `jdk.types.Method` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// `java.lang.Class` pool key of the declaring class.
    pub class: Option<u64>,
    /// Method name.
    pub name: Text,
}

/// One frame of a `jdk.types.StackTrace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// `jdk.types.Method` pool key.
    pub method: Option<u64>,
    /// Source line (0 if unknown).
    pub line: i64,
}

/// A `jdk.types.StackTrace` entry, leaf frame first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackTrace {
    /// Frames, leaf first.
    pub frames: Vec<Frame>,
    /// The JVM cut the stack at its depth limit.
    pub truncated: bool,
}

/// The constant pools of one chunk that the conversion needs.
#[derive(Debug, Clone, Default)]
pub struct Pools {
    strings: HashMap<u64, String>,
    symbols: HashMap<u64, Text>,
    classes: HashMap<u64, Text>,
    methods: HashMap<u64, Method>,
    stacks: HashMap<u64, StackTrace>,
    thread_states: HashMap<u64, Text>,
}

/// The pools kept, by type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    Strings,
    Symbols,
    Classes,
    Methods,
    Stacks,
    ThreadStates,
}

impl Kept {
    fn of(type_name: &str) -> Option<Self> {
        Some(match type_name {
            "java.lang.String" => Self::Strings,
            "jdk.types.Symbol" => Self::Symbols,
            "java.lang.Class" => Self::Classes,
            "jdk.types.Method" => Self::Methods,
            "jdk.types.StackTrace" => Self::Stacks,
            "jdk.types.ThreadState" => Self::ThreadStates,
            _ => return None,
        })
    }
}

impl Pools {
    /// Resolves text to a string (`None` when absent or dangling).
    pub fn text<'a>(&'a self, t: &'a Text) -> Option<&'a str> {
        match t {
            Text::Null => None,
            Text::Inline(s) => Some(s),
            Text::Str(k) => self.strings.get(k).map(String::as_str),
            Text::Symbol(k) => match self.symbols.get(k)? {
                Text::Symbol(_) => None,
                other => self.text(other),
            },
        }
    }

    /// The stack trace with this key.
    pub fn stack(&self, key: u64) -> Option<&StackTrace> {
        self.stacks.get(&key)
    }

    /// `Class.method` for a method key, as Pyroscope names Java frames.
    pub fn frame_name(&self, method: u64) -> Option<String> {
        let m = self.methods.get(&method)?;
        let class = self.classes.get(&m.class?)?;
        let class = self.text(class).unwrap_or("");
        let name = self.text(&m.name).unwrap_or("");
        Some(format!("{class}.{name}"))
    }

    /// The name of a thread state, e.g. `STATE_RUNNABLE`.
    pub fn thread_state(&self, key: u64) -> Option<&str> {
        self.text(self.thread_states.get(&key)?)
    }

    fn store(&mut self, kept: Kept, md: &Metadata, class_id: u64, key: u64, v: Value) {
        let Ok(class) = md.class(class_id) else {
            return;
        };
        if kept == Kept::Strings {
            if let Value::Str(JfrStr::Text(s)) = v {
                self.strings.insert(key, s);
            }
            return;
        }
        let Some(f) = Fields::new(class, &v) else {
            return;
        };
        let text = |name: &str| f.get(name).map_or(Text::Null, |(fd, v)| text(md, fd, v));
        match kept {
            Kept::Strings => {}
            Kept::Symbols => {
                self.symbols.insert(key, text("string"));
            }
            Kept::Classes => {
                self.classes.insert(key, text("name"));
            }
            Kept::ThreadStates => {
                self.thread_states.insert(key, text("name"));
            }
            Kept::Methods => {
                let class = f.get("type").and_then(|(_, v)| v.as_ref_key());
                self.methods.insert(
                    key,
                    Method {
                        class,
                        name: text("name"),
                    },
                );
            }
            Kept::Stacks => {
                let truncated = f.int("truncated").unwrap_or(0) != 0;
                let frames = match (f.get("frames"), frame_class(md, &f)) {
                    (Some((_, Value::Array(items))), Some(fc)) => items
                        .iter()
                        .filter_map(|item| {
                            let ff = Fields::new(fc, item)?;
                            Some(Frame {
                                method: ff.get("method").and_then(|(_, v)| v.as_ref_key()),
                                line: ff.int("lineNumber").unwrap_or(0),
                            })
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                self.stacks.insert(key, StackTrace { frames, truncated });
            }
        }
    }
}

fn frame_class<'a>(md: &'a Metadata, f: &Fields<'_>) -> Option<&'a super::metadata::ClassDef> {
    let (fd, _) = f.get("frames")?;
    md.class(fd.class_id).ok()
}

/// Text held by a field: inline, or a key into the string or symbol pool.
pub fn text(md: &Metadata, f: &FieldDef, v: &Value) -> Text {
    match v {
        Value::Str(JfrStr::Text(s)) => Text::Inline(s.clone()),
        Value::Str(JfrStr::Pool(k)) => Text::Str(*k),
        Value::Ref(k) => match md.class(f.class_id).map(|c| c.name.as_str()) {
            Ok("jdk.types.Symbol") => Text::Symbol(*k),
            Ok("java.lang.String") => Text::Str(*k),
            _ => Text::Null,
        },
        _ => Text::Null,
    }
}

/// Reads every checkpoint of the chunk, following the delta chain.
pub fn read_pools(chunk: &Chunk<'_>, md: &Metadata) -> Result<Pools, JfrError> {
    let mut pools = Pools::default();
    let mut seen = HashSet::new();
    let mut at = chunk.header.constant_pool_offset;
    loop {
        if !seen.insert(at) {
            return Err(JfrError::invalid(format!(
                "constant pool chain loops back to offset {at}"
            )));
        }
        let delta = read_checkpoint(chunk, md, at, &mut pools)?;
        if delta == 0 {
            return Ok(pools);
        }
        at = i64::try_from(at)
            .ok()
            .and_then(|a| a.checked_add(delta))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n >= HEADER_SIZE && n < chunk.data.len())
            .ok_or_else(|| {
                JfrError::invalid(format!(
                    "constant pool delta {delta} at offset {at} leads outside the chunk"
                ))
            })?;
    }
}

/// Reads the checkpoint event at `at` into `pools`; returns its delta.
fn read_checkpoint(
    chunk: &Chunk<'_>,
    md: &Metadata,
    at: usize,
    pools: &mut Pools,
) -> Result<i64, JfrError> {
    let mut r = chunk.reader(at, chunk.data.len())?;
    let size = event_size(&mut r, at)?;
    let mut r = chunk.reader(at, at + size)?;
    r.int()?;
    let ty = r.long()?;
    if ty != CHECKPOINT_TYPE {
        return Err(JfrError::invalid(format!(
            "the event at constant pool offset {at} has type {ty}, not {CHECKPOINT_TYPE}"
        )));
    }
    r.long()?; // start time
    r.long()?; // duration
    let delta = r.long()?;
    r.u8()?; // checkpoint kind (flush, chunk header, …)
    let key_size: usize = if r.compressed() { 1 } else { 8 };
    let n = r.count(2, "constant pool")?;
    for _ in 0..n {
        let class_id = r.long()? as u64;
        let class = md.class(class_id)?;
        let kept = Kept::of(&class.name);
        let entries = r.count(key_size.saturating_add(class.min_size), "constant")?;
        for _ in 0..entries {
            let key = r.long()? as u64;
            match kept {
                Some(k) => {
                    let v = decode(md, class_id, &mut r, 0)?;
                    pools.store(k, md, class_id, key, v);
                }
                None => skip(md, class_id, &mut r, 0)?,
            }
        }
    }
    Ok(delta)
}
