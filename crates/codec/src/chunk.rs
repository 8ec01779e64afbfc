//! Ledger chunk files: their names, their layout, and the scan a host runs on startup.
//!
//! Layout (`LedgerFile`, `src/host/ledger.h`):
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 8 | `positions_offset`, u64 LE: 0 while the chunk is open, else the table's offset |
//! | 8 | var | entries ([`crate::entry`]), back to back, consecutive seqnos |
//! | `positions_offset` | 4·N | positions table: u32 LE offset of each entry, to end of file |
//!
//! CCF completes a chunk by truncating anything past the last entry, appending the table and
//! then rewriting the header (`LedgerFile::complete`). A crash can therefore leave an open chunk
//! ending in a torn entry or in a half-written table; [`scan_chunk`] reports the longest prefix
//! of whole entries so the host can truncate the rest, as CCF's recovery constructor does.
//!
//! Names (`src/host/ledger.h`, `ccf.ledger.range_from_filename`):
//!
//! | Name | Meaning |
//! |---|---|
//! | `ledger_<start>` | open, or complete but not yet committed (CCF does not rename on completion) |
//! | `ledger_<start>-<end>` | complete, not committed (written by `split_ledger.py`) |
//! | `ledger_<start>-<end>.committed` | complete and committed: immutable, identical on all nodes |
//! | `<name>.recovery` | written during a disaster recovery; the suffix is dropped when it ends |
//! | `<name>.ignored` | set aside by the host; every reader skips it |

use std::fmt;

use coco_types::limits::LEDGER_CHUNK_SIZE_BYTES_MAX;

use crate::entry::{self, ENTRY_HEADER_SIZE_BYTES, EntryError, EntryFlags, EntryHeader};

/// Size of the chunk header holding the positions table offset (`positions_offset_header_t`).
pub const CHUNK_HEADER_SIZE_BYTES: usize = 8;
/// Size of one positions table slot.
pub const POSITION_SIZE_BYTES: usize = 4;

const PREFIX: &str = "ledger_";
const COMMITTED_SUFFIX: &str = ".committed";
const RECOVERY_SUFFIX: &str = ".recovery";
const IGNORED_SUFFIX: &str = ".ignored";

/// A parsed chunk file name. Seqnos are inclusive and 1-based.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkName {
    pub start: u64,
    pub end: Option<u64>,
    pub committed: bool,
    pub recovery: bool,
    pub ignored: bool,
}

impl ChunkName {
    /// The name of a new chunk starting at `start`.
    pub fn open(start: u64) -> Self {
        Self {
            start,
            end: None,
            committed: false,
            recovery: false,
            ignored: false,
        }
    }

    /// The name CCF gives a complete chunk once committed (`LedgerFile::commit`).
    pub fn committed(start: u64, end: u64) -> Self {
        Self {
            start,
            end: Some(end),
            committed: true,
            recovery: false,
            ignored: false,
        }
    }

    /// Parses a file name; `None` for anything that is not a ledger chunk name. Suffixes are
    /// accepted in the order CCF appends them (`.committed`, `.recovery`, `.ignored`). Names CCF
    /// never writes are refused: seqno 0, leading zeros, `end < start`, and `.committed` without
    /// an end.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(PREFIX)?;
        let (rest, ignored) = strip_flag(rest, IGNORED_SUFFIX);
        let (rest, recovery) = strip_flag(rest, RECOVERY_SUFFIX);
        let (rest, committed) = strip_flag(rest, COMMITTED_SUFFIX);
        let (start, end) = match rest.split_once('-') {
            Some((s, e)) => (parse_seqno(s)?, Some(parse_seqno(e)?)),
            None => (parse_seqno(rest)?, None),
        };
        if end.is_some_and(|e| e < start) || (committed && end.is_none()) {
            return None;
        }
        Some(Self {
            start,
            end,
            committed,
            recovery,
            ignored,
        })
    }

    /// True if the chunk's range is known and contains `seqno`.
    pub fn contains(&self, seqno: u64) -> bool {
        self.end
            .is_some_and(|end| self.start <= seqno && seqno <= end)
    }
}

fn strip_flag<'a>(s: &'a str, suffix: &str) -> (&'a str, bool) {
    match s.strip_suffix(suffix) {
        Some(rest) => (rest, true),
        None => (s, false),
    }
}

fn parse_seqno(s: &str) -> Option<u64> {
    let canonical = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    if canonical { s.parse().ok() } else { None }
}

impl fmt::Display for ChunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.start)?;
        if let Some(end) = self.end {
            write!(f, "-{end}")?;
        }
        if self.committed {
            f.write_str(COMMITTED_SUFFIX)?;
        }
        if self.recovery {
            f.write_str(RECOVERY_SUFFIX)?;
        }
        if self.ignored {
            f.write_str(IGNORED_SUFFIX)?;
        }
        Ok(())
    }
}

/// The header of a new (open) chunk.
pub const OPEN_CHUNK_HEADER: [u8; CHUNK_HEADER_SIZE_BYTES] = [0; CHUNK_HEADER_SIZE_BYTES];

/// Serialises a positions table: each entry's absolute file offset as u32 LE.
pub fn positions_table(positions: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(positions.len() * POSITION_SIZE_BYTES);
    for p in positions {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out
}

/// The bytes that complete a chunk whose entries end at `entries_end` (the file length after
/// truncating any torn tail): the table to append at `entries_end`, then the header to write
/// at offset 0. Appending first and rewriting the header last means a crash in between leaves an
/// open chunk whose scan drops the partial table.
///
/// `positions` is the host's own record of where it wrote entries, so inconsistency is a bug
/// and panics.
pub fn complete_chunk_bytes(
    entries_end: u64,
    positions: &[u32],
) -> (Vec<u8>, [u8; CHUNK_HEADER_SIZE_BYTES]) {
    assert!(
        !positions.is_empty(),
        "a complete chunk holds at least one entry"
    );
    assert_eq!(
        positions[0] as usize, CHUNK_HEADER_SIZE_BYTES,
        "first entry follows the header"
    );
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "positions strictly increase"
    );
    assert!(
        u64::from(*positions.last().expect("non-empty")) < entries_end,
        "last entry inside"
    );
    (positions_table(positions), entries_end.to_le_bytes())
}

/// One entry found by [`scan_chunk`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScannedEntry {
    /// Absolute offset of the entry header in the file.
    pub offset: u64,
    /// Length of the entry, header included.
    pub len_bytes: u64,
    pub seqno: u64,
    pub view: u64,
    pub flags: EntryFlags,
}

impl ScannedEntry {
    /// The entry's byte range within the scanned chunk.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset as usize..(self.offset + self.len_bytes) as usize
    }
}

/// What stopped the scan of an open chunk before end of file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TornTailKind {
    /// Fewer than 8 bytes left: a partial entry header.
    PartialHeader,
    /// The entry header claims more bytes than the file has.
    SizePastEof { size: u64 },
    /// The bytes do not form a valid entry (bad version, flags, or inner lengths).
    BadEntry(EntryError),
    /// A whole entry whose seqno does not follow the previous entry's.
    SeqnoGap { expected: u64, found: u64 },
}

/// A description of the bytes after the valid prefix of an open chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the valid prefix ends and the tail starts.
    pub offset: u64,
    /// Bytes from `offset` to end of file.
    pub len_bytes: u64,
    pub kind: TornTailKind,
}

/// Whether a chunk was complete, and for an open one how much of it is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkState {
    /// Header 0. `valid_len` is the length of the longest prefix made of the header and whole
    /// entries; `torn_tail` describes anything after it.
    Open {
        valid_len: u64,
        torn_tail: Option<TornTail>,
    },
    /// Header non-zero and the positions table matches the entries.
    Complete { positions_offset: u64 },
}

/// Result of [`scan_chunk`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkScan {
    pub entries: Vec<ScannedEntry>,
    pub state: ChunkState,
}

impl ChunkScan {
    pub fn is_complete(&self) -> bool {
        matches!(self.state, ChunkState::Complete { .. })
    }

    pub fn first_seqno(&self) -> Option<u64> {
        self.entries.first().map(|e| e.seqno)
    }

    pub fn last_seqno(&self) -> Option<u64> {
        self.entries.last().map(|e| e.seqno)
    }

    /// The positions table of the entries found, or `None` if an offset exceeds u32 (a chunk
    /// past CCF's 4 GiB limit).
    pub fn positions(&self) -> Option<Vec<u32>> {
        self.entries
            .iter()
            .map(|e| u32::try_from(e.offset).ok())
            .collect()
    }
}

/// Why a chunk could not be scanned. Offsets are absolute file offsets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk has {available} bytes, fewer than its 8-byte header")]
    HeaderTruncated { available: u64 },
    #[error("chunk is {file_len} bytes, over the {max}-byte limit of u32 positions")]
    TooLarge { file_len: u64, max: u64 },
    #[error("positions offset {positions_offset} at byte 0 lies inside the 8-byte header")]
    PositionsOffsetInHeader { positions_offset: u64 },
    #[error(
        "positions offset {positions_offset} at byte 0 is past the end of the {file_len}-byte file"
    )]
    PositionsOffsetPastEof {
        positions_offset: u64,
        file_len: u64,
    },
    #[error("positions table at byte {offset} is {len_bytes} bytes, not a multiple of 4")]
    TableNotMultipleOf4 { offset: u64, len_bytes: u64 },
    #[error("entry at byte {offset}: {source}")]
    Entry { offset: u64, source: EntryError },
    #[error(
        "entry at byte {offset} ends at byte {entry_end}, past the positions table at {positions_offset}"
    )]
    EntryCrossesTable {
        offset: u64,
        entry_end: u64,
        positions_offset: u64,
    },
    #[error("entry at byte {offset} has seqno {found}, expected {expected}")]
    SeqnoGap {
        offset: u64,
        expected: u64,
        found: u64,
    },
    #[error("positions table holds {in_table} offsets but the chunk holds {walked} entries")]
    PositionCountMismatch { in_table: u64, walked: u64 },
    #[error(
        "positions table slot at byte {slot_offset} says {found}, but entry {index} starts at {expected}"
    )]
    PositionMismatch {
        index: u64,
        slot_offset: u64,
        expected: u64,
        found: u64,
    },
}

/// Outcome of walking entries through a region.
struct Walk {
    entries: Vec<ScannedEntry>,
    /// Where the walk stopped: the end of the region, or the start of the first bad bytes.
    end: usize,
    stop: Option<TornTailKind>,
}

/// Walks entries in `data[CHUNK_HEADER_SIZE_BYTES..limit]`, stopping at the first bytes that do
/// not form a whole valid entry with the next seqno.
fn walk_entries(data: &[u8], limit: usize) -> Walk {
    let mut entries: Vec<ScannedEntry> = Vec::new();
    let mut pos = CHUNK_HEADER_SIZE_BYTES;
    let stop = loop {
        if pos >= limit {
            break None;
        }
        let region = &data[pos..limit];
        let Some(header_bytes) = region.first_chunk::<ENTRY_HEADER_SIZE_BYTES>() else {
            break Some(TornTailKind::PartialHeader);
        };
        if let Err(e) = EntryHeader::parse(header_bytes) {
            break Some(TornTailKind::BadEntry(e));
        }
        let (_, _, size) = EntryHeader::decode(header_bytes);
        if size > (region.len() - ENTRY_HEADER_SIZE_BYTES) as u64 {
            break Some(TornTailKind::SizePastEof { size });
        }
        let len = ENTRY_HEADER_SIZE_BYTES + size as usize;
        let view = match entry::parse_entry(&region[..len]) {
            Ok(v) => v,
            Err(e) => break Some(TornTailKind::BadEntry(e)),
        };
        if let Some(prev) = entries.last() {
            let expected = prev.seqno.wrapping_add(1);
            if view.seqno != expected {
                break Some(TornTailKind::SeqnoGap {
                    expected,
                    found: view.seqno,
                });
            }
        }
        entries.push(ScannedEntry {
            offset: pos as u64,
            len_bytes: len as u64,
            seqno: view.seqno,
            view: view.view,
            flags: view.flags(),
        });
        pos += len;
    };
    Walk {
        entries,
        end: pos,
        stop,
    }
}

/// Scans a chunk file's bytes.
///
/// For an open chunk (header 0) this never fails past the header: it returns the whole entries
/// it found and describes any torn tail, which the host truncates. For a complete chunk every
/// entry must be whole and valid, seqnos consecutive, the entries must end exactly where the
/// positions table starts, and the table must list exactly their offsets.
pub fn scan_chunk(data: &[u8]) -> Result<ChunkScan, ChunkError> {
    let file_len = data.len() as u64;
    let Some(header) = data.first_chunk::<CHUNK_HEADER_SIZE_BYTES>() else {
        return Err(ChunkError::HeaderTruncated {
            available: file_len,
        });
    };
    let positions_offset = u64::from_le_bytes(*header);
    if positions_offset == 0 {
        let walk = walk_entries(data, data.len());
        let torn_tail = walk.stop.map(|kind| TornTail {
            offset: walk.end as u64,
            len_bytes: file_len - walk.end as u64,
            kind,
        });
        return Ok(ChunkScan {
            entries: walk.entries,
            state: ChunkState::Open {
                valid_len: walk.end as u64,
                torn_tail,
            },
        });
    }
    scan_complete(data, positions_offset)
}

fn scan_complete(data: &[u8], positions_offset: u64) -> Result<ChunkScan, ChunkError> {
    let file_len = data.len() as u64;
    if file_len > LEDGER_CHUNK_SIZE_BYTES_MAX {
        return Err(ChunkError::TooLarge {
            file_len,
            max: LEDGER_CHUNK_SIZE_BYTES_MAX,
        });
    }
    if positions_offset < CHUNK_HEADER_SIZE_BYTES as u64 {
        return Err(ChunkError::PositionsOffsetInHeader { positions_offset });
    }
    if positions_offset > file_len {
        return Err(ChunkError::PositionsOffsetPastEof {
            positions_offset,
            file_len,
        });
    }
    let table_len = file_len - positions_offset;
    if !table_len.is_multiple_of(POSITION_SIZE_BYTES as u64) {
        return Err(ChunkError::TableNotMultipleOf4 {
            offset: positions_offset,
            len_bytes: table_len,
        });
    }
    let limit = positions_offset as usize;
    let walk = walk_entries(data, limit);
    if let Some(kind) = walk.stop {
        let offset = walk.end as u64;
        return Err(match kind {
            TornTailKind::PartialHeader => ChunkError::Entry {
                offset,
                source: EntryError::Truncated {
                    needed: ENTRY_HEADER_SIZE_BYTES as u64,
                    available: positions_offset - offset,
                },
            },
            TornTailKind::SizePastEof { size } => ChunkError::EntryCrossesTable {
                offset,
                entry_end: offset + ENTRY_HEADER_SIZE_BYTES as u64 + size,
                positions_offset,
            },
            TornTailKind::BadEntry(source) => ChunkError::Entry { offset, source },
            TornTailKind::SeqnoGap { expected, found } => ChunkError::SeqnoGap {
                offset,
                expected,
                found,
            },
        });
    }
    let table = &data[limit..];
    let in_table = (table.len() / POSITION_SIZE_BYTES) as u64;
    if in_table != walk.entries.len() as u64 {
        return Err(ChunkError::PositionCountMismatch {
            in_table,
            walked: walk.entries.len() as u64,
        });
    }
    for (index, (slot, e)) in table
        .chunks_exact(POSITION_SIZE_BYTES)
        .zip(&walk.entries)
        .enumerate()
    {
        let found = u64::from(u32::from_le_bytes(slot.try_into().expect("4 bytes")));
        if found != e.offset {
            return Err(ChunkError::PositionMismatch {
                index: index as u64,
                slot_offset: positions_offset + (index * POSITION_SIZE_BYTES) as u64,
                expected: e.offset,
                found,
            });
        }
    }
    Ok(ChunkScan {
        entries: walk.entries,
        state: ChunkState::Complete { positions_offset },
    })
}

#[cfg(test)]
mod tests;
