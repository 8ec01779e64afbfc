//! CCF's ledger wire format, byte for byte: the bytes coco writes must be readable by CCF's own
//! tools (`ccf.ledger`, `read_ledger.py`) and by CCF nodes, and the bytes CCF writes must parse
//! here.
//!
//! | Module | What it lays out | CCF source |
//! |---|---|---|
//! | [`write_set`] | the change set of one transaction (maps → key → value or remove) | `src/kv/untyped_map.h` |
//! | [`domain`] | public/private domain serialisation of a write set | `src/kv/generic_serialise_wrapper.h`, `src/kv/raw_serialise.h` |
//! | [`entry`] | one ledger entry: entry header, GCM header, domains | `src/kv/serialised_entry_format.h`, `src/node/encryptor.h` |
//! | [`chunk`] | chunk files: names, header, positions table, crash-tail scan | `src/host/ledger.h` |
//! | [`tables`] | names and JSON values of CCF's built-in maps | `include/ccf/service/tables/*.h`, `src/service/tables/*.h` |
//! | [`snapshot`] | snapshot files: the store at one seqno, its receipt, file names | `src/kv/snapshot.h`, `src/ds/champ_map.h`, `src/snapshots/filenames.h` |
//! | [`cose`] | the COSE_Sign1 ledger root signature | `src/node/history.h`, `src/crypto/openssl/cose_sign.cpp` |
//!
//! Architecture invariant: this crate links no cryptography and does no I/O. Wherever CCF hashes,
//! encrypts or signs, the caller computes the digest, ciphertext, tag or signature (with
//! `coco-crypto`) and passes the result in; the codec only places bytes. This keeps the format
//! testable with fixed inputs and keeps key material out of this crate.
//!
//! Every parser here takes bytes that a file or a peer controls, so parsers return typed errors
//! (naming the byte offset of the fault) and never panic; property tests feed them random and
//! mutated input to hold them to that.
//!
//! Facts are checked against CCF at commit f157da8 (`cjen1-msft/CCF`, tracking `microsoft/CCF`
//! main, version 7.0.0-dev5) and against the `ccf` Python package's `ledger.py`.

pub mod chunk;
pub mod cose;
pub mod domain;
pub mod entry;
pub mod snapshot;
pub mod tables;
pub mod write_set;

mod cursor;
#[cfg(test)]
mod golden_tests;
#[cfg(test)]
mod test_support;

pub use chunk::{ChunkError, ChunkName, ChunkScan, ChunkState, ScannedEntry, TornTail, scan_chunk};
pub use cose::{CoseError, ParsedSign1};
pub use domain::{DomainError, EntryType, PublicDomain};
pub use entry::{
    EntryBuilder, EntryError, EntryFlags, EntryHeader, EntryView, assemble_entry, gcm_iv,
    parse_entry,
};
pub use write_set::{MapChanges, WriteSet, is_public_map};
