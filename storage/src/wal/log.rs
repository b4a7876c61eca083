//! The appending side of the WAL: the open segment file, what every segment
//! holds, and which records each stream has left after its truncations.
//!
//! Records go after the last one in the open segment with one `write` each
//! (the page cache holds them until a sync), so a record costs its bytes
//! once on disk. A segment is closed past a size and a new one started, from
//! a zero-filled [`Spare`] prepared in the background once the open one is
//! half full (so a sync need not grow the file); a closed segment is deleted
//! once every stream it holds was truncated past its records. Syncing is not
//! done here: [`SyncFiles`] names the files a sync must cover.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::WalError;
use super::segment::{
    SEGMENT_MAGIC, SegmentEnd, encode_frame, parse_segment_name, read_segment, segment_name,
};
use super::spare::Spare;

/// The default size past which the open segment is closed.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// The files a sync must cover: the open segment, segments closed since the
/// last sync, and the directory when a segment was created or renamed into it.
pub(super) struct SyncFiles {
    dir: PathBuf,
    /// Held through a whole sync, so a second caller does not return while
    /// the first still syncs what both depend on (the directory); appends
    /// take it only to start a segment.
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    current: Option<Arc<File>>,
    closed: Vec<Arc<File>>,
    dir_changed: bool,
}

impl SyncFiles {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            pending: Mutex::new(Pending::default()),
        }
    }

    /// Makes every record written before this call durable: syncs the data
    /// of the open segment and the segments closed since the last sync, and
    /// the directory if a segment was created or renamed since. What a
    /// failed sync did not cover is left for the next one.
    pub(super) fn sync(&self) -> std::io::Result<()> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        for f in p.closed.iter().chain(p.current.iter()) {
            f.sync_data()?;
        }
        if p.dir_changed {
            sync_dir(&self.dir)?;
            p.dir_changed = false;
        }
        p.closed.clear();
        Ok(())
    }

    fn opened(&self, file: Arc<File>) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = p.current.replace(file) {
            p.closed.push(old);
        }
        p.dir_changed = true;
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

struct OpenSegment {
    first_seq: u64,
    file: Arc<File>,
    /// Where the next record goes (the bytes written so far).
    len: u64,
    /// A spare was asked for while this segment is open.
    spare_asked: bool,
}

/// What a segment holds: the last sequence number of each stream in it.
#[derive(Default)]
struct SegmentStreams(HashMap<String, u64>);

/// What opening the segments found.
#[derive(Debug, Default)]
pub(super) struct OpenStats {
    /// The largest sequence number in any segment.
    pub max_seq: Option<u64>,
    /// Segments whose tail was torn (cut back to their last whole record).
    pub torn: usize,
    /// Segments deleted at open (every record truncated, or none).
    pub deleted: usize,
}

/// The segment files of one WAL directory and the writer of the open one.
pub(super) struct SegmentLog {
    dir: PathBuf,
    segment_bytes: u64,
    open: Option<OpenSegment>,
    /// Reused frame buffer.
    buf: Vec<u8>,
    /// Every segment on disk by its first sequence number, the open one too.
    segments: BTreeMap<u64, SegmentStreams>,
    /// Per stream, the sequence numbers of its records not truncated yet.
    live: HashMap<String, VecDeque<u64>>,
    /// Per stream, the sequence number it was truncated through.
    marks: HashMap<String, u64>,
    /// The next record's sequence number.
    next_seq: u64,
    files: Arc<SyncFiles>,
    /// The next segment, made ahead.
    spare: Spare,
}

impl SegmentLog {
    /// Indexes the segments in `dir` (creating it), cutting torn tails back
    /// to their last whole record and deleting segments that hold nothing
    /// left after the truncation `marks`. Appends go to a new segment.
    pub(super) fn open(
        dir: &Path,
        marks: HashMap<String, u64>,
    ) -> Result<(Self, OpenStats), WalError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error("create the segment directory", e))?;
        let mut log = Self {
            dir: dir.to_path_buf(),
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            open: None,
            buf: Vec::new(),
            segments: BTreeMap::new(),
            live: HashMap::new(),
            marks,
            next_seq: 0,
            files: Arc::new(SyncFiles::new(dir.to_path_buf())),
            spare: Spare::new(dir),
        };
        let mut stats = OpenStats::default();
        for first_seq in list_segments(dir)? {
            let path = dir.join(segment_name(first_seq));
            let mut streams = SegmentStreams::default();
            let end = read_segment::<std::io::Error>(&path, |frame| {
                stats.max_seq = stats.max_seq.max(Some(frame.seq));
                let last = streams.0.entry(frame.stream.to_string()).or_insert(0);
                *last = (*last).max(frame.seq);
                if log.marks.get(frame.stream).is_none_or(|&m| frame.seq > m) {
                    log.live
                        .entry(frame.stream.to_string())
                        .or_default()
                        .push_back(frame.seq);
                }
                Ok(())
            })
            .map_err(|e| io_error(&format!("read {}", path.display()), e))?;
            let cut_at = match end {
                SegmentEnd::Clean => None,
                // A segment made ahead and never filled: its zeros go (no
                // record is ever appended to a segment found at open).
                SegmentEnd::Zeros { offset } => Some(offset),
                // Only a write a crash interrupted ends a segment early: it
                // was never acknowledged. Later writes start a new segment.
                SegmentEnd::Torn { offset, reason } => {
                    tracing::warn!(segment = %path.display(), offset, reason, "WAL segment ends in a torn record; cutting it there");
                    stats.torn += 1;
                    Some(offset)
                }
            };
            if let Some(offset) = cut_at {
                let cut = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_len(offset.max(SEGMENT_MAGIC.len() as u64)));
                cut.map_err(|e| io_error("cut a segment's tail", e))?;
            }
            log.segments.insert(first_seq, streams);
        }
        for path in log.settled_segments() {
            remove_segment(&path);
            stats.deleted += 1;
        }
        Ok((log, stats))
    }

    /// The files a sync must cover.
    pub(super) fn sync_files(&self) -> Arc<SyncFiles> {
        self.files.clone()
    }

    /// Sets the size past which the open segment is closed.
    pub(super) fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes.max(1);
    }

    /// Sets the next sequence number (at open: past every one ever used).
    pub(super) fn set_next_seq(&mut self, next: u64) {
        self.next_seq = self.next_seq.max(next);
    }

    /// The next record's sequence number.
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The segments on disk, oldest first (the open one last).
    pub(super) fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments
            .keys()
            .map(|s| self.dir.join(segment_name(*s)))
            .collect()
    }

    /// The sequence number `stream` was truncated through.
    pub(super) fn mark(&self, stream: &str) -> Option<u64> {
        self.marks.get(stream).copied()
    }

    /// Appends `record` to `stream` with the next sequence number, which it
    /// returns; durable once the next [`SyncFiles::sync`] returns.
    pub(super) fn append(&mut self, stream: &str, record: &[u8]) -> Result<u64, WalError> {
        let seq = self.next_seq;
        self.buf.clear();
        encode_frame(&mut self.buf, seq, stream, record).map_err(WalError::Encode)?;
        let full = self.open.as_ref().is_none_or(|s| {
            s.len > SEGMENT_MAGIC.len() as u64 && s.len + self.buf.len() as u64 > self.segment_bytes
        });
        if full {
            self.start_segment(seq)?;
        }
        let Some(open) = self.open.as_mut() else {
            return Err(WalError::Sync("no open segment".into()));
        };
        if let Err(e) = open.file.write_all_at(&self.buf, open.len) {
            // Cut a partial write off so the segment stays whole (a made-
            // ahead segment loses its zeros: it grows from there); if even
            // that fails, the next append starts a new segment, under a name
            // of its own (this record's number is not used again).
            if open.file.set_len(open.len).is_err() {
                self.open = None;
                self.next_seq += 1;
            }
            return Err(io_error("write a record", e));
        }
        open.len += self.buf.len() as u64;
        if !open.spare_asked && open.len >= self.segment_bytes / 2 {
            open.spare_asked = true;
            self.spare.prepare(self.segment_bytes);
        }
        let first_seq = open.first_seq;
        self.next_seq += 1;
        let streams = self.segments.entry(first_seq).or_default();
        match streams.0.get_mut(stream) {
            Some(last) => *last = seq,
            None => {
                streams.0.insert(stream.to_string(), seq);
            }
        }
        match self.live.get_mut(stream) {
            Some(seqs) => seqs.push_back(seq),
            None => {
                self.live.insert(stream.to_string(), VecDeque::from([seq]));
            }
        }
        Ok(seq)
    }

    fn start_segment(&mut self, first_seq: u64) -> Result<(), WalError> {
        let path = self.dir.join(segment_name(first_seq));
        let file = match self.spare.take() {
            Some((file, spare)) => match rename_new(&spare, &path) {
                Ok(()) => file,
                Err(e) => {
                    tracing::warn!(spare = %spare.display(), error = %e, "cannot use a prepared WAL segment");
                    remove_segment(&spare);
                    create_segment(&path)?
                }
            },
            None => create_segment(&path)?,
        };
        if let Err(e) = file.write_all_at(SEGMENT_MAGIC, 0) {
            remove_segment(&path);
            return Err(io_error("write a segment header", e));
        }
        let file = Arc::new(file);
        self.files.opened(file.clone());
        self.segments.insert(first_seq, SegmentStreams::default());
        self.open = Some(OpenSegment {
            first_seq,
            file,
            len: SEGMENT_MAGIC.len() as u64,
            spare_asked: false,
        });
        Ok(())
    }

    /// Waits until no spare segment is being prepared (tests).
    #[cfg(test)]
    pub(super) fn settle_spare(&self) {
        self.spare.settle();
    }

    /// Truncates `stream` through `seq`: returns how many of its records
    /// that dropped and the closed segments that hold nothing left (for the
    /// caller to delete once the mark is durable).
    pub(super) fn truncate(&mut self, stream: &str, seq: u64) -> (u64, Vec<PathBuf>) {
        let mark = self.marks.entry(stream.to_string()).or_insert(seq);
        *mark = (*mark).max(seq);
        let mut removed = 0;
        if let Some(seqs) = self.live.get_mut(stream) {
            while seqs.front().is_some_and(|&s| s <= seq) {
                seqs.pop_front();
                removed += 1;
            }
            if seqs.is_empty() {
                self.live.remove(stream);
            }
        }
        (removed, self.settled_segments())
    }

    /// The truncation marks, to persist.
    pub(super) fn marks(&self) -> &HashMap<String, u64> {
        &self.marks
    }

    /// Removes from the index, and returns, the closed segments whose every
    /// stream is truncated past its last record there.
    fn settled_segments(&mut self) -> Vec<PathBuf> {
        let open = self.open.as_ref().map(|s| s.first_seq);
        let settled: Vec<u64> = self
            .segments
            .iter()
            .filter(|(first, _)| Some(**first) != open)
            .filter(|(_, streams)| {
                streams
                    .0
                    .iter()
                    .all(|(stream, last)| self.marks.get(stream).is_some_and(|m| m >= last))
            })
            .map(|(first, _)| *first)
            .collect();
        settled
            .into_iter()
            .map(|first| {
                self.segments.remove(&first);
                self.dir.join(segment_name(first))
            })
            .collect()
    }

    /// Records not truncated yet, over all streams.
    pub(super) fn len(&self) -> usize {
        self.live.values().map(VecDeque::len).sum()
    }
}

/// Renames `from` to `to`, refusing to replace a file already there.
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!("{} exists", to.display()),
        ));
    }
    std::fs::rename(from, to)
}

/// Creates an empty segment file at `path`.
fn create_segment(path: &Path) -> Result<File, WalError> {
    OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(path)
        .map_err(|e| io_error("create a segment", e))
}

/// Deletes a segment file; one already gone is fine, another failure is
/// logged (the file is deleted at the next open).
pub(super) fn remove_segment(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            tracing::warn!(segment = %path.display(), error = %e, "cannot delete a WAL segment")
        }
    }
}

/// The first sequence numbers of the segments in `dir`, in order.
fn list_segments(dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error("list the segments", e))? {
        let entry = entry.map_err(|e| io_error("list the segments", e))?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// A file operation of the WAL that failed.
pub(super) fn io_error(what: &str, e: std::io::Error) -> WalError {
    WalError::Io(format!("cannot {what}: {e}"))
}
