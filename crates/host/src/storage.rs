//! Ledger files on disk, in CCF's chunk format (ccf-reference §1.1–1.2, §1.11), with group
//! commit: many entries are written, then one fsync makes all of them durable.
//!
//! Durability protocol (docs/protocols/ledger-write.md):
//! 1. Entries are appended to the open chunk `ledger_<start>` (header = 8 zero bytes).
//! 2. After a batch, the open chunk is `fdatasync`ed (and the directory, if the chunk is new);
//!    only then does the core hear `Persisted{seqno}` — so nothing is reported committed before
//!    it is on disk.
//! 3. An entry flagged `FORCE_LEDGER_CHUNK_AFTER` completes its chunk: positions table appended,
//!    header rewritten with the table's offset, file fsynced, renamed `ledger_<start>-<end>`,
//!    directory fsynced; a new chunk starts with the next entry.
//! 4. When the core reports a global commit at or past a completed chunk's end, the chunk is
//!    renamed `ledger_<start>-<end>.committed` and the directory fsynced.
//!
//! All file operations go through [`Disk`], so tests can inject failed writes and fsyncs.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use coco_codec::chunk::{self, ChunkName};
use coco_types::SeqNo;

/// The file operations the ledger needs. Implemented by [`RealDisk`]; tests wrap it to inject
/// faults.
pub trait Disk: Send + 'static {
    fn create_new(&mut self, path: &Path) -> io::Result<File>;
    fn write_all(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()>;
    fn write_at(&mut self, file: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()>;
    fn sync_data(&mut self, file: &mut File) -> io::Result<()>;
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    /// Opens an existing file for reading and writing (a chunk reopened by truncation).
    fn open_existing(&mut self, path: &Path) -> io::Result<File>;
    fn set_len(&mut self, file: &mut File, len: u64) -> io::Result<()>;
    fn remove(&mut self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Default)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn create_new(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }
    fn write_all(&mut self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        file.write_all(bytes)
    }
    fn write_at(&mut self, file: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let end = file.stream_position()?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)?;
        file.seek(SeekFrom::Start(end))?;
        Ok(())
    }
    fn sync_data(&mut self, file: &mut File) -> io::Result<()> {
        file.sync_data()
    }
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn open_existing(&mut self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }
    fn set_len(&mut self, file: &mut File, len: u64) -> io::Result<()> {
        file.set_len(len)?;
        file.seek(SeekFrom::Start(len))?;
        Ok(())
    }
    fn remove(&mut self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
}

struct OpenChunk {
    start: SeqNo,
    last: SeqNo,
    file: File,
    path: PathBuf,
    len_bytes: u64,
    positions: Vec<u32>,
    needs_dir_sync: bool,
    /// Bytes appended but not yet handed to the file system: a storage batch becomes one
    /// `write` instead of one per entry.
    pending: Vec<u8>,
}

impl OpenChunk {
    fn flush<D: Disk>(&mut self, disk: &mut D) -> io::Result<()> {
        if !self.pending.is_empty() {
            disk.write_all(&mut self.file, &self.pending)?;
            self.pending.clear();
        }
        Ok(())
    }
}

/// A complete chunk waiting for its last entry to be globally committed.
struct CompleteChunk {
    start: SeqNo,
    end: SeqNo,
    path: PathBuf,
}

/// Writes a node's ledger directory.
pub struct LedgerWriter<D: Disk> {
    dir: PathBuf,
    disk: D,
    open: Option<OpenChunk>,
    complete: Vec<CompleteChunk>,
    last_seqno: SeqNo,
    /// The last seqno reported committed (nothing at or below it is ever truncated).
    committed_seqno: SeqNo,
    /// Set by the first I/O error: after it the writer refuses everything (fail-stop).
    failed: Option<String>,
    read_cache: Option<ReadChunk>,
    /// `ledger.read_only_directories`: committed chunks from elsewhere (e.g. the history before
    /// the snapshot this node started from), read when this node's own files lack an entry.
    read_only: Vec<PathBuf>,
    /// A disaster recovery is under way: new chunks are named `….recovery` until it ends.
    recovery: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(
        "ledger directory {0} is not empty; starting from an existing ledger is done by recovery"
    )]
    NotEmpty(PathBuf),
    #[error("ledger I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("ledger writer has failed earlier ({0}) and accepts nothing more")]
    Failed(String),
    #[error("entry {got} appended out of order after {last}")]
    OutOfOrder { last: SeqNo, got: SeqNo },
    #[error("chunk starting at {0} would exceed the 4 GiB limit of CCF's u32 positions table")]
    ChunkTooLarge(SeqNo),
    #[error("cannot truncate the ledger to {to}: entries up to {committed} are committed")]
    TruncateCommitted { to: SeqNo, committed: SeqNo },
    #[error("ledger entry {0} is not on disk")]
    Missing(SeqNo),
    #[error("ledger chunk {path} is unreadable: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// A complete chunk read back for [`LedgerWriter::read_entries`] (complete chunks never change,
/// so the last one read is kept).
struct ReadChunk {
    start: SeqNo,
    end: SeqNo,
    /// An open chunk may still grow or be truncated: it is not kept.
    complete: bool,
    bytes: bytes::Bytes,
    entries: Vec<chunk::ScannedEntry>,
}

impl<D: Disk> LedgerWriter<D> {
    /// Opens a new, empty ledger directory (creating it if needed).
    pub fn create(dir: &Path, disk: D) -> Result<Self, StorageError> {
        let io = |source| StorageError::Io {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        if std::fs::read_dir(dir).map_err(io)?.next().is_some() {
            return Err(StorageError::NotEmpty(dir.to_owned()));
        }
        Ok(Self::empty(dir, disk))
    }

    fn empty(dir: &Path, disk: D) -> Self {
        LedgerWriter {
            dir: dir.to_owned(),
            disk,
            open: None,
            complete: Vec::new(),
            last_seqno: 0,
            committed_seqno: 0,
            failed: None,
            read_cache: None,
            read_only: Vec::new(),
            recovery: false,
        }
    }

    /// Opens a dead service's ledger directory for a disaster recovery (CCF `Recover`): repairs
    /// a torn final entry, sets aside the files of an abandoned earlier recovery (`.ignored`),
    /// and reads the entries after `after` back (the recovery's committed snapshot, 0 for
    /// none) — the chunks must hold seqnos 1.. (or from at most `after + 1` on) without gaps;
    /// chunks wholly before `after` are not read. Returns the writer, positioned after the last
    /// entry, and the entries after `after`.
    pub fn open_for_recovery(
        dir: &Path,
        disk: D,
        after: SeqNo,
    ) -> Result<(Self, Vec<bytes::Bytes>), StorageError> {
        let io = |source| StorageError::Io {
            path: dir.to_owned(),
            source,
        };
        if !dir.is_dir() {
            return Err(StorageError::Io {
                path: dir.to_owned(),
                source: io::Error::new(io::ErrorKind::NotFound, "no ledger directory to recover"),
            });
        }
        repair_torn_tail(dir).map_err(io)?;
        let mut writer = Self::empty(dir, disk);
        let mut chunks = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let Some(name) = ChunkName::parse(&e.file_name().to_string_lossy()) else {
                continue;
            };
            if name.ignored {
                continue;
            }
            if name.recovery {
                let to = dir.join(
                    ChunkName {
                        ignored: true,
                        ..name
                    }
                    .to_string(),
                );
                writer
                    .disk
                    .rename(&e.path(), &to)
                    .map_err(|source| StorageError::Io {
                        path: e.path(),
                        source,
                    })?;
                continue;
            }
            chunks.push((name, e.path()));
        }
        chunks.sort_by_key(|(name, _)| name.start);
        // After a snapshot the ledger before it may be missing: it starts at most just after it.
        let mut next: SeqNo = match chunks.first() {
            Some((name, _)) if after > 0 && name.start > 1 && name.start <= after + 1 => name.start,
            _ => 1,
        };
        writer.committed_seqno = next - 1;
        let mut entries = Vec::new();
        for (k, (name, path)) in chunks.iter().enumerate() {
            let corrupt = |message: String| StorageError::Corrupt {
                path: path.clone(),
                message,
            };
            if name.start != next {
                return Err(corrupt(format!(
                    "starts at {} where seqno {next} was expected: the ledger has a gap or \
                     overlapping chunks",
                    name.start
                )));
            }
            if let Some(end) = name.end
                && end <= after
            {
                // Wholly covered by the snapshot: not read.
                if name.committed {
                    writer.committed_seqno = end;
                } else {
                    writer.complete.push(CompleteChunk {
                        start: name.start,
                        end,
                        path: path.clone(),
                    });
                }
                next = end + 1;
                continue;
            }
            let bytes =
                bytes::Bytes::from(std::fs::read(path).map_err(|source| StorageError::Io {
                    path: path.clone(),
                    source,
                })?);
            let scan = chunk::scan_chunk(&bytes).map_err(|e| corrupt(e.to_string()))?;
            if scan.first_seqno().is_some_and(|f| f != next) {
                return Err(corrupt(format!(
                    "holds seqno {} first where {next} was expected",
                    scan.first_seqno().unwrap_or_default()
                )));
            }
            if name.end.is_none() && k + 1 != chunks.len() {
                return Err(corrupt("an open chunk that is not the last one".into()));
            }
            if let Some(end) = name.end
                && scan.last_seqno() != Some(end)
            {
                return Err(corrupt(format!("does not end at entry {end}")));
            }
            for (i, e) in scan.entries.iter().enumerate() {
                if next + i as SeqNo > after {
                    entries.push(bytes.slice(e.range()));
                }
            }
            next += scan.entries.len() as SeqNo;
            let last = next - 1;
            match name.end {
                None => {
                    let file =
                        writer
                            .disk
                            .open_existing(path)
                            .map_err(|source| StorageError::Io {
                                path: path.clone(),
                                source,
                            })?;
                    let len_bytes = scan
                        .entries
                        .last()
                        .map(|e| e.offset + e.len_bytes)
                        .unwrap_or(chunk::CHUNK_HEADER_SIZE_BYTES as u64);
                    let mut file = file;
                    writer
                        .disk
                        .set_len(&mut file, len_bytes)
                        .map_err(|source| StorageError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    writer.open = Some(OpenChunk {
                        start: name.start,
                        last,
                        file,
                        path: path.clone(),
                        len_bytes,
                        positions: scan.entries.iter().map(|e| e.offset as u32).collect(),
                        needs_dir_sync: false,
                        pending: Vec::new(),
                    });
                }
                Some(end) if name.committed => writer.committed_seqno = end,
                Some(end) => writer.complete.push(CompleteChunk {
                    start: name.start,
                    end,
                    path: path.clone(),
                }),
            }
        }
        writer.last_seqno = next - 1;
        if writer.last_seqno < after {
            if writer.last_seqno > 0 {
                return Err(StorageError::Corrupt {
                    path: dir.to_owned(),
                    message: format!(
                        "the ledger ends at seqno {}, before the snapshot at {after}",
                        writer.last_seqno
                    ),
                });
            }
            // No ledger at all: the recovery starts from the snapshot alone.
            writer.last_seqno = after;
            writer.committed_seqno = after;
        }
        Ok((writer, entries))
    }

    /// The recovery starts after entry `last` (the dead service's last signature): everything
    /// after it is discarded, the ledger up to it is closed and committed, and new chunks are
    /// `….recovery` files until [`Self::complete_recovery`].
    pub fn begin_recovery_after(&mut self, last: SeqNo) -> Result<(), StorageError> {
        self.truncate(last)?;
        self.complete_open_chunk()?;
        self.commit(last)?;
        self.recovery = true;
        Ok(())
    }

    /// The recovered service opened: `.recovery` files take their ordinary names.
    pub fn complete_recovery(&mut self) -> Result<(), StorageError> {
        self.check()?;
        if !self.recovery {
            return Ok(());
        }
        self.recovery = false;
        self.read_cache = None;
        let dir = self.dir.clone();
        let names = std::fs::read_dir(&dir)
            .and_then(|entries| {
                entries
                    .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect::<io::Result<Vec<String>>>()
            })
            .map_err(|e| self.fail(&dir, e))?;
        for file in names {
            let Some(name) = ChunkName::parse(&file).filter(|n| n.recovery && !n.ignored) else {
                continue;
            };
            let from = dir.join(&file);
            let to = dir.join(
                ChunkName {
                    recovery: false,
                    ..name
                }
                .to_string(),
            );
            if let Err(e) = self.disk.rename(&from, &to) {
                return Err(self.fail(&from, e));
            }
            if let Some(open) = self.open.as_mut().filter(|o| o.path == from) {
                open.path = to.clone();
            }
            for c in self.complete.iter_mut().filter(|c| c.path == from) {
                c.path = to.clone();
            }
        }
        if let Err(e) = self.disk.sync_dir(&dir) {
            return Err(self.fail(&dir, e));
        }
        Ok(())
    }

    pub fn last_seqno(&self) -> SeqNo {
        self.last_seqno
    }

    /// Where committed chunks this ledger does not hold may be read from.
    pub fn set_read_only_directories(&mut self, dirs: Vec<PathBuf>) {
        self.read_only = dirs;
    }

    /// The node starts from a committed snapshot at `seqno`: its ledger begins after it.
    /// Only before the first append.
    pub fn start_after(&mut self, seqno: SeqNo) {
        assert!(
            self.open.is_none() && self.complete.is_empty() && self.last_seqno == 0,
            "a ledger's start is set before anything is written"
        );
        self.last_seqno = seqno;
        self.committed_seqno = seqno;
    }

    fn check(&self) -> Result<(), StorageError> {
        match &self.failed {
            Some(reason) => Err(StorageError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, path: &Path, source: io::Error) -> StorageError {
        let reason = format!("{}: {source}", path.display());
        self.failed.get_or_insert(reason);
        StorageError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// Appends one serialised entry. `force_chunk_after` completes the chunk after it.
    pub fn append(
        &mut self,
        seqno: SeqNo,
        entry: &[u8],
        force_chunk_after: bool,
    ) -> Result<(), StorageError> {
        self.check()?;
        if seqno != self.last_seqno + 1 {
            return Err(StorageError::OutOfOrder {
                last: self.last_seqno,
                got: seqno,
            });
        }
        if self.open.is_none() {
            let name = ChunkName {
                start: seqno,
                end: None,
                committed: false,
                recovery: self.recovery,
                ignored: false,
            };
            let path = self.dir.join(name.to_string());
            let file = match self.disk.create_new(&path) {
                Ok(f) => f,
                Err(e) => return Err(self.fail(&path, e)),
            };
            self.open = Some(OpenChunk {
                start: seqno,
                last: seqno - 1,
                file,
                path,
                len_bytes: chunk::CHUNK_HEADER_SIZE_BYTES as u64,
                positions: Vec::new(),
                needs_dir_sync: true,
                pending: chunk::OPEN_CHUNK_HEADER.to_vec(),
            });
        }
        let open = self.open.as_mut().expect("opened above");
        let offset = open.len_bytes;
        if offset + entry.len() as u64 > coco_types::limits::LEDGER_CHUNK_SIZE_BYTES_MAX {
            return Err(StorageError::ChunkTooLarge(open.start));
        }
        open.pending.extend_from_slice(entry);
        open.positions.push(offset as u32);
        open.len_bytes += entry.len() as u64;
        open.last = seqno;
        self.last_seqno = seqno;
        if force_chunk_after {
            self.complete_open_chunk()?;
        }
        Ok(())
    }

    /// Writes the positions table and header of the open chunk and fsyncs it.
    fn complete_open_chunk(&mut self) -> Result<(), StorageError> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        let table = chunk::positions_table(&open.positions);
        let table_offset = open.len_bytes;
        open.pending.extend_from_slice(&table);
        // CCF's name for a complete chunk not yet committed: `ledger_<start>-<end>`.
        let name = ChunkName {
            start: open.start,
            end: Some(open.last),
            committed: false,
            recovery: self.recovery,
            ignored: false,
        };
        let complete_path = self.dir.join(name.to_string());
        let result = (|| {
            open.flush(&mut self.disk)?;
            self.disk
                .write_at(&mut open.file, 0, &table_offset.to_le_bytes())?;
            self.disk.sync_data(&mut open.file)?;
            // Renamed only once its bytes are durable, so a complete name never labels a torn file.
            self.disk.rename(&open.path, &complete_path)?;
            self.disk.sync_dir(&self.dir)
        })();
        if let Err(e) = result {
            let path = open.path.clone();
            return Err(self.fail(&path, e));
        }
        self.complete.push(CompleteChunk {
            start: open.start,
            end: open.last,
            path: complete_path,
        });
        Ok(())
    }

    /// Makes everything appended so far durable. Returns the last durable seqno.
    pub fn sync(&mut self) -> Result<SeqNo, StorageError> {
        self.check()?;
        if let Some(open) = self.open.as_mut() {
            if let Err(e) = open
                .flush(&mut self.disk)
                .and_then(|()| self.disk.sync_data(&mut open.file))
            {
                let path = open.path.clone();
                return Err(self.fail(&path, e));
            }
            if open.needs_dir_sync {
                if let Err(e) = self.disk.sync_dir(&self.dir) {
                    let dir = self.dir.clone();
                    return Err(self.fail(&dir, e));
                }
                if let Some(open) = self.open.as_mut() {
                    open.needs_dir_sync = false;
                }
            }
        }
        Ok(self.last_seqno)
    }

    /// Discards every entry after `to` (a suffix the consensus core rolled back; never committed)
    /// and makes the truncation durable. A complete chunk that `to` falls inside is reopened:
    /// its positions table goes and it takes its open name again.
    pub fn truncate(&mut self, to: SeqNo) -> Result<(), StorageError> {
        self.check()?;
        if to < self.committed_seqno {
            return Err(StorageError::TruncateCommitted {
                to,
                committed: self.committed_seqno,
            });
        }
        if to >= self.last_seqno {
            return Ok(());
        }
        self.read_cache = None;
        if let Some(open) = &self.open
            && open.start > to
        {
            let open = self.open.take().expect("checked");
            drop(open.file);
            if let Err(e) = self.disk.remove(&open.path) {
                return Err(self.fail(&open.path, e));
            }
        }
        if self.open.is_none() {
            // The chunk holding `to + 1`, if any, is the last complete one: reopen it.
            while let Some(c) = self.complete.last() {
                if c.start > to {
                    let c = self.complete.pop().expect("checked");
                    if let Err(e) = self.disk.remove(&c.path) {
                        return Err(self.fail(&c.path, e));
                    }
                    continue;
                }
                if c.end > to {
                    let c = self.complete.pop().expect("checked");
                    self.reopen(c)?;
                }
                break;
            }
        }
        if let Some(open) = self.open.as_mut()
            && open.last > to
        {
            let keep = (to + 1 - open.start) as usize;
            let len = open.positions[keep] as u64;
            open.positions.truncate(keep);
            open.last = to;
            open.len_bytes = len;
            let result = open
                .flush(&mut self.disk)
                .and_then(|()| self.disk.set_len(&mut open.file, len))
                .and_then(|()| self.disk.sync_data(&mut open.file));
            if let Err(e) = result {
                let path = open.path.clone();
                return Err(self.fail(&path, e));
            }
        }
        if let Err(e) = self.disk.sync_dir(&self.dir) {
            let dir = self.dir.clone();
            return Err(self.fail(&dir, e));
        }
        self.last_seqno = to;
        Ok(())
    }

    /// Makes a complete chunk the open chunk again: drops its positions table, zeroes the
    /// header, renames it `ledger_<start>`.
    fn reopen(&mut self, c: CompleteChunk) -> Result<(), StorageError> {
        let bytes = std::fs::read(&c.path).map_err(|e| self.fail(&c.path, e))?;
        let scan = chunk::scan_chunk(&bytes).map_err(|e| StorageError::Corrupt {
            path: c.path.clone(),
            message: e.to_string(),
        })?;
        let positions: Vec<u32> = scan.entries.iter().map(|e| e.offset as u32).collect();
        let data_end = scan
            .entries
            .last()
            .map(|e| e.offset + e.len_bytes)
            .unwrap_or(chunk::CHUNK_HEADER_SIZE_BYTES as u64);
        let open_path = self.dir.join(
            ChunkName {
                recovery: self.recovery,
                ..ChunkName::open(c.start)
            }
            .to_string(),
        );
        let result = (|| {
            let mut file = self.disk.open_existing(&c.path)?;
            self.disk.set_len(&mut file, data_end)?;
            self.disk
                .write_at(&mut file, 0, &chunk::OPEN_CHUNK_HEADER)?;
            self.disk.sync_data(&mut file)?;
            self.disk.rename(&c.path, &open_path)?;
            Ok(file)
        })();
        let file = result.map_err(|e| self.fail(&c.path, e))?;
        self.open = Some(OpenChunk {
            start: c.start,
            last: c.end,
            file,
            path: open_path,
            len_bytes: data_end,
            positions,
            needs_dir_sync: true,
            pending: Vec::new(),
        });
        Ok(())
    }

    /// Reads entries `from..=to` back from the ledger files (a lagging peer needs entries the
    /// consensus core no longer holds).
    pub fn read_entries(
        &mut self,
        from: SeqNo,
        to: SeqNo,
    ) -> Result<Vec<bytes::Bytes>, StorageError> {
        self.check()?;
        if from == 0 || to > self.last_seqno || from > to {
            return Err(StorageError::Missing(if from == 0 { 0 } else { to }));
        }
        if let Some(open) = self.open.as_mut()
            && let Err(e) = open.flush(&mut self.disk)
        {
            let path = open.path.clone();
            return Err(self.fail(&path, e));
        }
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        let mut seqno = from;
        while seqno <= to {
            let cached = self
                .read_cache
                .as_ref()
                .is_some_and(|c| c.start <= seqno && seqno <= c.end);
            if !cached {
                self.read_cache = Some(self.load_chunk_with(seqno)?);
            }
            let c = self.read_cache.as_ref().expect("loaded");
            let last = to.min(c.end);
            for s in seqno..=last {
                let e = &c.entries[(s - c.start) as usize];
                out.push(c.bytes.slice(e.range()));
            }
            seqno = last + 1;
            if !c.complete {
                self.read_cache = None;
            }
        }
        Ok(out)
    }

    /// Loads the chunk file that holds `seqno`.
    fn load_chunk_with(&mut self, seqno: SeqNo) -> Result<ReadChunk, StorageError> {
        let io = |source| StorageError::Io {
            path: self.dir.clone(),
            source,
        };
        let mut best: Option<(ChunkName, PathBuf)> = None;
        for e in std::fs::read_dir(&self.dir).map_err(io)? {
            let e = e.map_err(io)?;
            let Some(name) = ChunkName::parse(&e.file_name().to_string_lossy()) else {
                continue;
            };
            let holds = name.start <= seqno && name.end.is_none_or(|end| seqno <= end);
            // This node's own `.recovery` files are part of its ledger (stale ones from an
            // abandoned recovery were set aside as `.ignored`).
            if holds && !name.ignored && best.as_ref().is_none_or(|(b, _)| name.start > b.start) {
                best = Some((name, e.path()));
            }
        }
        if best.is_none() {
            // Only committed chunks are taken from read-only directories: they are immutable
            // and identical on every node.
            'dirs: for dir in &self.read_only {
                let Ok(entries) = std::fs::read_dir(dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    if let Some(name) = ChunkName::parse(&e.file_name().to_string_lossy())
                        && name.committed
                        && !name.ignored
                        && !name.recovery
                        && name.start <= seqno
                        && name.end.is_some_and(|end| seqno <= end)
                    {
                        best = Some((name, e.path()));
                        break 'dirs;
                    }
                }
            }
        }
        let (name, path) = best.ok_or(StorageError::Missing(seqno))?;
        let bytes =
            bytes::Bytes::from(std::fs::read(&path).map_err(|source| StorageError::Io {
                path: path.clone(),
                source,
            })?);
        let scan = chunk::scan_chunk(&bytes).map_err(|e| StorageError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let last = scan.last_seqno().ok_or(StorageError::Missing(seqno))?;
        if scan.first_seqno() != Some(name.start) || last < seqno {
            return Err(StorageError::Corrupt {
                path,
                message: format!("does not hold entry {seqno}"),
            });
        }
        Ok(ReadChunk {
            start: name.start,
            end: last,
            complete: name.end.is_some(),
            bytes,
            entries: scan.entries,
        })
    }

    /// Renames every complete chunk that ends at or before `seqno` to its committed name.
    pub fn commit(&mut self, seqno: SeqNo) -> Result<(), StorageError> {
        self.check()?;
        self.committed_seqno = self.committed_seqno.max(seqno);
        let mut renamed = false;
        while let Some(c) = self.complete.first() {
            if c.end > seqno {
                break;
            }
            let c = self.complete.remove(0);
            let name = ChunkName {
                start: c.start,
                end: Some(c.end),
                committed: true,
                recovery: self.recovery,
                ignored: false,
            };
            let to = self.dir.join(name.to_string());
            if let Err(e) = self.disk.rename(&c.path, &to) {
                return Err(self.fail(&c.path, e));
            }
            renamed = true;
        }
        if renamed && let Err(e) = self.disk.sync_dir(&self.dir) {
            let dir = self.dir.clone();
            return Err(self.fail(&dir, e));
        }
        Ok(())
    }
}

/// What [`repair_torn_tail`] found in a ledger directory's open chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum TailRepair {
    /// No open chunk, or its end is a whole entry.
    Clean,
    /// The open chunk ended in a partial entry, now truncated away.
    Truncated {
        file: PathBuf,
        valid_len_bytes: u64,
        removed_bytes: u64,
        reason: String,
    },
}

/// Detects and truncates a torn final entry (a crash in the middle of an append) in the open
/// (uncommitted, incomplete) chunk of `dir`. Complete and committed chunks are never modified:
/// damage there is corruption, reported by `coco ledger verify`, not repaired.
pub fn repair_torn_tail(dir: &Path) -> io::Result<TailRepair> {
    let mut open_chunks: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(c) = ChunkName::parse(&name)
            && c.end.is_none()
            && !c.committed
            && !c.ignored
            && !c.recovery
        {
            open_chunks.push((c.start, e.path()));
        }
    }
    open_chunks.sort();
    let Some((_, path)) = open_chunks.pop() else {
        return Ok(TailRepair::Clean);
    };
    let mut bytes = Vec::new();
    File::open(&path)?.read_to_end(&mut bytes)?;
    let (valid, reason) = match chunk::scan_chunk(&bytes) {
        // A crash between creating the file and writing its header: an empty open chunk.
        Err(chunk::ChunkError::HeaderTruncated { .. }) => (
            chunk::CHUNK_HEADER_SIZE_BYTES as u64,
            "partial chunk header".to_owned(),
        ),
        Err(e) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            ));
        }
        Ok(scan) => match scan.state {
            chunk::ChunkState::Complete { .. } => return Ok(TailRepair::Clean),
            chunk::ChunkState::Open {
                torn_tail: None, ..
            } => return Ok(TailRepair::Clean),
            chunk::ChunkState::Open {
                valid_len,
                torn_tail: Some(t),
            } => (valid_len, format!("{:?} at offset {}", t.kind, t.offset)),
        },
    };
    let f = OpenOptions::new().write(true).open(&path)?;
    // For a partial header this extends the file with zeros: the header of an open chunk.
    f.set_len(valid)?;
    f.sync_all()?;
    let removed_bytes = (bytes.len() as u64).saturating_sub(valid);
    Ok(TailRepair::Truncated {
        file: path,
        valid_len_bytes: valid,
        removed_bytes,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coco_codec::WriteSet;
    use coco_codec::entry::{EntryBuilder, EntryFlags};
    use coco_types::TxId;

    fn entry(seqno: SeqNo) -> Vec<u8> {
        let mut ws = WriteSet::default();
        ws.put(
            "public:records",
            bytes::Bytes::from(seqno.to_string()),
            bytes::Bytes::from_static(b"\"v\""),
        );
        EntryBuilder::for_write_set(
            EntryFlags::NONE,
            TxId::new(2, seqno),
            &[0; 32],
            &[1; 32],
            &ws,
        )
        .unwrap()
        .finish(&[7; 16])
    }

    /// Writes `n` entries into a fresh ledger dir and returns (dir, open chunk path, its length).
    fn ledger_with(n: u64) -> (tempfile::TempDir, PathBuf, u64) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LedgerWriter::create(dir.path(), RealDisk).unwrap();
        for s in 1..=n {
            w.append(s, &entry(s), false).unwrap();
        }
        w.sync().unwrap();
        let path = dir.path().join("ledger_1");
        let len = std::fs::metadata(&path).unwrap().len();
        (dir, path, len)
    }

    #[test]
    fn entries_before_a_snapshot_start_come_from_read_only_directories() {
        // Another node's ledger, committed in two chunks.
        let old = tempfile::tempdir().unwrap();
        let mut w = LedgerWriter::create(old.path(), RealDisk).unwrap();
        for s in 1..=6 {
            w.append(s, &entry(s), s == 3 || s == 6).unwrap();
        }
        w.sync().unwrap();
        w.commit(6).unwrap();
        // This node started from a snapshot at 6 and wrote 7..=8 itself.
        let dir = tempfile::tempdir().unwrap();
        let mut w = LedgerWriter::create(dir.path(), RealDisk).unwrap();
        w.start_after(6);
        for s in 7..=8 {
            w.append(s, &entry(s), false).unwrap();
        }
        w.sync().unwrap();
        assert!(matches!(
            w.read_entries(2, 4),
            Err(StorageError::Missing(2))
        ));
        w.set_read_only_directories(vec![PathBuf::from("/nonexistent"), old.path().to_owned()]);
        let got = w.read_entries(2, 8).unwrap();
        let want: Vec<Vec<u8>> = (2..=8).map(entry).collect();
        assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), want);
    }

    #[test]
    fn torn_tails_are_truncated_to_whole_entries() {
        let whole = entry(4);
        // (description, bytes appended after 3 whole entries)
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("partial entry header", whole[..5].to_vec()),
            (
                "header promising more than was written",
                whole[..whole.len() - 1].to_vec(),
            ),
            ("half an entry", whole[..whole.len() / 2].to_vec()),
            ("zeros from a preallocated tail", vec![0; 100]),
            (
                "a positions table written before the header was",
                [8u32, 60, 120]
                    .iter()
                    .flat_map(|p| p.to_le_bytes())
                    .collect(),
            ),
        ];
        for (what, tail) in cases {
            let (dir, path, len) = ledger_with(3);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&tail);
            std::fs::write(&path, &bytes).unwrap();
            match repair_torn_tail(dir.path()).unwrap() {
                TailRepair::Truncated {
                    valid_len_bytes,
                    removed_bytes,
                    ..
                } => {
                    assert_eq!(valid_len_bytes, len, "{what}");
                    assert_eq!(removed_bytes, tail.len() as u64, "{what}");
                }
                TailRepair::Clean => panic!("{what}: torn tail not detected"),
            }
            assert_eq!(std::fs::metadata(&path).unwrap().len(), len, "{what}");
            assert_eq!(
                repair_torn_tail(dir.path()).unwrap(),
                TailRepair::Clean,
                "{what}: second repair"
            );
            let scan = chunk::scan_chunk(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(scan.last_seqno(), Some(3), "{what}");
        }
    }

    #[test]
    fn a_clean_ledger_is_left_alone() {
        let (dir, path, len) = ledger_with(5);
        assert_eq!(repair_torn_tail(dir.path()).unwrap(), TailRepair::Clean);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    }

    #[test]
    fn a_partial_chunk_header_becomes_an_empty_open_chunk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ledger_1"), [0u8; 3]).unwrap();
        assert!(matches!(
            repair_torn_tail(dir.path()).unwrap(),
            TailRepair::Truncated {
                valid_len_bytes: 8,
                ..
            }
        ));
        assert_eq!(
            std::fs::read(dir.path().join("ledger_1")).unwrap(),
            vec![0u8; 8]
        );
    }

    #[test]
    fn chunks_complete_and_commit_with_ccf_names() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LedgerWriter::create(dir.path(), RealDisk).unwrap();
        for s in 1..=3 {
            w.append(s, &entry(s), s == 3).unwrap();
        }
        w.append(4, &entry(4), false).unwrap();
        w.sync().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["ledger_1-3", "ledger_4"]);
        w.commit(2).unwrap();
        assert!(
            dir.path().join("ledger_1-3").exists(),
            "a chunk is committed only once its last entry is"
        );
        w.commit(3).unwrap();
        assert!(dir.path().join("ledger_1-3.committed").exists());
        let bytes = std::fs::read(dir.path().join("ledger_1-3.committed")).unwrap();
        let scan = chunk::scan_chunk(&bytes).unwrap();
        assert!(scan.is_complete());
        assert_eq!(scan.entries.len(), 3);
        assert!(matches!(
            LedgerWriter::create(dir.path(), RealDisk),
            Err(StorageError::NotEmpty(_))
        ));
        assert!(matches!(
            w.append(6, &entry(6), false),
            Err(StorageError::OutOfOrder { last: 4, got: 6 })
        ));
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_recovery_reads_the_old_ledger_cuts_it_at_its_last_signature_and_marks_new_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LedgerWriter::create(dir.path(), RealDisk).unwrap();
        for s in 1..=8 {
            w.append(s, &entry(s), s == 3).unwrap();
        }
        w.sync().unwrap();
        w.commit(3).unwrap();
        drop(w);
        // A stale file of an abandoned recovery is set aside.
        std::fs::write(dir.path().join("ledger_9.recovery"), b"stale").unwrap();
        let (mut w, entries) = LedgerWriter::open_for_recovery(dir.path(), RealDisk, 0).unwrap();
        let want: Vec<Vec<u8>> = (1..=8).map(entry).collect();
        assert_eq!(entries.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), want);
        // Say 6 was the last signature.
        w.begin_recovery_after(6).unwrap();
        assert_eq!(
            names(dir.path()),
            vec![
                "ledger_1-3.committed",
                "ledger_4-6.committed",
                "ledger_9.recovery.ignored"
            ]
        );
        assert_eq!(w.read_entries(1, 6).unwrap().len(), 6);
        w.append(7, &entry(7), true).unwrap();
        w.append(8, &entry(8), false).unwrap();
        w.sync().unwrap();
        w.commit(7).unwrap();
        assert_eq!(
            names(dir.path()),
            vec![
                "ledger_1-3.committed",
                "ledger_4-6.committed",
                "ledger_7-7.committed.recovery",
                "ledger_8.recovery",
                "ledger_9.recovery.ignored"
            ]
        );
        assert_eq!(w.read_entries(1, 8).unwrap()[7].to_vec(), entry(8));
        w.complete_recovery().unwrap();
        w.append(9, &entry(9), false).unwrap();
        w.sync().unwrap();
        assert_eq!(
            names(dir.path()),
            vec![
                "ledger_1-3.committed",
                "ledger_4-6.committed",
                "ledger_7-7.committed",
                "ledger_8",
                "ledger_9.recovery.ignored"
            ]
        );
        assert_eq!(w.read_entries(8, 9).unwrap()[1].to_vec(), entry(9));
        // Recovering again, from a ledger whose open chunk ends at its last signature.
        drop(w);
        std::fs::remove_file(dir.path().join("ledger_9.recovery.ignored")).unwrap();
        let (mut w, entries) = LedgerWriter::open_for_recovery(dir.path(), RealDisk, 0).unwrap();
        assert_eq!(entries.len(), 9);
        w.begin_recovery_after(9).unwrap();
        assert_eq!(w.read_entries(1, 9).unwrap().len(), 9);
        w.append(10, &entry(10), false).unwrap();
        w.sync().unwrap();
        assert_eq!(w.read_entries(9, 10).unwrap()[1].to_vec(), entry(10));
        // A gap is refused.
        std::fs::remove_file(dir.path().join("ledger_4-6.committed")).unwrap();
        drop(w);
        assert!(matches!(
            LedgerWriter::open_for_recovery(dir.path(), RealDisk, 0),
            Err(StorageError::Corrupt { .. })
        ));
        // After a snapshot at 8 only later entries are read; the ledger may start after what
        // the snapshot covers, but not with a gap, and not end before it.
        std::fs::remove_file(dir.path().join("ledger_1-3.committed")).unwrap();
        let (w, entries) = LedgerWriter::open_for_recovery(dir.path(), RealDisk, 8).unwrap();
        assert_eq!(
            entries.iter().map(|b| b.to_vec()).collect::<Vec<_>>(),
            vec![entry(9)]
        );
        assert_eq!(w.last_seqno(), 9);
        drop(w);
        let (_, entries) = LedgerWriter::open_for_recovery(dir.path(), RealDisk, 6).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(matches!(
            LedgerWriter::open_for_recovery(dir.path(), RealDisk, 5),
            Err(StorageError::Corrupt { .. })
        ));
        assert!(matches!(
            LedgerWriter::open_for_recovery(dir.path(), RealDisk, 20),
            Err(StorageError::Corrupt { .. })
        ));
        // A snapshot alone: an empty ledger directory starts after it.
        let empty = tempfile::tempdir().unwrap();
        let (w, entries) = LedgerWriter::open_for_recovery(empty.path(), RealDisk, 5).unwrap();
        assert!(entries.is_empty());
        assert_eq!(w.last_seqno(), 5);
    }

    #[test]
    fn truncation_reopens_chunks_and_reads_return_the_exact_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LedgerWriter::create(dir.path(), RealDisk).unwrap();
        for s in 1..=8 {
            w.append(s, &entry(s), s == 3 || s == 6).unwrap();
        }
        w.sync().unwrap();
        w.commit(3).unwrap();
        assert_eq!(
            names(dir.path()),
            vec!["ledger_1-3.committed", "ledger_4-6", "ledger_7"]
        );
        // Reads span committed, complete and open chunks.
        let read = w.read_entries(2, 8).unwrap();
        let want: Vec<Vec<u8>> = (2..=8).map(entry).collect();
        assert_eq!(read.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), want);
        assert!(matches!(
            w.read_entries(8, 9),
            Err(StorageError::Missing(_))
        ));

        // Truncating into a complete chunk removes later chunks and reopens it.
        w.truncate(5).unwrap();
        assert_eq!(w.last_seqno(), 5);
        assert_eq!(names(dir.path()), vec!["ledger_1-3.committed", "ledger_4"]);
        let scan = chunk::scan_chunk(&std::fs::read(dir.path().join("ledger_4")).unwrap()).unwrap();
        assert!(!scan.is_complete());
        assert_eq!(scan.last_seqno(), Some(5));
        // A different entry 6 replaces the discarded one; the chunk completes again.
        let mut other = entry(6);
        let last = other.len() - 1;
        other[last] ^= 1;
        w.append(6, &other, true).unwrap();
        w.append(7, &entry(7), false).unwrap();
        w.sync().unwrap();
        assert_eq!(
            names(dir.path()),
            vec!["ledger_1-3.committed", "ledger_4-6", "ledger_7"]
        );
        let bytes = std::fs::read(dir.path().join("ledger_4-6")).unwrap();
        let scan = chunk::scan_chunk(&bytes).unwrap();
        assert!(scan.is_complete());
        assert_eq!(&bytes[scan.entries[2].range()], &other[..]);
        assert_eq!(w.read_entries(6, 7).unwrap()[0].to_vec(), other);

        // Truncating inside the open chunk shortens it; below the commit is refused.
        w.append(8, &entry(8), false).unwrap();
        w.truncate(7).unwrap();
        w.sync().unwrap();
        let scan = chunk::scan_chunk(&std::fs::read(dir.path().join("ledger_7")).unwrap()).unwrap();
        assert_eq!(scan.last_seqno(), Some(7));
        assert!(matches!(
            w.truncate(2),
            Err(StorageError::TruncateCommitted {
                to: 2,
                committed: 3
            })
        ));
    }
}
