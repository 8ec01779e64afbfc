//! Old ledger entries on demand (ccf-reference §2.1): receipts and historical queries need
//! entries the consensus core no longer holds. The core asks the host to read them
//! (`Output::ReadLedger`), answers 202 with `Retry-After` meanwhile, and keeps what arrives in a
//! cache bounded by bytes, evicting the least recently used entries first.

use std::collections::BTreeMap;

use bytes::Bytes;
use coco_types::{SeqNo, limits};

/// Entries read back from the ledger, least recently used evicted first.
pub(crate) struct HistoricalCache {
    entries: BTreeMap<SeqNo, (Bytes, u64)>,
    /// Use counter → seqno, for eviction order.
    by_use: BTreeMap<u64, SeqNo>,
    next_use: u64,
    bytes: usize,
    limit_bytes: usize,
    /// Ranges asked of the host, with when (monotonic ms).
    requested: BTreeMap<(SeqNo, SeqNo), u64>,
}

impl HistoricalCache {
    pub(crate) fn new(limit_bytes: usize) -> Self {
        HistoricalCache {
            entries: BTreeMap::new(),
            by_use: BTreeMap::new(),
            next_use: 0,
            bytes: 0,
            limit_bytes,
            requested: BTreeMap::new(),
        }
    }

    /// The entry at `seqno` if cached (and marks it used).
    pub(crate) fn get(&mut self, seqno: SeqNo) -> Option<Bytes> {
        let (bytes, used) = self.entries.get_mut(&seqno)?;
        self.by_use.remove(used);
        *used = self.next_use;
        self.by_use.insert(self.next_use, seqno);
        self.next_use += 1;
        Some(bytes.clone())
    }

    /// Whether `from..=to` should be asked of the host now (not asked, or asked long ago).
    pub(crate) fn should_request(&mut self, from: SeqNo, to: SeqNo, now_ms: u64) -> bool {
        match self.requested.get(&(from, to)) {
            Some(at) if now_ms < at + limits::HISTORICAL_READ_RETRY_MS => false,
            _ => {
                self.requested.insert((from, to), now_ms);
                true
            }
        }
    }

    /// Entries read from the ledger, from `from` on.
    pub(crate) fn insert(&mut self, from: SeqNo, entries: Vec<Bytes>) {
        let to = from + entries.len() as SeqNo - 1;
        self.requested.retain(|(f, t), _| !(from <= *f && *t <= to));
        for (k, bytes) in entries.into_iter().enumerate() {
            let seqno = from + k as SeqNo;
            if let Some((old, used)) = self.entries.remove(&seqno) {
                self.bytes -= old.len();
                self.by_use.remove(&used);
            }
            self.bytes += bytes.len();
            self.entries.insert(seqno, (bytes, self.next_use));
            self.by_use.insert(self.next_use, seqno);
            self.next_use += 1;
        }
        while self.bytes > self.limit_bytes {
            let Some((_, seqno)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((old, _)) = self.entries.remove(&seqno) {
                self.bytes -= old.len();
            }
        }
    }

    /// Drops cached entries after `seqno` (they were rolled back).
    pub(crate) fn truncate(&mut self, seqno: SeqNo) {
        let gone: Vec<SeqNo> = self.entries.range(seqno + 1..).map(|(s, _)| *s).collect();
        for s in gone {
            if let Some((old, used)) = self.entries.remove(&s) {
                self.bytes -= old.len();
                self.by_use.remove(&used);
            }
        }
    }

    #[cfg(test)]
    fn cached_bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_stays_within_its_bound_evicting_the_least_recently_used() {
        let mut c = HistoricalCache::new(30);
        c.insert(1, vec![Bytes::from(vec![1; 10]), Bytes::from(vec![2; 10])]);
        c.insert(3, vec![Bytes::from(vec![3; 10])]);
        assert!(c.get(1).is_some(), "1 is now the most recently used");
        c.insert(4, vec![Bytes::from(vec![4; 10])]);
        assert_eq!(c.cached_bytes(), 30);
        assert!(c.get(2).is_none(), "2 was least recently used");
        assert!(c.get(1).is_some() && c.get(3).is_some() && c.get(4).is_some());
        c.truncate(3);
        assert!(c.get(4).is_none());
        assert_eq!(c.cached_bytes(), 20);
    }

    #[test]
    fn requests_are_not_repeated_until_they_are_overdue() {
        let mut c = HistoricalCache::new(100);
        assert!(c.should_request(5, 9, 0));
        assert!(!c.should_request(5, 9, 10));
        assert!(c.should_request(5, 9, limits::HISTORICAL_READ_RETRY_MS));
        c.insert(5, (5..=9).map(|_| Bytes::from_static(b"x")).collect());
        assert!(c.should_request(5, 9, limits::HISTORICAL_READ_RETRY_MS + 1));
    }
}
