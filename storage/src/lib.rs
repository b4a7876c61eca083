//! Ignis storage: the data model of stored profiles.
//!
//! Owns the wire messages (`proto`), label sets, profile type ids, the
//! deduplicated symbol tables and the in-memory head that ingesters append to.

#![warn(missing_docs)]

pub mod attime;
#[cfg(feature = "block-files")]
pub mod block;
pub mod flat;
pub mod head;
pub mod id_map;
pub mod interner;
pub mod labels;
pub mod profile_id;
pub mod profile_type;
pub mod proto;
pub mod record;
pub mod selector;
#[cfg(feature = "blocks")]
pub mod sled_open;
pub mod spans;
pub mod symbols;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(feature = "blocks")]
pub mod wal;
pub mod wire;

pub use flat::{FlatError, FlatProfile, Truncation};
pub use head::{
    Head, HeadStats, InsertStats, ProfileRow, RowParts, Series, SeriesSplit, SplitProfile,
};
pub use id_map::IdMap;
pub use labels::{Labels, names};
pub use profile_id::{ProfileId, ProfileIdError};
pub use profile_type::{ProfileType, ProfileTypeError};
pub use record::{RecordError, decode_record, encode_record};
pub use symbols::{SymbolError, SymbolTable};
#[cfg(feature = "blocks")]
pub use wal::{ReplayStats, Wal, WalError, WalSync};
pub use wire::{decode_head, encode_head};
