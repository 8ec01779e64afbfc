//! Serialisation of a transaction's write set into CCF's public and private domains.
//!
//! All integers are little-endian. "Sized bytes" are a u64 length followed by that many bytes
//! (map names too, without a terminator), as `RawWriter` writes a `std::vector`/`std::string`
//! (`src/kv/raw_serialise.h`).
//!
//! The public domain opens with a prefix (`GenericSerialiseWrapper` constructor,
//! `src/kv/generic_serialise_wrapper.h`):
//!
//! | Field | Size | Notes |
//! |---|---|---|
//! | `entry_type` | 1 | [`EntryType`]; CCF writes 4 for every transaction |
//! | `version` | 8 | seqno of the transaction |
//! | `claims_digest` | 32 | iff type ∈ {2, 4} |
//! | `commit_evidence_digest` | 32 | iff type ∈ {3, 4}: SHA-256 of the commit evidence string |
//! | `max_conflict_version` | 8 | CCF writes 0 (a placeholder kept for compatibility) |
//!
//! then one record per map that has changes (`untyped::Map::serialise_changes`,
//! `src/kv/untyped_map.h`), maps in name byte order:
//!
//! | Field | Encoding |
//! |---|---|
//! | map name | sized bytes (UTF-8) |
//! | read version | u64, always 0 (`NoVersion`; reads are not serialised) |
//! | read count | u64, always 0 |
//! | write count W, then W × (key, value) | u64, then sized bytes pairs in key byte order |
//! | remove count R, then R × key | u64, then sized bytes in key byte order |
//!
//! The private domain plaintext is the same records for the private maps, with no prefix; the
//! entry layer encrypts it. Snapshots (entry type 1) use a different record format and are not
//! handled here.
//!
//! Parsers are stricter than CCF's reader where strictness costs nothing: anything CCF never
//! writes (a non-zero read version or read count, an empty record, a map in the wrong domain, a
//! duplicated map or key) is rejected, so a parsed entry always re-serialises to the same bytes
//! up to record order. Record order itself is not checked: the ledger keeps the original bytes,
//! so a reordering cannot change any digest.

use std::collections::BTreeMap;
use std::ops::Range;

use bytes::Bytes;

use crate::cursor::{Cursor, ReadError};
use crate::write_set::{MapChanges, WriteSet, is_public_map};

/// A raw SHA-256 digest as stored in the public-domain prefix.
pub type Digest = [u8; 32];

/// Size of the public-domain prefix for entry type 4 (`1 + 8 + 32 + 32 + 8`).
pub const PUBLIC_PREFIX_SIZE_BYTES: usize = 81;

/// CCF writes this in `max_conflict_version`: `serialise_internal((Version)0u);` with the comment
/// "Write a placeholder max_conflict_version for compatibility"
/// (`src/kv/generic_serialise_wrapper.h` lines 88-89 at f157da8). Readers ignore the field.
/// (The conformance script `synth_ledger.py` writes the seqno instead; CCF's reader accepts both,
/// but only 0 is byte-identical to what a CCF node writes.)
pub const MAX_CONFLICT_VERSION: u64 = 0;

/// Kind of a serialised entry, the first byte of its public domain (`EntryType`,
/// `src/kv/kv_types.h`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EntryType {
    /// Deprecated: no claims, no commit evidence.
    WriteSet = 0,
    /// A snapshot: a different record format, handled by snapshot code, not here.
    Snapshot = 1,
    /// Deprecated: claims digest only.
    WriteSetWithClaims = 2,
    /// Deprecated: commit evidence digest only.
    WriteSetWithCommitEvidence = 3,
    /// What CCF writes for every transaction.
    WriteSetWithCommitEvidenceAndClaims = 4,
}

impl EntryType {
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::WriteSet,
            1 => Self::Snapshot,
            2 => Self::WriteSetWithClaims,
            3 => Self::WriteSetWithCommitEvidence,
            4 => Self::WriteSetWithCommitEvidenceAndClaims,
            _ => return None,
        })
    }

    /// True if the prefix carries a claims digest (`has_claims`, `src/kv/kv_types.h`).
    pub fn has_claims(self) -> bool {
        matches!(
            self,
            Self::WriteSetWithClaims | Self::WriteSetWithCommitEvidenceAndClaims
        )
    }

    /// True if the prefix carries a commit evidence digest (`has_commit_evidence`).
    pub fn has_commit_evidence(self) -> bool {
        matches!(
            self,
            Self::WriteSetWithCommitEvidence | Self::WriteSetWithCommitEvidenceAndClaims
        )
    }
}

/// The fixed fields at the start of a public domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicPrefix {
    pub entry_type: EntryType,
    /// CCF calls this the entry's `version`: the seqno of the transaction.
    pub seqno: u64,
    pub claims_digest: Option<Digest>,
    pub commit_evidence_digest: Option<Digest>,
    /// Ignored by CCF on read; kept so callers can see what was on disk.
    pub max_conflict_version: u64,
}

/// A parsed public domain: its prefix and the public maps' changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicDomain {
    pub prefix: PublicPrefix,
    pub maps: BTreeMap<String, MapChanges>,
}

impl PublicDomain {
    /// What this domain writes to the singleton key of `map`
    /// ([`crate::write_set::singleton_write`]).
    pub fn singleton(&self, map: &str) -> Option<&Bytes> {
        crate::write_set::singleton_write(&self.maps, map)
    }
}

/// Why a public or private domain failed to parse. Offsets are relative to the start of the
/// domain being parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("domain truncated at byte {offset}: field needs {needed} bytes, {available} left")]
    Truncated {
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("length prefix at byte {offset} claims {length} bytes but only {available} follow")]
    LengthPastEnd {
        offset: usize,
        length: u64,
        available: usize,
    },
    #[error("public domain is empty: it must at least hold the entry type")]
    EmptyPublicDomain,
    #[error("unknown entry type {entry_type} at byte 0 (known: 0..=4)")]
    UnknownEntryType { entry_type: u8 },
    #[error("entry type 1 (snapshot) at byte 0: snapshots use another record format")]
    SnapshotEntry,
    #[error("{count} trailing bytes at byte {offset}: too short to start a map record")]
    TrailingBytes { offset: usize, count: usize },
    #[error("map name at byte {offset} is not UTF-8")]
    NonUtf8MapName { offset: usize },
    #[error("map {name:?} at byte {offset} does not belong in the {domain} domain")]
    WrongDomain {
        offset: usize,
        name: String,
        domain: &'static str,
    },
    #[error("map {name:?} at byte {offset} appears twice")]
    DuplicateMap { offset: usize, name: String },
    #[error("read version at byte {offset} is {version}; CCF always writes 0")]
    ReadVersionNonZero { offset: usize, version: u64 },
    #[error("read count at byte {offset} is {count}; CCF never serialises reads")]
    ReadCountNonZero { offset: usize, count: u64 },
    #[error("map {name:?} at byte {offset} has no writes and no removes")]
    EmptyMapRecord { offset: usize, name: String },
    #[error("key at byte {offset} appears twice in map {name:?}")]
    DuplicateKey { offset: usize, name: String },
    #[error("entry type {entry_type} at byte 0 where a snapshot (type 1) was expected")]
    NotSnapshot { entry_type: u8 },
    #[error("view history at byte {offset} is {length} bytes, not a whole number of u64s")]
    BadViewHistory { offset: usize, length: usize },
    #[error("snapshot value at byte {offset} declares {size} bytes, less than its 8-byte version")]
    BadSnapshotValue { offset: usize, size: u64 },
}

impl From<ReadError> for DomainError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Truncated {
                offset,
                needed,
                available,
            } => Self::Truncated {
                offset,
                needed,
                available,
            },
            ReadError::LengthPastEnd {
                offset,
                length,
                available,
            } => Self::LengthPastEnd {
                offset,
                length,
                available,
            },
        }
    }
}

// ---------------------------------------------------------------- serialisation

const U64_SIZE_BYTES: usize = 8;

fn record_len(name: &str, changes: &MapChanges) -> usize {
    // name, read version, read count, write count, remove count
    let mut len = U64_SIZE_BYTES + name.len() + 4 * U64_SIZE_BYTES;
    for (k, v) in &changes.writes {
        len += U64_SIZE_BYTES + k.len();
        if let Some(v) = v {
            len += U64_SIZE_BYTES + v.len();
        }
    }
    len
}

fn records_len<'a>(maps: impl Iterator<Item = (&'a str, &'a MapChanges)>) -> usize {
    maps.map(|(n, c)| record_len(n, c)).sum()
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_sized(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn write_records<'a>(out: &mut Vec<u8>, maps: impl Iterator<Item = (&'a str, &'a MapChanges)>) {
    for (name, changes) in maps {
        put_sized(out, name.as_bytes());
        put_u64(out, 0); // read version: NoVersion
        put_u64(out, 0); // read count
        let remove_count = changes.writes.values().filter(|v| v.is_none()).count();
        put_u64(out, (changes.writes.len() - remove_count) as u64);
        for (k, v) in changes.puts() {
            put_sized(out, k);
            put_sized(out, v);
        }
        put_u64(out, remove_count as u64);
        if remove_count > 0 {
            for k in changes.removes() {
                put_sized(out, k);
            }
        }
    }
}

/// Exact size in bytes of [`serialise_public_domain`]'s output, so callers can size one buffer
/// for a whole entry.
pub fn public_domain_len(ws: &WriteSet) -> usize {
    PUBLIC_PREFIX_SIZE_BYTES + records_len(ws.public_maps())
}

/// Exact size in bytes of [`serialise_private_domain`]'s output (the plaintext; AES-GCM keeps the
/// length).
pub fn private_domain_len(ws: &WriteSet) -> usize {
    records_len(ws.private_maps())
}

/// Appends the public domain (type 4 prefix, then the public maps' records) to `out`.
pub fn write_public_domain(
    out: &mut Vec<u8>,
    seqno: u64,
    claims_digest: &Digest,
    commit_evidence_digest: &Digest,
    ws: &WriteSet,
) {
    out.push(EntryType::WriteSetWithCommitEvidenceAndClaims as u8);
    put_u64(out, seqno);
    out.extend_from_slice(claims_digest);
    out.extend_from_slice(commit_evidence_digest);
    put_u64(out, MAX_CONFLICT_VERSION);
    write_records(out, ws.public_maps());
}

/// Appends the private domain plaintext (the private maps' records) to `out`.
pub fn write_private_domain(out: &mut Vec<u8>, ws: &WriteSet) {
    write_records(out, ws.private_maps());
}

/// Serialises the public domain of a transaction at `seqno`: only the write set's public maps.
pub fn serialise_public_domain(
    seqno: u64,
    claims_digest: &Digest,
    commit_evidence_digest: &Digest,
    ws: &WriteSet,
) -> Vec<u8> {
    let len = public_domain_len(ws);
    let mut out = Vec::with_capacity(len);
    write_public_domain(&mut out, seqno, claims_digest, commit_evidence_digest, ws);
    assert_eq!(
        out.len(),
        len,
        "public domain size computation is out of step"
    );
    out
}

/// Serialises the private domain plaintext: only the write set's private maps. Empty when the
/// transaction touched no private map.
pub fn serialise_private_domain(ws: &WriteSet) -> Vec<u8> {
    let len = private_domain_len(ws);
    let mut out = Vec::with_capacity(len);
    write_private_domain(&mut out, ws);
    assert_eq!(
        out.len(),
        len,
        "private domain size computation is out of step"
    );
    out
}

// ---------------------------------------------------------------- parsing

/// Reads the public-domain prefix and returns it with the offset where map records start.
pub fn parse_public_prefix(data: &[u8]) -> Result<(PublicPrefix, usize), DomainError> {
    let mut c = Cursor::new(data);
    let prefix = read_prefix(&mut c)?;
    Ok((prefix, c.pos()))
}

fn read_prefix(c: &mut Cursor<'_>) -> Result<PublicPrefix, DomainError> {
    if c.is_empty() {
        return Err(DomainError::EmptyPublicDomain);
    }
    let type_byte = c.u8()?;
    let entry_type = match EntryType::from_u8(type_byte) {
        Some(EntryType::Snapshot) => return Err(DomainError::SnapshotEntry),
        Some(t) => t,
        None => {
            return Err(DomainError::UnknownEntryType {
                entry_type: type_byte,
            });
        }
    };
    let seqno = c.u64()?;
    let claims_digest = if entry_type.has_claims() {
        Some(c.array()?)
    } else {
        None
    };
    let commit_evidence_digest = if entry_type.has_commit_evidence() {
        Some(c.array()?)
    } else {
        None
    };
    let max_conflict_version = c.u64()?;
    Ok(PublicPrefix {
        entry_type,
        seqno,
        claims_digest,
        commit_evidence_digest,
        max_conflict_version,
    })
}

/// Parses a public domain, copying keys and values out of `data`.
pub fn parse_public_domain(data: &[u8]) -> Result<PublicDomain, DomainError> {
    let mut c = Cursor::new(data);
    let prefix = read_prefix(&mut c)?;
    let maps = read_records(
        &mut c,
        data,
        &|r| Bytes::copy_from_slice(&data[r]),
        Domain::Public,
    )?;
    Ok(PublicDomain { prefix, maps })
}

/// Parses a public domain held in a shared buffer: keys and values are slices of `data`, with no
/// copy.
pub fn parse_public_domain_shared(data: &Bytes) -> Result<PublicDomain, DomainError> {
    let mut c = Cursor::new(data);
    let prefix = read_prefix(&mut c)?;
    let maps = read_records(&mut c, data, &|r| data.slice(r), Domain::Public)?;
    Ok(PublicDomain { prefix, maps })
}

/// Parses a decrypted private domain, copying keys and values out of `data`.
pub fn parse_private_domain(data: &[u8]) -> Result<BTreeMap<String, MapChanges>, DomainError> {
    let mut c = Cursor::new(data);
    read_records(
        &mut c,
        data,
        &|r| Bytes::copy_from_slice(&data[r]),
        Domain::Private,
    )
}

/// Parses a decrypted private domain held in a shared buffer, without copying keys and values.
pub fn parse_private_domain_shared(
    data: &Bytes,
) -> Result<BTreeMap<String, MapChanges>, DomainError> {
    let mut c = Cursor::new(data);
    read_records(&mut c, data, &|r| data.slice(r), Domain::Private)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Domain {
    Public,
    Private,
}

fn read_records(
    c: &mut Cursor<'_>,
    data: &[u8],
    make: &dyn Fn(Range<usize>) -> Bytes,
    domain: Domain,
) -> Result<BTreeMap<String, MapChanges>, DomainError> {
    let mut maps = BTreeMap::new();
    while !c.is_empty() {
        let record_offset = c.pos();
        if c.remaining() < U64_SIZE_BYTES {
            return Err(DomainError::TrailingBytes {
                offset: record_offset,
                count: c.remaining(),
            });
        }
        let name_range = c.sized()?;
        let name = std::str::from_utf8(&data[name_range])
            .map_err(|_| DomainError::NonUtf8MapName {
                offset: record_offset,
            })?
            .to_owned();
        let name_is_public = is_public_map(&name);
        if name_is_public != (domain == Domain::Public) {
            let domain = if domain == Domain::Public {
                "public"
            } else {
                "private"
            };
            return Err(DomainError::WrongDomain {
                offset: record_offset,
                name,
                domain,
            });
        }
        if maps.contains_key(&name) {
            return Err(DomainError::DuplicateMap {
                offset: record_offset,
                name,
            });
        }
        let version_offset = c.pos();
        let version = c.u64()?;
        if version != 0 {
            return Err(DomainError::ReadVersionNonZero {
                offset: version_offset,
                version,
            });
        }
        let count_offset = c.pos();
        let count = c.u64()?;
        if count != 0 {
            return Err(DomainError::ReadCountNonZero {
                offset: count_offset,
                count,
            });
        }
        let mut changes = MapChanges::default();
        let write_count = c.u64()?;
        for _ in 0..write_count {
            let key_offset = c.pos();
            let k = c.sized()?;
            let v = c.sized()?;
            if changes.writes.insert(make(k), Some(make(v))).is_some() {
                return Err(DomainError::DuplicateKey {
                    offset: key_offset,
                    name,
                });
            }
        }
        let remove_count = c.u64()?;
        for _ in 0..remove_count {
            let key_offset = c.pos();
            let k = c.sized()?;
            if changes.writes.insert(make(k), None).is_some() {
                return Err(DomainError::DuplicateKey {
                    offset: key_offset,
                    name,
                });
            }
        }
        if changes.is_empty() {
            return Err(DomainError::EmptyMapRecord {
                offset: record_offset,
                name,
            });
        }
        maps.insert(name, changes);
    }
    Ok(maps)
}

#[cfg(test)]
mod tests;
