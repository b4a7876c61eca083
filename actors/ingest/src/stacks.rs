//! Root-first stacks as the tree, trie and speedscope decoders build them,
//! within a bound on what an upload expands to.
//!
//! These formats name a stack once per node or event, so a few megabytes
//! can describe deep stacks many times over: a chain of 8 000 nodes, each
//! with a value, is 32 million frames. Frames are shared (`Rc<str>`, one
//! allocation per distinct name), stacks deeper than
//! `max_profile_stacktrace_depth` keep their root-side frames (and a run of
//! such stacks that became equal is kept once, with the values added), and
//! all stacks together may hold at most as many frames as a pprof of
//! `max_profile_size_bytes` could (one byte per location id): past that the
//! upload is refused with a clear error instead of costing gigabytes.

use std::collections::HashMap;
use std::rc::Rc;

use super::error::IngestError;
use super::limits::Limits;

/// One frame name, shared by every stack that holds it.
pub type Frame = Rc<str>;

/// Root-first stacks with their values.
pub type Stacks = Vec<(Vec<Frame>, i64)>;

/// How many bytes of names a decoder may scan per frame of the budget
/// (a trie's keys are re-read for every stack they end).
const SCAN_BYTES_PER_FRAME: usize = 16;

/// Builds [`Stacks`] within the bounds of [`Limits`] (see the module docs).
pub struct StackBuilder {
    stacks: Stacks,
    names: HashMap<Box<[u8]>, Frame>,
    frames: usize,
    scanned: usize,
    max_frames: usize,
    max_depth: usize,
    max_name: usize,
}

impl StackBuilder {
    /// A builder bounded by `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            stacks: Vec::new(),
            names: HashMap::new(),
            frames: 0,
            scanned: 0,
            max_frames: limits.max_profile_size_bytes.max(1),
            max_depth: limits.max_profile_stacktrace_depth,
            max_name: limits.max_profile_symbol_value_length,
        }
    }

    /// The shared frame for `name` (invalid UTF-8 replaced). A name longer
    /// than `max_profile_symbol_value_length` is an error.
    pub fn name(&mut self, name: &[u8]) -> Result<Frame, IngestError> {
        if self.max_name > 0 && name.len() > self.max_name {
            return Err(IngestError::malformed(format!(
                "frame name of {} bytes exceeds max_profile_symbol_value_length ({})",
                name.len(),
                self.max_name
            )));
        }
        if let Some(f) = self.names.get(name) {
            return Ok(f.clone());
        }
        self.charge_scan(name.len())?;
        let f: Frame = String::from_utf8_lossy(name).into();
        self.names.insert(name.into(), f.clone());
        Ok(f)
    }

    /// Counts `bytes` of names read to build a stack.
    pub fn charge_scan(&mut self, bytes: usize) -> Result<(), IngestError> {
        self.scanned = self.scanned.saturating_add(bytes);
        if self.scanned > self.max_frames.saturating_mul(SCAN_BYTES_PER_FRAME) {
            return Err(self.too_big());
        }
        Ok(())
    }

    /// Adds a stack (root first) with value `v`, cut to its root-side
    /// `max_profile_stacktrace_depth` frames.
    pub fn push(&mut self, frames: &[Frame], v: i64) -> Result<(), IngestError> {
        let depth = self.max_depth();
        let cut = frames.len() > depth;
        self.push_cut(&frames[..frames.len().min(depth)], v, cut)
    }

    /// Most frames of one stack (`max_profile_stacktrace_depth`; unbounded at 0).
    pub fn max_depth(&self) -> usize {
        match self.max_depth {
            0 => usize::MAX,
            d => d,
        }
    }

    /// Adds a stack the caller already cut to [`StackBuilder::max_depth`]
    /// frames; `cut` says whether frames were dropped.
    pub fn push_cut(&mut self, frames: &[Frame], v: i64, cut: bool) -> Result<(), IngestError> {
        // Deeper stacks that differ only below the cut are consecutive
        // (pre-order): keep them once.
        if cut
            && let Some((last, total)) = self.stacks.last_mut()
            && last.len() == frames.len()
            && last.iter().zip(frames).all(|(a, b)| Rc::ptr_eq(a, b))
        {
            *total = total.saturating_add(v);
            return Ok(());
        }
        self.frames = self.frames.saturating_add(frames.len());
        if self.frames > self.max_frames {
            return Err(self.too_big());
        }
        self.stacks.push((frames.to_vec(), v));
        Ok(())
    }

    fn too_big(&self) -> IngestError {
        IngestError::malformed(format!(
            "the upload expands to more than {} stack frames (what a pprof of max_profile_size_bytes could hold): too many or too deep stacks",
            self.max_frames
        ))
    }

    /// The stacks built.
    pub fn finish(self) -> Stacks {
        self.stacks
    }
}
