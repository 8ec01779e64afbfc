//! The canonical change set of one transaction, shared by the KV store (which builds it) and the
//! ledger codec (which serialises it).
//!
//! CCF keeps, per map touched by a transaction, an ordered map from serialised key to
//! `optional<serialised value>` where an empty optional is a remove (`src/kv/untyped_map.h`,
//! `ChangeSet::writes`). Only the final state of each key is kept, and reads are never
//! serialised. Ordered maps give the canonical order the ledger needs: maps by name byte order,
//! keys by byte order. [`bytes::Bytes`] keys and values make clones and snapshots cheap.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Names of maps in the public (plaintext) domain start with this prefix; every other map is
/// private and encrypted in the ledger (`include/ccf/kv/get_name.h`, `SecurityDomain`).
pub const PUBLIC_MAP_PREFIX: &str = "public:";

/// Returns true if `name` is a public map, i.e. written in plaintext into the public domain.
pub fn is_public_map(name: &str) -> bool {
    name.starts_with(PUBLIC_MAP_PREFIX)
}

/// The writes of one transaction to one map: key → `Some(value)` for a write, `None` for a remove.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MapChanges {
    pub writes: BTreeMap<Bytes, Option<Bytes>>,
}

impl MapChanges {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a write of `value` at `key`, replacing any earlier write or remove of that key in
    /// this transaction (only the final state is serialised).
    pub fn put(&mut self, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.writes.insert(key.into(), Some(value.into()));
    }

    /// Records a remove of `key`, replacing any earlier write of that key in this transaction.
    pub fn remove(&mut self, key: impl Into<Bytes>) {
        self.writes.insert(key.into(), None);
    }

    /// True when the map has no writes and no removes; such maps are left out of the ledger.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Number of keys written with a value.
    pub fn write_count(&self) -> usize {
        self.writes.values().filter(|v| v.is_some()).count()
    }

    /// Number of keys removed.
    pub fn remove_count(&self) -> usize {
        self.writes.values().filter(|v| v.is_none()).count()
    }

    /// Writes with a value, in key byte order (the order CCF serialises them).
    pub fn puts(&self) -> impl Iterator<Item = (&Bytes, &Bytes)> {
        self.writes
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
    }

    /// Removed keys, in key byte order (the order CCF serialises them, after all writes).
    pub fn removes(&self) -> impl Iterator<Item = &Bytes> {
        self.writes
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| k)
    }
}

/// The change set of one transaction: map name → changes, ordered by name bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteSet {
    pub maps: BTreeMap<String, MapChanges>,
}

/// The value `maps` write to the singleton key of `map` (the built-in singleton tables:
/// signatures, service info, ledger secrets, …); `None` if they do not write it, or remove it.
pub fn singleton_write<'a>(maps: &'a BTreeMap<String, MapChanges>, map: &str) -> Option<&'a Bytes> {
    maps.get(map)
        .and_then(|m| m.writes.get(&crate::tables::SINGLETON_KEY[..]))
        .and_then(Option::as_ref)
}

impl WriteSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// What this write set writes to the singleton key of `map` ([`singleton_write`]).
    pub fn singleton(&self, map: &str) -> Option<&Bytes> {
        singleton_write(&self.maps, map)
    }

    /// True when no map has a write or remove. Such a transaction is read-only: CCF produces no
    /// ledger entry and consumes no seqno for it (`CommittableTx::serialise`).
    pub fn is_empty(&self) -> bool {
        self.maps.values().all(MapChanges::is_empty)
    }

    /// The changes of map `name`, created empty if absent.
    pub fn map_mut(&mut self, name: &str) -> &mut MapChanges {
        if !self.maps.contains_key(name) {
            self.maps.insert(name.to_owned(), MapChanges::default());
        }
        self.maps.get_mut(name).expect("inserted above")
    }

    /// Records a write of `value` at `key` in map `name`.
    pub fn put(&mut self, name: &str, key: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.map_mut(name).put(key, value);
    }

    /// Records a remove of `key` in map `name`.
    pub fn remove(&mut self, name: &str, key: impl Into<Bytes>) {
        self.map_mut(name).remove(key);
    }

    /// Public maps with at least one change, in name byte order: the public domain's records.
    pub fn public_maps(&self) -> impl Iterator<Item = (&str, &MapChanges)> {
        self.non_empty_maps()
            .filter(|(name, _)| is_public_map(name))
    }

    /// Private maps with at least one change, in name byte order: the private domain's records.
    pub fn private_maps(&self) -> impl Iterator<Item = (&str, &MapChanges)> {
        self.non_empty_maps()
            .filter(|(name, _)| !is_public_map(name))
    }

    /// True when at least one private map has a change.
    pub fn has_private_changes(&self) -> bool {
        self.private_maps().next().is_some()
    }

    fn non_empty_maps(&self) -> impl Iterator<Item = (&str, &MapChanges)> {
        self.maps
            .iter()
            .filter(|(_, c)| !c.is_empty())
            .map(|(n, c)| (n.as_str(), c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn singleton_writes_are_found_and_removals_are_not() {
        let mut ws = WriteSet::new();
        ws.put("s", crate::tables::SINGLETON_KEY.to_vec(), b"v".to_vec());
        ws.put("k", b"other key".to_vec(), b"v".to_vec());
        ws.remove("r", crate::tables::SINGLETON_KEY.to_vec());
        assert_eq!(ws.singleton("s").map(|b| &b[..]), Some(&b"v"[..]));
        assert_eq!(ws.singleton("k"), None, "not the singleton key");
        assert_eq!(ws.singleton("r"), None, "removed");
        assert_eq!(ws.singleton("absent"), None);
    }

    #[test]
    fn public_prefix_table() {
        let cases: &[(&str, bool)] = &[
            ("public:ccf.gov.nodes.info", true),
            ("public:", true),
            ("records", false),
            ("Public:x", false),
            (" public:x", false),
            ("publicx", false),
            ("", false),
        ];
        for (name, want) in cases {
            assert_eq!(is_public_map(name), *want, "name {name:?}");
        }
    }

    #[test]
    fn final_state_wins_and_domains_split() {
        let mut ws = WriteSet::new();
        assert!(ws.is_empty());
        ws.put("public:a", "k", "v1");
        ws.put("public:a", "k", "v2");
        ws.remove("priv", "x");
        ws.put("priv", "x", "back");
        ws.map_mut("public:empty");
        assert!(!ws.is_empty());
        let public: Vec<_> = ws.public_maps().map(|(n, _)| n).collect();
        let private: Vec<_> = ws.private_maps().map(|(n, _)| n).collect();
        assert_eq!(public, ["public:a"]);
        assert_eq!(private, ["priv"]);
        assert_eq!(
            ws.maps["public:a"].writes[&Bytes::from("k")],
            Some(Bytes::from("v2"))
        );
        assert_eq!(ws.maps["priv"].write_count(), 1);
        assert_eq!(ws.maps["priv"].remove_count(), 0);
        assert!(ws.has_private_changes());
    }

    #[test]
    fn only_empty_maps_is_empty() {
        let mut ws = WriteSet::new();
        ws.map_mut("public:a");
        ws.map_mut("b");
        assert!(ws.is_empty());
        assert_eq!(ws.public_maps().count(), 0);
    }
}
