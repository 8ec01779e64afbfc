//! One serialised ledger entry (transaction), as `GenericSerialiseWrapper::serialise_domains`
//! lays it out (`src/kv/generic_serialise_wrapper.h`):
//!
//! | Offset | Size | Field |
//! |---|---|---|
//! | 0 | 1 | entry header `version` = 1 (`entry_format_v1`, `src/kv/serialised_entry_format.h`) |
//! | 1 | 1 | entry header `flags`: 0x01 `FORCE_LEDGER_CHUNK_AFTER`, 0x02 `FORCE_LEDGER_CHUNK_BEFORE` |
//! | 2 | 6 | entry header `size`: u48 LE, the number of bytes after these 8 |
//! | 8 | 16 | AES-GCM tag (`GcmHeader::tag`, serialised before the IV) |
//! | 24 | 12 | AES-GCM IV: seqno u64 LE, then view u32 LE with the top bit set for snapshots |
//! | 36 | 8 | public domain length, u64 LE (C++ writes a `size_t`) |
//! | 44 | P | public domain, plaintext; it is also the GCM additional authenticated data |
//! | 44+P | rest | private domain ciphertext (same length as the plaintext, may be empty) |
//!
//! CCF encrypts even an empty private domain, so every entry's tag authenticates its public
//! domain under the ledger secret. This module does no cryptography: [`EntryBuilder`] lays the
//! plaintext out in the final buffer and hands the caller `(aad, private)` to seal in place, then
//! takes the tag.

use coco_types::{TxId, limits::LEDGER_ENTRY_SIZE_BYTES_MAX};

use crate::domain::{self, Digest};
use crate::write_set::WriteSet;

/// The only entry format CCF has written (`entry_format_v1`).
pub const ENTRY_FORMAT_V1: u8 = 1;
/// Size of the entry header (`SerialisedEntryHeader`, static-asserted to 8 bytes in CCF).
pub const ENTRY_HEADER_SIZE_BYTES: usize = 8;
/// AES-GCM tag size (`GCM_SIZE_TAG`).
pub const GCM_TAG_SIZE_BYTES: usize = 16;
/// AES-GCM IV size (`StandardGcmHeader`, 96 bits).
pub const GCM_IV_SIZE_BYTES: usize = 12;
/// Serialised GCM header: tag then IV.
pub const GCM_HEADER_SIZE_BYTES: usize = GCM_TAG_SIZE_BYTES + GCM_IV_SIZE_BYTES;
/// Offset of the public domain in an entry: entry header, GCM header, public length.
pub const PUBLIC_DOMAIN_OFFSET: usize = ENTRY_HEADER_SIZE_BYTES + GCM_HEADER_SIZE_BYTES + 8;
/// Smallest legal `size` field: a GCM header and a public length, with empty domains.
pub const ENTRY_SIZE_FIELD_MIN: u64 = (GCM_HEADER_SIZE_BYTES + 8) as u64;
/// Largest view an IV can carry (`src/node/encryptor.h`); defined with the other bounds.
pub use coco_types::limits::GCM_IV_VIEW_MAX as IV_VIEW_MAX;
const IV_SNAPSHOT_BIT: u32 = 0x8000_0000;

/// Entry header flags (`EntryFlags`, `src/kv/serialised_entry_format.h`). Bits other than the
/// two known ones are rejected on parse, as CCF's Python validator does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryFlags(u8);

impl EntryFlags {
    pub const NONE: Self = Self(0);
    /// The host closes the current chunk after writing this entry.
    pub const FORCE_LEDGER_CHUNK_AFTER: Self = Self(0x01);
    /// The host closes the current chunk before writing this entry.
    pub const FORCE_LEDGER_CHUNK_BEFORE: Self = Self(0x02);
    const KNOWN_BITS: u8 = 0x03;

    /// Returns the flags if every set bit is a known flag.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::KNOWN_BITS == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    pub const fn bits(self) -> u8 {
        self.0
    }

    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl std::ops::BitOr for EntryFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

/// Why an entry could not be built or parsed. Offsets are relative to the entry's first byte.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry truncated: need {needed} bytes, have {available}")]
    Truncated { needed: u64, available: u64 },
    #[error("entry header version {version} at byte 0; only version 1 exists")]
    BadVersion { version: u8 },
    #[error("entry header flags {flags:#04x} at byte 1 set unknown bits (known: 0x03)")]
    UnknownFlags { flags: u8 },
    #[error(
        "entry header at byte 2 declares {declared} bytes after the header, but {actual} follow"
    )]
    SizeMismatch { declared: u64, actual: u64 },
    #[error("entry header size {size} is below the minimum {min} (GCM header and public length)")]
    SizeTooSmall { size: u64, min: u64 },
    #[error("public domain length {public_len} at byte 36 exceeds the {available} bytes after it")]
    PublicLengthPastEnd { public_len: u64, available: u64 },
    #[error("entry of {size} bytes exceeds the u48 size field (max {max})")]
    EntryTooLarge { size: u64, max: u64 },
    #[error("view {view} does not fit the 31 bits the GCM IV gives it")]
    ViewTooLarge { view: u64 },
}

/// The 8-byte entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    pub version: u8,
    pub flags: EntryFlags,
    /// Bytes following the header (u48).
    pub size: u64,
}

impl EntryHeader {
    /// A version-1 header for an entry whose body is `size` bytes.
    pub fn new(flags: EntryFlags, size: u64) -> Result<Self, EntryError> {
        if size > LEDGER_ENTRY_SIZE_BYTES_MAX {
            return Err(EntryError::EntryTooLarge {
                size,
                max: LEDGER_ENTRY_SIZE_BYTES_MAX,
            });
        }
        Ok(Self {
            version: ENTRY_FORMAT_V1,
            flags,
            size,
        })
    }

    pub fn to_bytes(self) -> [u8; ENTRY_HEADER_SIZE_BYTES] {
        assert!(
            self.size <= LEDGER_ENTRY_SIZE_BYTES_MAX,
            "entry size exceeds u48"
        );
        let mut out = [0u8; ENTRY_HEADER_SIZE_BYTES];
        out[0] = self.version;
        out[1] = self.flags.bits();
        out[2..].copy_from_slice(&self.size.to_le_bytes()[..6]);
        out
    }

    /// Decodes the header fields without judging them; [`EntryHeader::parse`] also validates.
    pub fn decode(bytes: &[u8; ENTRY_HEADER_SIZE_BYTES]) -> (u8, u8, u64) {
        let mut size = [0u8; 8];
        size[..6].copy_from_slice(&bytes[2..]);
        (bytes[0], bytes[1], u64::from_le_bytes(size))
    }

    /// Parses and validates the header at the start of `data` (version 1, known flags).
    pub fn parse(data: &[u8]) -> Result<Self, EntryError> {
        let Some(bytes) = data.first_chunk::<ENTRY_HEADER_SIZE_BYTES>() else {
            return Err(EntryError::Truncated {
                needed: ENTRY_HEADER_SIZE_BYTES as u64,
                available: data.len() as u64,
            });
        };
        let (version, flags, size) = Self::decode(bytes);
        if version != ENTRY_FORMAT_V1 {
            return Err(EntryError::BadVersion { version });
        }
        let flags = EntryFlags::from_bits(flags).ok_or(EntryError::UnknownFlags { flags })?;
        Ok(Self {
            version,
            flags,
            size,
        })
    }

    /// Total length of the entry, header included.
    pub fn entry_len(self) -> u64 {
        ENTRY_HEADER_SIZE_BYTES as u64 + self.size
    }
}

/// CCF's deterministic IV for a transaction or snapshot (`TxGcmHeader`, `src/node/encryptor.h`):
/// seqno u64 LE, then view u32 LE with the top bit marking a snapshot. Every replica derives the
/// same IV, so entries are byte-identical; a seqno re-used after a rollback gets a new view, so
/// an IV is never reused under one key.
pub fn gcm_iv(
    seqno: u64,
    view: u64,
    is_snapshot: bool,
) -> Result<[u8; GCM_IV_SIZE_BYTES], EntryError> {
    if view > IV_VIEW_MAX {
        return Err(EntryError::ViewTooLarge { view });
    }
    let mut word = view as u32;
    if is_snapshot {
        word |= IV_SNAPSHOT_BIT;
    }
    let mut iv = [0u8; GCM_IV_SIZE_BYTES];
    iv[..8].copy_from_slice(&seqno.to_le_bytes());
    iv[8..].copy_from_slice(&word.to_le_bytes());
    Ok(iv)
}

/// Reads `(seqno, view, is_snapshot)` back from an IV, masking the snapshot bit off the view as
/// `ccf.ledger.GcmHeader` does.
pub fn iv_fields(iv: &[u8; GCM_IV_SIZE_BYTES]) -> (u64, u64, bool) {
    let seqno = u64::from_le_bytes(iv[..8].try_into().expect("8 bytes"));
    let word = u32::from_le_bytes(iv[8..].try_into().expect("4 bytes"));
    (
        seqno,
        u64::from(word & !IV_SNAPSHOT_BIT),
        word & IV_SNAPSHOT_BIT != 0,
    )
}

/// A parsed entry borrowing from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// The whole entry, header included: what the write-set digest hashes.
    pub bytes: &'a [u8],
    pub header: EntryHeader,
    pub tag: &'a [u8; GCM_TAG_SIZE_BYTES],
    pub iv: &'a [u8; GCM_IV_SIZE_BYTES],
    /// From the IV.
    pub seqno: u64,
    /// From the IV, snapshot bit masked off.
    pub view: u64,
    pub is_snapshot: bool,
    /// The public domain: plaintext, and the GCM additional authenticated data.
    pub public: &'a [u8],
    /// The private domain ciphertext, possibly empty.
    pub private: &'a [u8],
}

impl EntryView<'_> {
    pub fn flags(&self) -> EntryFlags {
        self.header.flags
    }

    pub fn tx_id(&self) -> TxId {
        TxId::new(self.view, self.seqno)
    }
}

/// Parses exactly one entry: `data` must hold the entry and nothing else.
pub fn parse_entry(data: &[u8]) -> Result<EntryView<'_>, EntryError> {
    let header = EntryHeader::parse(data)?;
    let actual = (data.len() - ENTRY_HEADER_SIZE_BYTES) as u64;
    if header.size != actual {
        return Err(EntryError::SizeMismatch {
            declared: header.size,
            actual,
        });
    }
    if header.size < ENTRY_SIZE_FIELD_MIN {
        return Err(EntryError::SizeTooSmall {
            size: header.size,
            min: ENTRY_SIZE_FIELD_MIN,
        });
    }
    let tag_start = ENTRY_HEADER_SIZE_BYTES;
    let iv_start = tag_start + GCM_TAG_SIZE_BYTES;
    let len_start = iv_start + GCM_IV_SIZE_BYTES;
    let tag: &[u8; GCM_TAG_SIZE_BYTES] = data[tag_start..iv_start].try_into().expect("16 bytes");
    let iv: &[u8; GCM_IV_SIZE_BYTES] = data[iv_start..len_start].try_into().expect("12 bytes");
    let public_len =
        u64::from_le_bytes(data[len_start..PUBLIC_DOMAIN_OFFSET].try_into().expect("8"));
    let available = (data.len() - PUBLIC_DOMAIN_OFFSET) as u64;
    if public_len > available {
        return Err(EntryError::PublicLengthPastEnd {
            public_len,
            available,
        });
    }
    let public_end = PUBLIC_DOMAIN_OFFSET + public_len as usize;
    let (seqno, view, is_snapshot) = iv_fields(iv);
    Ok(EntryView {
        bytes: data,
        header,
        tag,
        iv,
        seqno,
        view,
        is_snapshot,
        public: &data[PUBLIC_DOMAIN_OFFSET..public_end],
        private: &data[public_end..],
    })
}

/// The `size` field of an entry with the given domain lengths.
pub fn entry_size_field(public_len: usize, private_len: usize) -> u64 {
    ENTRY_SIZE_FIELD_MIN + public_len as u64 + private_len as u64
}

/// Lays out a whole entry in one buffer so the private domain can be encrypted in place.
///
/// Use: build, call [`EntryBuilder::aad_and_private_mut`], AES-GCM-seal the private slice in
/// place with the IV from [`EntryBuilder::iv`] and the returned AAD, then [`EntryBuilder::finish`]
/// with the tag. The entry is never copied.
#[derive(Debug)]
pub struct EntryBuilder {
    buf: Vec<u8>,
    public_end: usize,
}

impl EntryBuilder {
    /// Serialises `ws` as the transaction `tx_id` (entry type 4): the public maps into the public
    /// domain, the private maps' plaintext into the private domain. CCF writes no entry at all
    /// for a write set without changes (a read-only transaction takes no seqno); that decision
    /// belongs to the caller, so an empty write set still yields a well-formed entry here.
    pub fn for_write_set(
        flags: EntryFlags,
        tx_id: TxId,
        claims_digest: &Digest,
        commit_evidence_digest: &Digest,
        ws: &WriteSet,
    ) -> Result<Self, EntryError> {
        let iv = gcm_iv(tx_id.seqno, tx_id.view, false)?;
        let public_len = domain::public_domain_len(ws);
        let private_len = domain::private_domain_len(ws);
        let mut buf = Self::start(flags, &iv, public_len, private_len)?;
        domain::write_public_domain(
            &mut buf,
            tx_id.seqno,
            claims_digest,
            commit_evidence_digest,
            ws,
        );
        assert_eq!(
            buf.len(),
            PUBLIC_DOMAIN_OFFSET + public_len,
            "public domain size drifted"
        );
        domain::write_private_domain(&mut buf, ws);
        assert_eq!(
            buf.len(),
            PUBLIC_DOMAIN_OFFSET + public_len + private_len,
            "private size drifted"
        );
        Ok(Self {
            buf,
            public_end: PUBLIC_DOMAIN_OFFSET + public_len,
        })
    }

    /// Lays out already-serialised domains (e.g. a snapshot, or a re-encryption).
    pub fn from_domains(
        flags: EntryFlags,
        iv: &[u8; GCM_IV_SIZE_BYTES],
        public: &[u8],
        private_plaintext: &[u8],
    ) -> Result<Self, EntryError> {
        let mut buf = Self::start(flags, iv, public.len(), private_plaintext.len())?;
        buf.extend_from_slice(public);
        buf.extend_from_slice(private_plaintext);
        Ok(Self {
            buf,
            public_end: PUBLIC_DOMAIN_OFFSET + public.len(),
        })
    }

    fn start(
        flags: EntryFlags,
        iv: &[u8; GCM_IV_SIZE_BYTES],
        public_len: usize,
        private_len: usize,
    ) -> Result<Vec<u8>, EntryError> {
        let header = EntryHeader::new(flags, entry_size_field(public_len, private_len))?;
        let mut buf = Vec::with_capacity(header.entry_len() as usize);
        buf.extend_from_slice(&header.to_bytes());
        buf.extend_from_slice(&[0u8; GCM_TAG_SIZE_BYTES]);
        buf.extend_from_slice(iv);
        buf.extend_from_slice(&(public_len as u64).to_le_bytes());
        Ok(buf)
    }

    /// The IV written into the GCM header.
    pub fn iv(&self) -> [u8; GCM_IV_SIZE_BYTES] {
        let start = ENTRY_HEADER_SIZE_BYTES + GCM_TAG_SIZE_BYTES;
        self.buf[start..start + GCM_IV_SIZE_BYTES]
            .try_into()
            .expect("12 bytes")
    }

    /// The public domain bytes.
    pub fn public(&self) -> &[u8] {
        &self.buf[PUBLIC_DOMAIN_OFFSET..self.public_end]
    }

    /// The AAD (public domain) and the private plaintext, to be encrypted in place.
    pub fn aad_and_private_mut(&mut self) -> (&[u8], &mut [u8]) {
        let (head, private) = self.buf.split_at_mut(self.public_end);
        (&head[PUBLIC_DOMAIN_OFFSET..], private)
    }

    /// Writes the GCM tag and returns the finished entry.
    pub fn finish(mut self, tag: &[u8; GCM_TAG_SIZE_BYTES]) -> Vec<u8> {
        self.buf[ENTRY_HEADER_SIZE_BYTES..ENTRY_HEADER_SIZE_BYTES + GCM_TAG_SIZE_BYTES]
            .copy_from_slice(tag);
        self.buf
    }
}

/// Assembles an entry from finished parts: the private domain is already ciphertext.
pub fn assemble_entry(
    flags: EntryFlags,
    tag: &[u8; GCM_TAG_SIZE_BYTES],
    iv: &[u8; GCM_IV_SIZE_BYTES],
    public: &[u8],
    private_ciphertext: &[u8],
) -> Result<Vec<u8>, EntryError> {
    Ok(EntryBuilder::from_domains(flags, iv, public, private_ciphertext)?.finish(tag))
}

#[cfg(test)]
mod tests;
