//! Whole-store snapshots: a consistent view at one version, and a simple self-describing binary
//! form of it. (CCF's snapshot file format, with its CHAMP map serialisation, arrives with the
//! snapshots issue and will be produced by the codec from this same iteration.)
//!
//! Format (all integers u64 little-endian):
//!
//! | field | |
//! |---|---|
//! | magic | the 8 bytes `COCOKV01` |
//! | version | store version |
//! | map count | |
//! | per map | name (len + UTF-8), last change version, entry count, then per entry: key (len + bytes), version, value (len + bytes) |

use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;

use crate::{MapState, State, Version};

const MAGIC: &[u8; 8] = b"COCOKV01";

/// A consistent, immutable view of the whole store at one version.
#[derive(Clone, Debug)]
pub struct StoreSnapshot {
    state: Arc<State>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("not a coco KV snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot truncated at byte {0}")]
    Truncated(usize),
    #[error("map name at byte {0} is not UTF-8")]
    BadName(usize),
    #[error("{0} trailing bytes after the snapshot")]
    Trailing(usize),
    #[error("snapshot is not in canonical order at byte {0}")]
    NotCanonical(usize),
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

    /// Every entry as `(map, key, version, value)`, maps in name order, keys in byte order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Bytes, Version, &Bytes)> {
        self.state.maps.iter().flat_map(|(name, m)| {
            m.entries
                .iter()
                .map(move |(k, (v, val))| (name.as_str(), k, *v, val))
        })
    }

    pub fn serialise(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MAGIC);
        put_u64(&mut out, self.state.version);
        put_u64(&mut out, self.state.maps.len() as u64);
        for (name, m) in &self.state.maps {
            put_bytes(&mut out, name.as_bytes());
            put_u64(&mut out, m.last_change);
            put_u64(&mut out, m.entries.len() as u64);
            for (k, (v, val)) in &m.entries {
                put_bytes(&mut out, k);
                put_u64(&mut out, *v);
                put_bytes(&mut out, val);
            }
        }
        out
    }

    /// Parses [`serialise`](Self::serialise)'s output. Never panics on arbitrary input.
    pub fn deserialise(data: &[u8]) -> Result<Self, SnapshotError> {
        let mut r = Reader { data, pos: 0 };
        if r.take(8)? != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u64()?;
        let map_count = r.u64()?;
        let mut maps = OrdMap::new();
        let mut prev_name: Option<String> = None;
        for _ in 0..map_count {
            let at = r.pos;
            let name =
                String::from_utf8(r.bytes()?.to_vec()).map_err(|_| SnapshotError::BadName(at))?;
            if prev_name.as_ref().is_some_and(|p| *p >= name) {
                return Err(SnapshotError::NotCanonical(at));
            }
            let last_change = r.u64()?;
            let n = r.u64()?;
            let mut entries = OrdMap::new();
            let mut prev_key: Option<Bytes> = None;
            for _ in 0..n {
                let at = r.pos;
                let k = Bytes::copy_from_slice(r.bytes()?);
                if prev_key.as_ref().is_some_and(|p| *p >= k) {
                    return Err(SnapshotError::NotCanonical(at));
                }
                let v = r.u64()?;
                let val = Bytes::copy_from_slice(r.bytes()?);
                entries.insert(k.clone(), (v, val));
                prev_key = Some(k);
            }
            maps.insert(
                name.clone(),
                MapState {
                    entries,
                    last_change,
                },
            );
            prev_name = Some(name);
        }
        if r.pos != data.len() {
            return Err(SnapshotError::Trailing(data.len() - r.pos));
        }
        Ok(StoreSnapshot {
            state: Arc::new(State { version, maps }),
        })
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.data.len())
            .ok_or(SnapshotError::Truncated(self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, SnapshotError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn bytes(&mut self) -> Result<&'a [u8], SnapshotError> {
        let n = self.u64()?;
        let n = usize::try_from(n).map_err(|_| SnapshotError::Truncated(self.pos))?;
        self.take(n)
    }
}
