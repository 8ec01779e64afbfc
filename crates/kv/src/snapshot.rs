//! Whole-store snapshots: a consistent view of every map at one version (O(1) to take: the
//! maps are persistent), and the builder that loads one back. The bytes of CCF's snapshot files
//! are laid out by `coco_codec::snapshot` from this iteration, and parsed back into a builder.

use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;

use crate::{MapState, State, Version};

/// A consistent, immutable view of the whole store at one version.
#[derive(Clone, Debug)]
pub struct StoreSnapshot {
    state: Arc<State>,
}

/// A snapshot refused while loading it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("map {0:?} appears twice")]
    DuplicateMap(String),
    #[error("key 0x{key} appears twice in map {map:?}")]
    DuplicateKey { map: String, key: String },
    #[error("map {map:?} holds version {version}, later than the snapshot's {snapshot}")]
    VersionAhead {
        map: String,
        version: Version,
        snapshot: Version,
    },
}

impl StoreSnapshot {
    pub(crate) fn new(state: Arc<State>) -> Self {
        StoreSnapshot { state }
    }

    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    pub fn version(&self) -> Version {
        self.state.version
    }

    /// Starts a transaction reading this snapshot. O(1). Its writes can never be committed
    /// here; the read path only uses it to read.
    pub fn begin(&self) -> crate::Tx {
        crate::Tx::reading(self.state.clone())
    }

    /// Every entry as `(map, key, version, value)`, maps in name order, keys in byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes, Version, &Bytes)> {
        self.state.maps.iter().flat_map(|(name, m)| {
            m.entries
                .iter()
                .map(move |(k, (v, val))| (name.as_str(), k, *v, val))
        })
    }

    /// Every map as `(name, last change version, entries as (key, version, value))`, in name
    /// order, keys in byte order.
    pub fn maps(
        &self,
    ) -> impl Iterator<
        Item = (
            &str,
            Version,
            impl Iterator<Item = (&Bytes, Version, &Bytes)>,
        ),
    > {
        self.state.maps.iter().map(|(name, m)| {
            (
                name.as_str(),
                m.last_change,
                m.entries.iter().map(|(k, (v, val))| (k, *v, val)),
            )
        })
    }

    /// Number of entries in every map together.
    pub fn len(&self) -> usize {
        self.state.maps.values().map(|m| m.entries.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Loads a snapshot map by map (from a snapshot file), refusing what no store could hold.
#[derive(Debug)]
pub struct SnapshotBuilder {
    version: Version,
    maps: OrdMap<String, MapState>,
}

impl SnapshotBuilder {
    /// A store at `version` (the snapshot's seqno).
    pub fn new(version: Version) -> Self {
        SnapshotBuilder {
            version,
            maps: OrdMap::new(),
        }
    }

    /// Adds a map with its last change version and its entries, in any order.
    pub fn map(
        &mut self,
        name: &str,
        last_change: Version,
        entries: impl IntoIterator<Item = (Bytes, Version, Bytes)>,
    ) -> Result<(), SnapshotError> {
        if self.maps.contains_key(name) {
            return Err(SnapshotError::DuplicateMap(name.to_owned()));
        }
        let ahead = |version| SnapshotError::VersionAhead {
            map: name.to_owned(),
            version,
            snapshot: self.version,
        };
        if last_change > self.version {
            return Err(ahead(last_change));
        }
        let mut map = MapState {
            entries: OrdMap::new(),
            last_change,
        };
        for (key, version, value) in entries {
            if version > self.version {
                return Err(ahead(version));
            }
            if map.entries.contains_key(&key) {
                return Err(SnapshotError::DuplicateKey {
                    map: name.to_owned(),
                    key: key.iter().take(32).map(|b| format!("{b:02x}")).collect(),
                });
            }
            map.entries.insert(key, (version, value));
        }
        self.maps.insert(name.to_owned(), map);
        Ok(())
    }

    pub fn finish(self) -> StoreSnapshot {
        StoreSnapshot {
            state: Arc::new(State {
                version: self.version,
                maps: self.maps,
            }),
        }
    }
}
