//! Indexes for historical range queries (CCF's `SeqnosByKey` strategy): for each map an app asks
//! to index, key → the seqnos of the transactions that wrote it. Built as transactions are
//! executed or replicated; rolled back with them; queries see only committed seqnos.

use std::collections::BTreeMap;

use bytes::Bytes;
use coco_codec::WriteSet;
use coco_types::SeqNo;

pub(crate) struct SeqnoIndex {
    maps: BTreeMap<String, BTreeMap<Bytes, Vec<SeqNo>>>,
    /// The index covers transactions after this seqno (0, or the snapshot a node started from:
    /// the ledger before it is not on this node).
    covers_after: SeqNo,
}

impl SeqnoIndex {
    pub(crate) fn new(maps: &[String]) -> Self {
        SeqnoIndex {
            maps: maps.iter().map(|m| (m.clone(), BTreeMap::new())).collect(),
            covers_after: 0,
        }
    }

    /// The node started from a snapshot at `seqno`: nothing at or before it is indexed.
    pub(crate) fn starts_after(&mut self, seqno: SeqNo) {
        self.covers_after = seqno;
    }

    /// Seqnos at or below this were not indexed here.
    pub(crate) fn covers_after(&self) -> SeqNo {
        self.covers_after
    }

    /// Records the keys `write_set` writes (or removes) in indexed maps at `seqno`.
    pub(crate) fn record(&mut self, write_set: &WriteSet, seqno: SeqNo) {
        for (map, index) in &mut self.maps {
            if let Some(changes) = write_set.maps.get(map) {
                for key in changes.writes.keys() {
                    let seqnos = index.entry(key.clone()).or_default();
                    debug_assert!(seqnos.last().is_none_or(|l| *l < seqno));
                    seqnos.push(seqno);
                }
            }
        }
    }

    /// Forgets everything after `seqno` (rolled back).
    pub(crate) fn truncate(&mut self, seqno: SeqNo) {
        for index in self.maps.values_mut() {
            index.retain(|_, seqnos| {
                let keep = seqnos.partition_point(|s| *s <= seqno);
                seqnos.truncate(keep);
                !seqnos.is_empty()
            });
        }
    }

    /// Seqnos in `from..=to` that wrote `key` in `map`; `None` if `map` is not indexed.
    pub(crate) fn query(
        &self,
        map: &str,
        key: &[u8],
        from: SeqNo,
        to: SeqNo,
    ) -> Option<Vec<SeqNo>> {
        let index = self.maps.get(map)?;
        Some(
            index
                .get(key)
                .map(|seqnos| {
                    let start = seqnos.partition_point(|s| *s < from);
                    let end = seqnos.partition_point(|s| *s <= to);
                    seqnos[start..end.max(start)].to_vec()
                })
                .unwrap_or_default(),
        )
    }

    /// The indexed maps (`/node/index/strategies`).
    pub(crate) fn maps(&self) -> impl Iterator<Item = &String> {
        self.maps.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(map: &str, key: &str) -> WriteSet {
        let mut w = WriteSet::default();
        w.put(map, Bytes::from(key.to_owned()), Bytes::from_static(b"v"));
        w
    }

    #[test]
    fn seqnos_by_key_follow_writes_and_rollbacks() {
        let mut i = SeqnoIndex::new(&["public:records".to_owned()]);
        for (s, k) in [(3, "1"), (5, "2"), (7, "1"), (9, "1")] {
            i.record(&ws("public:records", k), s);
        }
        i.record(&ws("other", "1"), 10);
        assert_eq!(i.query("public:records", b"1", 1, 100), Some(vec![3, 7, 9]));
        assert_eq!(i.query("public:records", b"1", 4, 8), Some(vec![7]));
        assert_eq!(i.query("public:records", b"3", 1, 100), Some(vec![]));
        assert_eq!(i.query("other", b"1", 1, 100), None, "not indexed");
        i.truncate(7);
        assert_eq!(i.query("public:records", b"1", 1, 100), Some(vec![3, 7]));
        i.truncate(4);
        assert_eq!(i.query("public:records", b"2", 1, 100), Some(vec![]));
    }
}
