//! CCF's snapshot files (ccf-reference §1.10): the whole key-value store at one signature
//! transaction, as a single ledger entry of type 1, followed — once the snapshot's evidence is
//! committed — by the JSON receipt of that evidence.
//!
//! File: `[entry][receipt]`, no chunk header. The entry is an ordinary entry (header, GCM header,
//! public length, public domain, encrypted private domain) whose IV carries seqno = the snapshot
//! seqno, view 0 and the snapshot bit (`StoreSnapshot::serialise` passes TxID `{0, version}`).
//!
//! Public domain (`GenericSerialiseWrapper` constructor, then `StoreSnapshot::serialise`,
//! `src/kv/snapshot.h`):
//!
//! | Field | Encoding |
//! |---|---|
//! | entry type | 1 byte = 1 (`Snapshot`: no claims, no commit evidence) |
//! | version | u64: the snapshot seqno |
//! | max_conflict_version | u64, 0 |
//! | hash at snapshot | sized bytes: the Merkle leaf of the snapshot seqno |
//! | view history | sized bytes: u64 per view v, the first seqno of view v (length in bytes) |
//! | public map records | until the end |
//!
//! The private domain plaintext is the private map records. A map record (`untyped::Map::Snapshot`,
//! `src/kv/untyped_map.h`; CHAMP serialisation `src/ds/champ_map.h`, `src/ds/map_serializers.h`):
//!
//! | Field | Encoding |
//! |---|---|
//! | name | sized bytes |
//! | map version | u64: the last version that changed the map |
//! | blob | sized bytes: per key `[u64 len][key][pad]` then `[u64 8+len][u64 version][value][pad]`, padding to 8 bytes |
//!
//! CCF orders keys by their hash; coco writes them in key byte order (both readers accept any
//! order; a key repeated within a map is for the loader to refuse). Versions CCF wrote as negative numbers before 3.0 marked deletions and are skipped on
//! read, as CCF does.
//!
//! File names (`src/snapshots/filenames.h`): `snapshot_<seqno>_<evidence seqno>`, with
//! `.committed` appended once the receipt is.

use std::ops::Range;

use bytes::Bytes;

use crate::cursor::Cursor;
use crate::domain::{DomainError, EntryType, MAX_CONFLICT_VERSION};
use crate::entry::{ENTRY_HEADER_SIZE_BYTES, EntryError, EntryHeader};
use crate::write_set::is_public_map;

/// One map of a snapshot: its name, the version that last changed it, and every live entry as
/// `(key, version, value)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMap {
    pub name: String,
    pub version: u64,
    pub entries: Vec<(Bytes, u64, Bytes)>,
}

/// The public domain of a snapshot, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotPublic {
    /// The snapshot seqno (the entry's `version`).
    pub seqno: u64,
    /// The Merkle leaf of the snapshot seqno (re-seeds the tree).
    pub hash_at_snapshot: Bytes,
    /// For each view v (the index), the first seqno of that view.
    pub view_history: Vec<u64>,
    pub maps: Vec<SnapshotMap>,
}

/// Writes the map records of one snapshot domain.
#[derive(Debug, Default)]
pub struct SnapshotDomainWriter {
    out: Vec<u8>,
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_sized(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// CHAMP padding: an item of `len` bytes (including its u64 length) is padded to 8 bytes.
fn padding(len: usize) -> usize {
    (8 - len % 8) % 8
}

impl SnapshotDomainWriter {
    /// A public domain: the prefix, the hash at snapshot and the view history come first.
    pub fn public(seqno: u64, hash_at_snapshot: &[u8; 32], view_history: &[u64]) -> Self {
        let mut out = Vec::new();
        out.push(EntryType::Snapshot as u8);
        put_u64(&mut out, seqno);
        put_u64(&mut out, MAX_CONFLICT_VERSION);
        put_sized(&mut out, hash_at_snapshot);
        put_u64(&mut out, (view_history.len() * 8) as u64);
        for v in view_history {
            put_u64(&mut out, *v);
        }
        SnapshotDomainWriter { out }
    }

    /// A private domain: map records only (the caller encrypts the result).
    pub fn private() -> Self {
        SnapshotDomainWriter::default()
    }

    /// Appends one map record.
    pub fn map<'a>(
        &mut self,
        name: &str,
        version: u64,
        entries: impl Iterator<Item = (&'a [u8], u64, &'a [u8])>,
    ) {
        put_sized(&mut self.out, name.as_bytes());
        put_u64(&mut self.out, version);
        let blob_len_at = self.out.len();
        put_u64(&mut self.out, 0);
        let blob_start = self.out.len();
        for (key, version, value) in entries {
            put_sized(&mut self.out, key);
            self.out.resize(self.out.len() + padding(key.len()), 0);
            put_u64(&mut self.out, 8 + value.len() as u64);
            put_u64(&mut self.out, version);
            self.out.extend_from_slice(value);
            self.out.resize(self.out.len() + padding(value.len()), 0);
        }
        let blob_len = (self.out.len() - blob_start) as u64;
        self.out[blob_len_at..blob_start].copy_from_slice(&blob_len.to_le_bytes());
    }

    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Parses a snapshot's public domain (held in a shared buffer: keys and values are slices of it).
pub fn parse_snapshot_public(data: &Bytes) -> Result<SnapshotPublic, DomainError> {
    let mut c = Cursor::new(data);
    if c.is_empty() {
        return Err(DomainError::EmptyPublicDomain);
    }
    let entry_type = c.u8()?;
    if entry_type != EntryType::Snapshot as u8 {
        return Err(DomainError::NotSnapshot { entry_type });
    }
    let seqno = c.u64()?;
    let _max_conflict_version = c.u64()?;
    let hash_at_snapshot = data.slice(c.sized()?);
    let history_offset = c.pos();
    let history = c.sized()?;
    if history.len() % 8 != 0 {
        return Err(DomainError::BadViewHistory {
            offset: history_offset,
            length: history.len(),
        });
    }
    let view_history = data[history]
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes")))
        .collect();
    let maps = read_maps(&mut c, data, true)?;
    Ok(SnapshotPublic {
        seqno,
        hash_at_snapshot,
        view_history,
        maps,
    })
}

/// Parses a snapshot's decrypted private domain.
pub fn parse_snapshot_private(data: &Bytes) -> Result<Vec<SnapshotMap>, DomainError> {
    let mut c = Cursor::new(data);
    read_maps(&mut c, data, false)
}

fn read_maps(
    c: &mut Cursor<'_>,
    data: &Bytes,
    public: bool,
) -> Result<Vec<SnapshotMap>, DomainError> {
    let mut maps: Vec<SnapshotMap> = Vec::new();
    while !c.is_empty() {
        let offset = c.pos();
        if c.remaining() < 8 {
            return Err(DomainError::TrailingBytes {
                offset,
                count: c.remaining(),
            });
        }
        let name = std::str::from_utf8(&data[c.sized()?])
            .map_err(|_| DomainError::NonUtf8MapName { offset })?
            .to_owned();
        if is_public_map(&name) != public {
            return Err(DomainError::WrongDomain {
                offset,
                name,
                domain: if public { "public" } else { "private" },
            });
        }
        if maps.iter().any(|m| m.name == name) {
            return Err(DomainError::DuplicateMap { offset, name });
        }
        let version = c.u64()?;
        let blob = c.sized()?;
        let entries = read_blob(data, blob)?;
        maps.push(SnapshotMap {
            name,
            version,
            entries,
        });
    }
    Ok(maps)
}

fn read_blob(data: &Bytes, blob: Range<usize>) -> Result<Vec<(Bytes, u64, Bytes)>, DomainError> {
    let mut c = Cursor::over(data, blob);
    let mut entries = Vec::new();
    while !c.is_empty() {
        let key = c.sized()?;
        c.take(padding(key.len()))?;
        let value_offset = c.pos();
        let size = c.u64()?;
        let bad_value = DomainError::BadSnapshotValue {
            offset: value_offset,
            size,
        };
        let version = c.u64().map_err(|_| bad_value.clone())?;
        let value_len = size
            .checked_sub(8)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(bad_value)?;
        let value_start = c.pos();
        c.take(value_len)?;
        c.take(padding(value_len))?;
        // CCF before 3.0 marked deletions with negative versions; they hold no live value.
        if (version as i64) < 0 {
            continue;
        }
        entries.push((
            data.slice(key),
            version,
            data.slice(value_start..value_start + value_len),
        ));
    }
    Ok(entries)
}

/// A snapshot file split into its entry and the receipt appended after it (empty while the
/// snapshot is not committed).
pub fn split_snapshot_file(data: &[u8]) -> Result<(&[u8], &[u8]), EntryError> {
    let header = EntryHeader::parse(data)?;
    let len = header.entry_len();
    if len > data.len() as u64 {
        return Err(EntryError::SizeMismatch {
            declared: header.size,
            actual: (data.len() - ENTRY_HEADER_SIZE_BYTES) as u64,
        });
    }
    Ok(data.split_at(len as usize))
}

/// A snapshot file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotName {
    pub seqno: u64,
    pub evidence_seqno: u64,
    pub committed: bool,
}

const COMMITTED_SUFFIX: &str = ".committed";

impl SnapshotName {
    /// Parses `snapshot_<seqno>_<evidence>[.committed]`; anything else is not a snapshot file.
    pub fn parse(name: &str) -> Option<SnapshotName> {
        let rest = name.strip_prefix("snapshot_")?;
        let (rest, committed) = match rest.strip_suffix(COMMITTED_SUFFIX) {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (seqno, evidence) = rest.split_once('_')?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        Some(SnapshotName {
            seqno: number(seqno)?,
            evidence_seqno: number(evidence)?,
            committed,
        })
    }

    pub fn file_name(&self) -> String {
        format!(
            "snapshot_{}_{}{}",
            self.seqno,
            self.evidence_seqno,
            if self.committed { COMMITTED_SUFFIX } else { "" }
        )
    }
}

#[cfg(test)]
mod tests;
