//! The in-memory key-value store of a coco node (CCF's `kv::Store`).
//!
//! - **Maps** are named; a name starting `public:` is a public map (plaintext in the ledger),
//!   anything else is private. Maps come into being on first write.
//! - **Versions** are seqnos. Every key remembers the seqno of its last write; every map the
//!   seqno of its last change. The store's version is the last applied seqno.
//! - **Transactions** read a consistent state (O(1) to begin: the state is a persistent map
//!   shared with the store), buffer their writes, and record what they read. Commit checks the
//!   reads against the current state (optimistic concurrency): a changed key, or any change to a
//!   map the transaction iterated, is a [`Conflict`] and the caller re-executes.
//! - **Write sets** come out canonical — final values only, keys in byte order, maps in name
//!   order — because their serialisation is hashed into the Merkle tree.
//! - **Rollback** to any version not yet compacted restores that exact state; **compaction**
//!   drops history at or below the global commit point.
//!
//! Architecture invariant: no I/O, no clocks, and every iteration order is defined (`imbl`'s
//! ordered maps and `BTreeMap`), so two stores fed the same inputs are identical.

mod snapshot;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
pub use coco_codec::{MapChanges, WriteSet};
use coco_types::SeqNo;
use imbl::OrdMap;

pub use snapshot::{SnapshotBuilder, SnapshotError, StoreSnapshot};

/// A version of a key, map or store: the seqno of the transaction that wrote it.
pub type Version = SeqNo;

/// Whether a map name denotes a public map (plaintext in the ledger).
pub fn is_public(map: &str) -> bool {
    coco_codec::is_public_map(map)
}

/// Whether a map is one of CCF's built-in governance or internal maps, which applications may
/// read (governance) but never write. The node enforces who may write them.
pub fn is_builtin(map: &str) -> bool {
    map.starts_with("public:ccf.gov.") || map.starts_with("public:ccf.internal.")
}

#[derive(Clone, Debug, Default)]
struct MapState {
    entries: OrdMap<Bytes, (Version, Bytes)>,
    /// Version of the last transaction that changed this map (0 if never).
    last_change: Version,
}

#[derive(Clone, Debug, Default)]
struct State {
    version: Version,
    maps: OrdMap<String, MapState>,
}

impl State {
    fn key_version(&self, map: &str, key: &[u8]) -> Option<Version> {
        self.maps
            .get(map)
            .and_then(|m| m.entries.get(key))
            .map(|(v, _)| *v)
    }

    fn map_last_change(&self, map: &str) -> Version {
        self.maps.get(map).map(|m| m.last_change).unwrap_or(0)
    }

    /// Applies a write set as version `seqno` in place, returning what undoes it. Nodes shared
    /// with a snapshot or transaction still holding an earlier state are copied on first write
    /// (persistent maps); nodes only this state holds are changed where they are.
    fn apply(&mut self, ws: &WriteSet, seqno: Version) -> Undo {
        let mut undo = Undo {
            previous_version: self.version,
            maps: Vec::new(),
        };
        self.version = seqno;
        for (name, changes) in &ws.maps {
            if changes.writes.is_empty() {
                continue;
            }
            let existed = self.maps.contains_key(name.as_str());
            if !existed {
                self.maps.insert(name.clone(), MapState::default());
            }
            let m = self
                .maps
                .get_mut(name.as_str())
                .expect("the map exists or was just created");
            let mut map_undo = MapUndo {
                name: name.clone(),
                existed,
                previous_last_change: m.last_change,
                keys: Vec::with_capacity(changes.writes.len()),
            };
            for (k, v) in &changes.writes {
                let previous = match v {
                    Some(v) => m.entries.insert(k.clone(), (seqno, v.clone())),
                    None => m.entries.remove(k),
                };
                map_undo.keys.push((k.clone(), previous));
            }
            m.last_change = seqno;
            undo.maps.push(map_undo);
        }
        undo
    }

    /// Reverts what `apply` did.
    fn undo(&mut self, undo: Undo) {
        self.version = undo.previous_version;
        for map_undo in undo.maps.into_iter().rev() {
            if !map_undo.existed {
                self.maps.remove(map_undo.name.as_str());
                continue;
            }
            let m = self
                .maps
                .get_mut(map_undo.name.as_str())
                .expect("a map an undo record names exists");
            m.last_change = map_undo.previous_last_change;
            for (k, previous) in map_undo.keys.into_iter().rev() {
                match previous {
                    Some(entry) => {
                        m.entries.insert(k, entry);
                    }
                    None => {
                        m.entries.remove(&k);
                    }
                }
            }
        }
    }
}

/// What reverts one version: each map it changed, with each key's entry before it.
#[derive(Clone, Debug)]
struct Undo {
    previous_version: Version,
    maps: Vec<MapUndo>,
}

#[derive(Clone, Debug)]
struct MapUndo {
    name: String,
    /// False if the version created the map (undoing it removes the map).
    existed: bool,
    previous_last_change: Version,
    keys: Vec<(Bytes, Option<(Version, Bytes)>)>,
}

/// A transaction failed its read check: something it read changed since it began.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("conflict on map {map}: {what}")]
pub struct Conflict {
    pub map: String,
    pub what: String,
}

/// Outcome of a successful commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitResult {
    /// The transaction wrote nothing; no seqno was consumed.
    ReadOnly,
    /// Applied as the given seqno with this canonical write set.
    Committed { write_set: WriteSet },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("write set for seqno {got} does not follow the store's version {current}")]
    NotNext { current: Version, got: Version },
    #[error("cannot roll back to {to}: versions at or below {compacted} are compacted")]
    RollbackBelowCompaction { to: Version, compacted: Version },
    #[error("cannot roll back to {to}: the store is only at {current}")]
    RollbackAhead { to: Version, current: Version },
}

/// The store: the current state, plus what undoes each version that may still be rolled back.
///
/// The current state is changed in place (copy-on-write only where a transaction or snapshot
/// still shares it), so a committed version costs nothing to forget: its undo record is
/// dropped. Keeping a whole persistent-map version per transaction instead made freeing them
/// at commit a third of the core thread's time (docs/perf.md).
#[derive(Clone, Debug)]
pub struct Store {
    current: Arc<State>,
    /// One record per version above `compacted`, oldest first.
    undo: VecDeque<Undo>,
    /// The oldest version the store can roll back to.
    compacted: Version,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Store {
            current: Arc::new(State::default()),
            undo: VecDeque::new(),
            compacted: 0,
        }
    }

    /// The last applied seqno.
    pub fn current_version(&self) -> Version {
        self.current.version
    }

    /// The oldest version the store can still roll back to.
    pub fn compacted_version(&self) -> Version {
        self.compacted
    }

    /// Starts a transaction reading the current state. O(1).
    pub fn begin(&self) -> Tx {
        Tx::reading(self.current.clone())
    }

    /// Checks a transaction's reads against the current state.
    pub fn check(&self, tx: &Tx) -> Result<(), Conflict> {
        let now = &self.current;
        if Arc::ptr_eq(now, &tx.base) {
            return Ok(());
        }
        for map in &tx.map_reads {
            if now.map_last_change(map) > tx.base.version {
                return Err(Conflict {
                    map: map.clone(),
                    what: "the map changed after it was iterated".into(),
                });
            }
        }
        for ((map, key), seen) in &tx.reads {
            if now.key_version(map, key) != *seen {
                return Err(Conflict {
                    map: map.clone(),
                    what: format!("key {} changed after it was read", printable(key)),
                });
            }
        }
        Ok(())
    }

    /// Commits `tx` as version `seqno` if its reads still hold. A transaction without writes
    /// consumes no seqno. `seqno` must be the next version: the node allocates seqnos, so
    /// anything else is a bug.
    pub fn commit(&mut self, tx: Tx, seqno: Version) -> Result<CommitResult, Conflict> {
        let write_set = tx.write_set();
        if write_set.is_empty() {
            return Ok(CommitResult::ReadOnly);
        }
        self.check(&tx)?;
        let current = self.current_version();
        assert_eq!(
            seqno,
            current + 1,
            "commit of seqno {seqno} while the store is at {current}"
        );
        // The transaction's hold on the state would force a copy of everything written.
        drop(tx);
        self.push(&write_set, seqno);
        Ok(CommitResult::Committed { write_set })
    }

    /// Applies a write set received from elsewhere (what backups do): atomic, no conflict check.
    pub fn apply(&mut self, write_set: &WriteSet, seqno: Version) -> Result<(), KvError> {
        let current = self.current_version();
        if seqno != current + 1 {
            return Err(KvError::NotNext {
                current,
                got: seqno,
            });
        }
        self.push(write_set, seqno);
        Ok(())
    }

    fn push(&mut self, write_set: &WriteSet, seqno: Version) {
        let undo = Arc::make_mut(&mut self.current).apply(write_set, seqno);
        self.undo.push_back(undo);
    }

    /// Restores the state as of version `to`, forgetting every later version.
    pub fn rollback(&mut self, to: Version) -> Result<(), KvError> {
        let current = self.current_version();
        if to > current {
            return Err(KvError::RollbackAhead { to, current });
        }
        let compacted = self.compacted_version();
        if to < compacted {
            return Err(KvError::RollbackBelowCompaction { to, compacted });
        }
        while self.current_version() > to {
            let undo = self
                .undo
                .pop_back()
                .expect("every version above the compaction point has an undo record");
            Arc::make_mut(&mut self.current).undo(undo);
        }
        assert_eq!(self.current_version(), to);
        Ok(())
    }

    /// Declares every version at or below `up_to` globally committed: they can never be rolled
    /// back, so what undoes them is dropped.
    pub fn compact(&mut self, up_to: Version) {
        let up_to = up_to.min(self.current_version());
        if up_to <= self.compacted {
            return;
        }
        let drop = (up_to - self.compacted) as usize;
        assert!(
            drop <= self.undo.len(),
            "one undo record per retained version"
        );
        self.undo.drain(..drop);
        self.compacted = up_to;
    }

    /// Replaces every private map, in the current state and every version still held for
    /// rollback, with `from`'s private maps as of the same version (CCF's `swap_private_maps`):
    /// a recovered service replays its private domains into a separate store, then adopts them.
    /// `from` must be at this store's version. Rolling back below what `from` still holds
    /// leaves the private maps as `from`'s oldest retained version. Keys keep the versions
    /// `from` gave them.
    pub fn replace_private_maps(&mut self, from: &Store) {
        assert_eq!(
            from.current_version(),
            self.current_version(),
            "private maps are replaced from a store at the same version"
        );
        let state = Arc::make_mut(&mut self.current);
        let stale: Vec<String> = state
            .maps
            .keys()
            .filter(|name| !is_public(name))
            .cloned()
            .collect();
        for name in stale {
            state.maps.remove(&name);
        }
        for (name, m) in from.current.maps.iter().filter(|(n, _)| !is_public(n)) {
            state.maps.insert(name.clone(), m.clone());
        }
        // Version v's record sits at index v - compacted - 1 in either store.
        for (i, undo) in self.undo.iter_mut().enumerate() {
            let version = self.compacted + 1 + i as Version;
            undo.maps.retain(|m| is_public(&m.name));
            if version > from.compacted {
                let theirs = &from.undo[(version - from.compacted - 1) as usize];
                undo.maps
                    .extend(theirs.maps.iter().filter(|m| !is_public(&m.name)).cloned());
            }
        }
    }

    /// A consistent snapshot of the current state. O(1).
    pub fn snapshot(&self) -> StoreSnapshot {
        StoreSnapshot::new(self.current.clone())
    }

    /// A store whose state (and compaction floor) is the snapshot's.
    pub fn from_snapshot(snapshot: &StoreSnapshot) -> Self {
        Store {
            current: snapshot.state().clone(),
            undo: VecDeque::new(),
            compacted: snapshot.version(),
        }
    }
}

fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.len() <= 64 => format!("{s:?}"),
        _ => format!(
            "0x{}",
            key.iter()
                .take(32)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    }
}

/// A transaction: a consistent view of the store plus buffered writes and recorded reads.
#[derive(Clone, Debug)]
pub struct Tx {
    base: Arc<State>,
    /// (map, key) -> version observed (`None` = absent).
    reads: BTreeMap<(String, Bytes), Option<Version>>,
    /// Maps iterated or counted: any later change to them conflicts.
    map_reads: BTreeSet<String>,
    /// map -> key -> new value (`None` = remove).
    writes: BTreeMap<String, BTreeMap<Bytes, Option<Bytes>>>,
}

impl Tx {
    fn reading(base: Arc<State>) -> Tx {
        Tx {
            base,
            reads: BTreeMap::new(),
            map_reads: BTreeSet::new(),
            writes: BTreeMap::new(),
        }
    }

    /// The store version this transaction reads.
    pub fn read_version(&self) -> Version {
        self.base.version
    }

    fn base_get(&mut self, map: &str, key: &[u8]) -> Option<&(Version, Bytes)> {
        let entry = self.base.maps.get(map).and_then(|m| m.entries.get(key));
        self.reads
            .entry((map.to_owned(), Bytes::copy_from_slice(key)))
            .or_insert(entry.map(|(v, _)| *v));
        entry
    }

    fn own_write(&self, map: &str, key: &[u8]) -> Option<&Option<Bytes>> {
        self.writes.get(map).and_then(|m| m.get(key))
    }

    /// The value of `key` as this transaction sees it (its own writes first).
    pub fn get(&mut self, map: &str, key: &[u8]) -> Option<Bytes> {
        if let Some(w) = self.own_write(map, key) {
            return w.clone();
        }
        self.base_get(map, key).map(|(_, v)| v.clone())
    }

    pub fn has(&mut self, map: &str, key: &[u8]) -> bool {
        self.get(map, key).is_some()
    }

    /// Version of the last committed write of `key` as of this transaction's read version
    /// (CCF `get_version_of_previous_write`); `None` if absent.
    pub fn get_version_of_previous_write(&mut self, map: &str, key: &[u8]) -> Option<Version> {
        self.base_get(map, key).map(|(v, _)| *v)
    }

    pub fn put(&mut self, map: &str, key: Bytes, value: Bytes) {
        self.writes
            .entry(map.to_owned())
            .or_default()
            .insert(key, Some(value));
    }

    /// Removes `key`. Removing a key that does not exist is a no-op (as in CCF); returns whether
    /// it existed.
    pub fn remove(&mut self, map: &str, key: &[u8]) -> bool {
        let existed = self.get(map, key).is_some();
        let in_base = self
            .base
            .maps
            .get(map)
            .is_some_and(|m| m.entries.contains_key(key));
        let writes = self.writes.entry(map.to_owned()).or_default();
        if in_base {
            writes.insert(Bytes::copy_from_slice(key), None);
        } else {
            // Only this transaction created it: forgetting the write removes it.
            writes.remove(key);
        }
        existed
    }

    /// Removes every key of `map`.
    pub fn clear(&mut self, map: &str) {
        self.map_reads.insert(map.to_owned());
        let base_keys: Vec<Bytes> = self
            .base
            .maps
            .get(map)
            .map(|m| m.entries.keys().cloned().collect())
            .unwrap_or_default();
        let writes = self.writes.entry(map.to_owned()).or_default();
        writes.clear();
        for k in base_keys {
            writes.insert(k, None);
        }
    }

    /// Calls `f(key, value)` for every key of `map` as this transaction sees it, in key byte
    /// order, until `f` returns false.
    pub fn for_each(&mut self, map: &str, mut f: impl FnMut(&Bytes, &Bytes) -> bool) {
        self.map_reads.insert(map.to_owned());
        let empty = BTreeMap::new();
        let own = self.writes.get(map).unwrap_or(&empty);
        let base = self.base.maps.get(map);
        let mut base_iter = base.into_iter().flat_map(|m| m.entries.iter()).peekable();
        let mut own_iter = own.iter().peekable();
        loop {
            let take_own = match (base_iter.peek(), own_iter.peek()) {
                (None, None) => return,
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some((bk, _)), Some((ok, _))) => ok <= bk,
            };
            if take_own {
                let (k, v) = own_iter.next().expect("peeked");
                if let Some((bk, _)) = base_iter.peek()
                    && *bk == k
                {
                    base_iter.next();
                }
                if let Some(v) = v
                    && !f(k, v)
                {
                    return;
                }
            } else {
                let (k, (_, v)) = base_iter.next().expect("peeked");
                if !f(k, v) {
                    return;
                }
            }
        }
    }

    /// Number of keys in `map` as this transaction sees it.
    pub fn size(&mut self, map: &str) -> usize {
        let mut n = 0;
        self.for_each(map, |_, _| {
            n += 1;
            true
        });
        n
    }

    /// Names of maps this transaction changes.
    pub fn written_maps(&self) -> impl Iterator<Item = &str> {
        self.writes
            .iter()
            .filter(|(_, w)| !w.is_empty())
            .map(|(n, _)| n.as_str())
    }

    /// The canonical write set: final values only, keys and maps in byte order, no-op changes
    /// dropped.
    pub fn write_set(&self) -> WriteSet {
        let mut ws = WriteSet::default();
        for (name, writes) in &self.writes {
            let base = self.base.maps.get(name);
            let mut changes = MapChanges::default();
            for (k, v) in writes {
                let in_base = base.is_some_and(|m| m.entries.contains_key(k));
                // A removal of a key absent from the base is not a change.
                if v.is_some() || in_base {
                    changes.writes.insert(k.clone(), v.clone());
                }
            }
            if !changes.writes.is_empty() {
                ws.maps.insert(name.clone(), changes);
            }
        }
        ws
    }
}

#[cfg(test)]
mod tests;
