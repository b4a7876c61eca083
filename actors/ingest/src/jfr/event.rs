//! Walking the events of a chunk: every event is sized, so uninteresting ones
//! are skipped; the wanted ones are decoded generically from the metadata.

use std::collections::BTreeMap;

use super::chunk::{Chunk, HEADER_SIZE};
use super::error::JfrError;
use super::metadata::{ClassDef, Metadata, event_size};
use super::pool::CHECKPOINT_TYPE;
use super::value::{Value, decode};

/// Event type id of the metadata event.
pub const METADATA_TYPE: i64 = 0;

/// Visits the events of `chunk` in file order. `wanted` picks the event types
/// to decode; `visit` gets each of them. Returns the number of events per
/// type name (the metadata and checkpoint events as `jdk.Metadata` and
/// `jdk.CheckPoint`, as `jfr summary` counts them).
pub fn for_each_event<W, V>(
    chunk: &Chunk<'_>,
    md: &Metadata,
    wanted: W,
    mut visit: V,
) -> Result<BTreeMap<String, u64>, JfrError>
where
    W: Fn(&ClassDef) -> bool,
    V: FnMut(&ClassDef, Value) -> Result<(), JfrError>,
{
    let mut by_type: BTreeMap<i64, u64> = BTreeMap::new();
    let end = chunk.data.len();
    let mut at = HEADER_SIZE;
    while at < end {
        let mut r = chunk.reader(at, end)?;
        let size = event_size(&mut r, at)?;
        let ty = r.long()?;
        let body = at + r.pos();
        if body > at + size {
            return Err(JfrError::invalid(format!(
                "event at offset {at} is shorter ({size} bytes) than its header"
            )));
        }
        *by_type.entry(ty).or_default() += 1;
        if ty != METADATA_TYPE && ty != CHECKPOINT_TYPE {
            let class = md.class(ty as u64)?;
            if wanted(class) {
                let mut r = chunk.reader(body, at + size)?;
                let v = decode(md, class.id, &mut r, 0)?;
                visit(class, v)?;
            }
        }
        at += size;
    }
    let mut counts = BTreeMap::new();
    for (ty, n) in by_type {
        let name = match ty {
            METADATA_TYPE => "jdk.Metadata".to_string(),
            CHECKPOINT_TYPE => "jdk.CheckPoint".to_string(),
            _ => md.class(ty as u64)?.name.clone(),
        };
        *counts.entry(name).or_default() += n;
    }
    Ok(counts)
}
