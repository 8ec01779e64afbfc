//! Helpers shared by this crate's tests: byte builders and proptest strategies.

use bytes::Bytes;
use proptest::prelude::*;

use crate::write_set::{MapChanges, WriteSet};

pub fn u64le(n: u64) -> Vec<u8> {
    n.to_le_bytes().to_vec()
}

/// CCF "sized bytes": u64 LE length then the bytes.
pub fn sized(b: &[u8]) -> Vec<u8> {
    let mut out = u64le(b.len() as u64);
    out.extend_from_slice(b);
    out
}

/// Concatenates byte pieces.
pub fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn map_changes() -> impl Strategy<Value = MapChanges> {
    let key = proptest::collection::vec(any::<u8>(), 0..12);
    let value = proptest::option::weighted(0.75, proptest::collection::vec(any::<u8>(), 0..24));
    proptest::collection::btree_map(key, value, 1..5).prop_map(|m| MapChanges {
        writes: m
            .into_iter()
            .map(|(k, v)| (Bytes::from(k), v.map(Bytes::from)))
            .collect(),
    })
}

/// Arbitrary non-empty-map write sets over a mix of public and private names, including names
/// that differ only after the `public:` prefix and non-ASCII names.
pub fn write_set() -> impl Strategy<Value = WriteSet> {
    let name = prop_oneof![
        "[a-z.]{1,10}".prop_map(|s| format!("public:{s}")),
        "[a-z.]{0,10}",
        "[α-ω]{1,3}",
    ];
    proptest::collection::btree_map(name, map_changes(), 0..5).prop_map(|maps| WriteSet { maps })
}
