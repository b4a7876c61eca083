//! Deduplicated symbol tables: strings, functions, mappings, locations and stacks.
//!
//! Ids are dense `u32` indexes into each table. String id 0 is always `""`.

// foldhash (hashbrown's default), not SipHash: these maps sit on the ingest path.
use hashbrown::HashMap;

use crate::flat::FlatProfile;
use crate::id_map::IdMap;
use crate::interner::{Interner, Weigh};

/// A function, with its strings as string-table ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    /// Function name.
    pub name: u32,
    /// Mangled or system name.
    pub system_name: u32,
    /// Source file name.
    pub filename: u32,
    /// First line of the function.
    pub start_line: i64,
}

/// A binary mapping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// Start of the mapped address range.
    pub memory_start: u64,
    /// End of the mapped address range.
    pub memory_limit: u64,
    /// File offset of the mapping.
    pub file_offset: u64,
    /// Binary file name (string id).
    pub filename: u32,
    /// Build id (string id).
    pub build_id: u32,
    /// `has_functions`, `has_filenames`, `has_line_numbers`, `has_inline_frames` as bits 0..3.
    pub flags: u8,
}

/// One line of a location: a function and a line number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Line {
    /// Function id.
    pub function: u32,
    /// Line number.
    pub line: i64,
}

/// A code location: an address in a mapping with its (possibly inlined) lines.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// Mapping id plus one; 0 means no mapping.
    pub mapping: u32,
    /// Instruction address (0 when symbolized and irrelevant).
    pub address: u64,
    /// Lines, innermost (inlined callee) first, as in pprof.
    pub lines: Box<[Line]>,
}

impl Weigh for Function {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Weigh for Mapping {
    fn heap_bytes(&self) -> usize {
        0
    }
}

impl Weigh for Location {
    fn heap_bytes(&self) -> usize {
        self.lines.heap_bytes()
    }
}

/// A malformed pprof symbol reference.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SymbolError {
    /// A string index beyond the string table.
    #[error("string index {0} out of range")]
    StringIndex(i64),
    /// A location references a function id that does not exist.
    #[error("unknown function id {0}")]
    UnknownFunction(u64),
    /// A sample references a location id that does not exist.
    #[error("unknown location id {0}")]
    UnknownLocation(u64),
    /// Function id 0 is reserved.
    #[error("function id is 0")]
    FunctionIdZero,
    /// Location id 0 is reserved.
    #[error("location id is 0")]
    LocationIdZero,
}

/// Deduplicated symbols shared by every profile of a head or a query result.
#[derive(Debug, Clone)]
pub struct SymbolTable {
    /// Interned strings; id 0 is `""`.
    pub strings: Interner<String>,
    /// Interned functions.
    pub functions: Interner<Function>,
    /// Interned mappings.
    pub mappings: Interner<Mapping>,
    /// Interned locations.
    pub locations: Interner<Location>,
    /// Interned stacks: location ids, leaf first.
    pub stacks: Interner<Box<[u32]>>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        let mut strings = Interner::default();
        strings.intern(String::new());
        Self {
            strings,
            functions: Interner::default(),
            mappings: Interner::default(),
            locations: Interner::default(),
            stacks: Interner::default(),
        }
    }
}

/// Translation of one pprof's ids into a [`SymbolTable`]'s ids.
pub struct PprofImport {
    locations: IdMap,
}

impl PprofImport {
    /// The symbol-table location id for a pprof location id.
    pub fn location(&self, id: u64) -> Result<u32, SymbolError> {
        if id == 0 {
            return Err(SymbolError::LocationIdZero);
        }
        self.locations
            .get(id)
            .ok_or(SymbolError::UnknownLocation(id))
    }
}

/// A [`Location`] borrowed from a profile being imported: hashes as the
/// `Location` it stands for, so a known one is found without allocating.
#[derive(Hash)]
struct LocationKey<'a> {
    mapping: u32,
    address: u64,
    lines: &'a [Line],
}

impl SymbolTable {
    /// A table with no entries at all (not even `""`), for rebuilding one in id order.
    pub fn empty() -> Self {
        Self {
            strings: Interner::default(),
            functions: Interner::default(),
            mappings: Interner::default(),
            locations: Interner::default(),
            stacks: Interner::default(),
        }
    }

    /// Memory the table holds, in bytes (every interner's values and index).
    pub fn memory_bytes(&self) -> usize {
        self.strings.memory_bytes()
            + self.functions.memory_bytes()
            + self.mappings.memory_bytes()
            + self.locations.memory_bytes()
            + self.stacks.memory_bytes()
    }

    /// The string with this id (`""` if unknown).
    pub fn string(&self, id: u32) -> &str {
        self.strings.get(id).map(String::as_str).unwrap_or("")
    }

    /// The frames of a stack as function names, leaf first; inlined lines expand to
    /// several frames and locations without lines are named by their address.
    pub fn frame_names(&self, stack: u32, out: &mut Vec<String>) {
        out.clear();
        let Some(locs) = self.stacks.get(stack) else {
            return;
        };
        for &loc in locs.iter() {
            let Some(location) = self.locations.get(loc) else {
                continue;
            };
            if location.lines.is_empty() {
                out.push(format!("{:#x}", location.address));
            }
            for line in location.lines.iter() {
                let name = self
                    .functions
                    .get(line.function)
                    .map(|f| self.string(f.name))
                    .unwrap_or("");
                out.push(name.to_string());
            }
        }
    }

    /// Interns all symbols of a pprof and returns the id translation for its locations.
    pub fn import_pprof(&mut self, p: &FlatProfile) -> Result<PprofImport, SymbolError> {
        let mut strings: Vec<Option<u32>> = vec![None; p.string_count()];
        let mut intern_string = |st: &mut Interner<String>, i: i64| -> Result<u32, SymbolError> {
            let s = p.string(i).ok_or(SymbolError::StringIndex(i))?;
            let slot = &mut strings[i as usize];
            // A string seen before costs a lookup, not an allocation.
            Ok(*slot
                .get_or_insert_with(|| st.lookup(s).unwrap_or_else(|| st.intern(s.to_string()))))
        };

        let mut functions = IdMap::sized_for(p.functions().iter().map(|f| f.id));
        for f in p.functions() {
            if f.id == 0 {
                return Err(SymbolError::FunctionIdZero);
            }
            let func = Function {
                name: intern_string(&mut self.strings, f.name)?,
                system_name: intern_string(&mut self.strings, f.system_name)?,
                filename: intern_string(&mut self.strings, f.filename)?,
                start_line: f.start_line,
            };
            functions.insert(f.id, self.functions.intern(func));
        }
        let mut mappings = IdMap::sized_for(p.mappings().iter().map(|m| m.id));
        for m in p.mappings() {
            let mapping = Mapping {
                memory_start: m.memory_start,
                memory_limit: m.memory_limit,
                file_offset: m.file_offset,
                filename: intern_string(&mut self.strings, m.filename)?,
                build_id: intern_string(&mut self.strings, m.build_id)?,
                flags: u8::from(m.has_functions)
                    | u8::from(m.has_filenames) << 1
                    | u8::from(m.has_line_numbers) << 2
                    | u8::from(m.has_inline_frames) << 3,
            };
            mappings.insert(m.id, self.mappings.intern(mapping) + 1);
        }
        let mut locations = IdMap::sized_for(p.locations().map(|l| l.id));
        let mut lines = Vec::new();
        for l in p.locations() {
            if l.id == 0 {
                return Err(SymbolError::LocationIdZero);
            }
            lines.clear();
            for line in l.lines {
                if line.function_id == 0 {
                    return Err(SymbolError::FunctionIdZero);
                }
                lines.push(Line {
                    function: functions
                        .get(line.function_id)
                        .ok_or(SymbolError::UnknownFunction(line.function_id))?,
                    line: line.line,
                });
            }
            // Symbolized locations do not need their address: dropping it dedups
            // the same code across processes with different load addresses.
            let key = LocationKey {
                mapping: mappings.get(l.mapping_id).unwrap_or(0),
                address: if lines.is_empty() { l.address } else { 0 },
                lines: &lines,
            };
            let id = self.locations.intern_by(
                &key,
                |have, key| {
                    have.mapping == key.mapping
                        && have.address == key.address
                        && *have.lines == *key.lines
                },
                |key| Location {
                    mapping: key.mapping,
                    address: key.address,
                    lines: key.lines.into(),
                },
            );
            locations.insert(l.id, id);
        }
        Ok(PprofImport { locations })
    }

    /// Copies stack `stack` of `other` into this table, returning the new stack id.
    pub fn import_stack(&mut self, other: &SymbolTable, stack: u32, memo: &mut ImportMemo) -> u32 {
        let Some(locs) = other.stacks.get(stack) else {
            return self.stacks.intern(Box::new([]));
        };
        let mut out = Vec::with_capacity(locs.len());
        for &loc in locs.iter() {
            out.push(self.import_location(other, loc, memo));
        }
        self.stacks.intern(out.into_boxed_slice())
    }

    fn import_location(&mut self, other: &SymbolTable, loc: u32, memo: &mut ImportMemo) -> u32 {
        if let Some(&id) = memo.locations.get(&loc) {
            return id;
        }
        let Some(l) = other.locations.get(loc) else {
            return 0;
        };
        let mapping = if l.mapping == 0 {
            0
        } else {
            match other.mappings.get(l.mapping - 1) {
                Some(m) => {
                    let m = Mapping {
                        filename: self.import_string(other, m.filename, memo),
                        build_id: self.import_string(other, m.build_id, memo),
                        ..m.clone()
                    };
                    self.mappings.intern(m) + 1
                }
                None => 0,
            }
        };
        let lines = l
            .lines
            .iter()
            .map(|line| Line {
                function: self.import_function(other, line.function, memo),
                line: line.line,
            })
            .collect();
        let id = self.locations.intern(Location {
            mapping,
            address: l.address,
            lines,
        });
        memo.locations.insert(loc, id);
        id
    }

    fn import_function(&mut self, other: &SymbolTable, f: u32, memo: &mut ImportMemo) -> u32 {
        if let Some(&id) = memo.functions.get(&f) {
            return id;
        }
        let func = other.functions.get(f).cloned().unwrap_or(Function {
            name: 0,
            system_name: 0,
            filename: 0,
            start_line: 0,
        });
        let func = Function {
            name: self.import_string(other, func.name, memo),
            system_name: self.import_string(other, func.system_name, memo),
            filename: self.import_string(other, func.filename, memo),
            start_line: func.start_line,
        };
        let id = self.functions.intern(func);
        memo.functions.insert(f, id);
        id
    }

    fn import_string(&mut self, other: &SymbolTable, s: u32, memo: &mut ImportMemo) -> u32 {
        if let Some(&id) = memo.strings.get(&s) {
            return id;
        }
        let id = self.strings.intern(other.string(s).to_string());
        memo.strings.insert(s, id);
        id
    }
}

/// Remembers ids already copied by [`SymbolTable::import_stack`] from one source table.
#[derive(Default)]
pub struct ImportMemo {
    strings: HashMap<u32, u32>,
    functions: HashMap<u32, u32>,
    locations: HashMap<u32, u32>,
}
