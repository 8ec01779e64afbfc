use coco_types::TxId;
use proptest::prelude::*;

use super::*;
use crate::entry::{EntryBuilder, gcm_iv};
use crate::test_support::write_set;
use crate::write_set::WriteSet;

#[test]
fn chunk_name_table() {
    let n = |start, end, committed, recovery, ignored| {
        Some(ChunkName {
            start,
            end,
            committed,
            recovery,
            ignored,
        })
    };
    let cases: &[(&str, Option<ChunkName>)] = &[
        ("ledger_1", n(1, None, false, false, false)),
        ("ledger_12-40", n(12, Some(40), false, false, false)),
        ("ledger_1-10.committed", n(1, Some(10), true, false, false)),
        ("ledger_5-5.committed", n(5, Some(5), true, false, false)),
        ("ledger_7.recovery", n(7, None, false, true, false)),
        (
            "ledger_1-10.committed.recovery",
            n(1, Some(10), true, true, false),
        ),
        ("ledger_7.ignored", n(7, None, false, false, true)),
        ("ledger_7.recovery.ignored", n(7, None, false, true, true)),
        (
            "ledger_1-10.committed.recovery.ignored",
            n(1, Some(10), true, true, true),
        ),
        (
            "ledger_18446744073709551615",
            n(u64::MAX, None, false, false, false),
        ),
        ("ledger_0", None),
        ("ledger_01", None),
        ("ledger_1-09", None),
        ("ledger_10-9", None),
        ("ledger_5.committed", None),
        ("ledger_", None),
        ("ledger_-5", None),
        ("ledger_5-", None),
        ("ledger_1-2-3", None),
        ("ledger_+1", None),
        ("ledger_1.ignored.recovery", None),
        ("ledger_1.committed.committed", None),
        ("ledger_18446744073709551616", None),
        ("ledger_１", None),
        ("snapshot_10_12.committed", None),
        ("ledger1", None),
        ("Ledger_1", None),
    ];
    for (name, want) in cases {
        let got = ChunkName::parse(name);
        assert_eq!(&got, want, "name {name:?}");
        if let Some(got) = got {
            assert_eq!(got.to_string(), *name, "display of {name:?}");
        }
    }
    assert!(ChunkName::committed(3, 8).contains(3));
    assert!(ChunkName::committed(3, 8).contains(8));
    assert!(!ChunkName::committed(3, 8).contains(9));
    assert!(!ChunkName::open(3).contains(3));
    assert_eq!(ChunkName::open(4).to_string(), "ledger_4");
}

fn entry(seqno: u64, ws: &WriteSet) -> Vec<u8> {
    EntryBuilder::for_write_set(
        EntryFlags::NONE,
        TxId::new(2, seqno),
        &[0; 32],
        &[0; 32],
        ws,
    )
    .unwrap()
    .finish(&[0; 16])
}

fn small_ws(i: u64) -> WriteSet {
    let mut ws = WriteSet::new();
    ws.put("public:m", i.to_string(), "x".repeat(i as usize % 7));
    ws
}

/// An open chunk holding entries for seqnos `first..first+count`, and their offsets.
fn open_chunk(first: u64, count: u64) -> (Vec<u8>, Vec<u32>) {
    let mut data = OPEN_CHUNK_HEADER.to_vec();
    let mut positions = Vec::new();
    for s in first..first + count {
        positions.push(data.len() as u32);
        data.extend(entry(s, &small_ws(s)));
    }
    (data, positions)
}

fn complete(mut data: Vec<u8>, positions: &[u32]) -> Vec<u8> {
    let (table, header) = complete_chunk_bytes(data.len() as u64, positions);
    data.extend(table);
    data[..8].copy_from_slice(&header);
    data
}

#[test]
fn open_chunk_scan() {
    let (data, positions) = open_chunk(5, 3);
    let scan = scan_chunk(&data).unwrap();
    assert_eq!(
        scan.state,
        ChunkState::Open {
            valid_len: data.len() as u64,
            torn_tail: None
        }
    );
    assert_eq!(
        scan.entries.iter().map(|e| e.seqno).collect::<Vec<_>>(),
        [5, 6, 7]
    );
    assert_eq!(scan.positions(), Some(positions));
    assert_eq!((scan.first_seqno(), scan.last_seqno()), (Some(5), Some(7)));
    assert!(
        scan.entries
            .iter()
            .all(|e| e.view == 2 && e.flags == EntryFlags::NONE)
    );
    let e = scan.entries[1];
    assert!(crate::entry::parse_entry(&data[e.range()]).is_ok());

    let empty = scan_chunk(&OPEN_CHUNK_HEADER).unwrap();
    assert_eq!(empty.entries, []);
    assert_eq!(
        empty.state,
        ChunkState::Open {
            valid_len: 8,
            torn_tail: None
        }
    );
}

#[test]
fn complete_chunk_scan() {
    let (data, positions) = open_chunk(1, 4);
    let entries_end = data.len() as u64;
    let full = complete(data, &positions);
    assert_eq!(positions_table(&[8, 0x0102_0304]), [8, 0, 0, 0, 4, 3, 2, 1]);
    let scan = scan_chunk(&full).unwrap();
    assert_eq!(
        scan.state,
        ChunkState::Complete {
            positions_offset: entries_end
        }
    );
    assert!(scan.is_complete());
    assert_eq!(scan.positions(), Some(positions));
}

#[test]
fn torn_tail_table() {
    let (base, positions) = open_chunk(1, 2);
    let base_len = base.len() as u64;
    let next = entry(3, &small_ws(3));
    let with_tail = |tail: &[u8]| [&base[..], tail].concat();
    let mut bad_version = next.clone();
    bad_version[0] = 9;
    let gap = entry(5, &small_ws(5));
    let (table, _) = complete_chunk_bytes(base_len, &positions);
    let cases: Vec<(&str, Vec<u8>, TornTailKind)> = vec![
        (
            "partial header",
            with_tail(&next[..5]),
            TornTailKind::PartialHeader,
        ),
        (
            "size past eof",
            with_tail(&next[..next.len() - 1]),
            TornTailKind::SizePastEof {
                size: next.len() as u64 - 8,
            },
        ),
        (
            "bad version",
            with_tail(&bad_version),
            TornTailKind::BadEntry(EntryError::BadVersion { version: 9 }),
        ),
        (
            "seqno gap",
            with_tail(&gap),
            TornTailKind::SeqnoGap {
                expected: 3,
                found: 5,
            },
        ),
        // Crash between appending the table and rewriting the header.
        // Table bytes [8, p1] read as an entry header: version byte 8.
        (
            "half-completed chunk",
            with_tail(&table),
            TornTailKind::BadEntry(EntryError::BadVersion { version: 8 }),
        ),
        (
            "half-written table",
            with_tail(&table[..4]),
            TornTailKind::PartialHeader,
        ),
        (
            "zeros",
            with_tail(&[0; 64]),
            TornTailKind::BadEntry(EntryError::BadVersion { version: 0 }),
        ),
        (
            "entry too small",
            with_tail(
                &EntryHeader::new(EntryFlags::NONE, 4)
                    .unwrap()
                    .to_bytes()
                    .iter()
                    .chain(&[0; 4])
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            TornTailKind::BadEntry(EntryError::SizeTooSmall { size: 4, min: 36 }),
        ),
    ];
    for (what, data, kind) in cases {
        let scan = scan_chunk(&data).unwrap();
        let want = ChunkState::Open {
            valid_len: base_len,
            torn_tail: Some(TornTail {
                offset: base_len,
                len_bytes: data.len() as u64 - base_len,
                kind,
            }),
        };
        assert_eq!(scan.state, want, "case {what:?}");
        assert_eq!(scan.entries.len(), 2, "case {what:?}");
    }
}

#[test]
fn malformed_chunks_table() {
    let (data, positions) = open_chunk(1, 3);
    let entries_end = data.len() as u64;
    let good = complete(data, &positions);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let set_header = |c: &mut Vec<u8>, v: u64| c[..8].copy_from_slice(&v.to_le_bytes());
    let p1 = u64::from(positions[1]);
    let p2 = u64::from(positions[2]);
    let cases: Vec<(&str, Vec<u8>, ChunkError)> = vec![
        (
            "no header",
            vec![0; 5],
            ChunkError::HeaderTruncated { available: 5 },
        ),
        (
            "offset inside header",
            with(&|c| set_header(c, 3)),
            ChunkError::PositionsOffsetInHeader {
                positions_offset: 3,
            },
        ),
        (
            "offset past eof",
            with(&|c| set_header(c, 1 << 40)),
            ChunkError::PositionsOffsetPastEof {
                positions_offset: 1 << 40,
                file_len: good.len() as u64,
            },
        ),
        (
            "table not multiple of 4",
            with(&|c| c.push(0)),
            ChunkError::TableNotMultipleOf4 {
                offset: entries_end,
                len_bytes: 13,
            },
        ),
        (
            "extra slot",
            with(&|c| c.extend([0; 4])),
            ChunkError::PositionCountMismatch {
                in_table: 4,
                walked: 3,
            },
        ),
        (
            "missing slot",
            with(&|c| c.truncate(c.len() - 4)),
            ChunkError::PositionCountMismatch {
                in_table: 2,
                walked: 3,
            },
        ),
        (
            "wrong slot",
            with(&|c| {
                let at = entries_end as usize + 4;
                c[at..at + 4].copy_from_slice(&9u32.to_le_bytes());
            }),
            ChunkError::PositionMismatch {
                index: 1,
                slot_offset: entries_end + 4,
                expected: p1,
                found: 9,
            },
        ),
        (
            "table offset leaves ragged table",
            with(&|c| set_header(c, entries_end - 2)),
            ChunkError::TableNotMultipleOf4 {
                offset: entries_end - 2,
                len_bytes: 14,
            },
        ),
        (
            "table starts inside last entry",
            with(&|c| set_header(c, entries_end - 8)),
            ChunkError::EntryCrossesTable {
                offset: p2,
                entry_end: entries_end,
                positions_offset: entries_end - 8,
            },
        ),
        (
            "bad entry version",
            with(&|c| c[p1 as usize] = 7),
            ChunkError::Entry {
                offset: p1,
                source: EntryError::BadVersion { version: 7 },
            },
        ),
        (
            "seqno gap",
            with(&|c| c[p2 as usize + 24] = 9), // IV byte 0: seqno 3 becomes 9
            ChunkError::SeqnoGap {
                offset: p2,
                expected: 3,
                found: 9,
            },
        ),
        (
            "no entries before table",
            with(&|c| {
                set_header(c, 8);
                c.truncate(8 + 12);
            }),
            ChunkError::PositionCountMismatch {
                in_table: 3,
                walked: 0,
            },
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(scan_chunk(&bytes), Err(want), "case {what:?}");
    }
}

/// Where the "table starts in last header" case above would land on a multiple of 4, the walk
/// meets a partial header before the table: that too is an error naming the entry offset.
#[test]
fn partial_header_before_table_is_an_error() {
    let (data, positions) = open_chunk(1, 1);
    let mut c = data.clone();
    c.extend([1, 0, 0, 0]); // 4 stray bytes between the entry and the table
    let table_at = c.len() as u64;
    c.extend(positions_table(&positions));
    c[..8].copy_from_slice(&table_at.to_le_bytes());
    assert_eq!(
        scan_chunk(&c),
        Err(ChunkError::Entry {
            offset: data.len() as u64,
            source: EntryError::Truncated {
                needed: 8,
                available: 4
            },
        })
    );
}

#[test]
fn iv_seqno_is_what_scan_reports() {
    let (data, _) = open_chunk(10, 1);
    assert_eq!(&data[8 + 24..8 + 36], &gcm_iv(10, 2, false).unwrap());
    assert_eq!(scan_chunk(&data).unwrap().entries[0].seqno, 10);
}

proptest! {
    #[test]
    fn chunk_round_trip(sets in proptest::collection::vec(write_set(), 1..5), first in 1u64..1000, done in any::<bool>()) {
        let mut data = OPEN_CHUNK_HEADER.to_vec();
        let mut positions = Vec::new();
        for (i, ws) in sets.iter().enumerate() {
            positions.push(data.len() as u32);
            data.extend(entry(first + i as u64, ws));
        }
        let data = if done { complete(data, &positions) } else { data };
        let scan = scan_chunk(&data).unwrap();
        prop_assert_eq!(scan.is_complete(), done);
        prop_assert_eq!(scan.positions(), Some(positions));
        let seqnos: Vec<u64> = scan.entries.iter().map(|e| e.seqno).collect();
        prop_assert_eq!(seqnos, (first..first + sets.len() as u64).collect::<Vec<_>>());
    }

    /// Every truncation of an open chunk keeps exactly the whole entries before the cut.
    #[test]
    fn every_truncation_is_detected(count in 1u64..5, cut in any::<prop::sample::Index>()) {
        let (data, positions) = open_chunk(1, count);
        let cut = 8 + cut.index(data.len() - 8 + 1);
        let scan = scan_chunk(&data[..cut]).unwrap();
        let boundaries: Vec<usize> = positions.iter().map(|p| *p as usize).chain([data.len()]).collect();
        let whole = boundaries.iter().skip(1).filter(|b| **b <= cut).count();
        let valid_len = if whole == 0 { 8 } else { boundaries[whole] };
        prop_assert_eq!(scan.entries.len(), whole);
        let ChunkState::Open { valid_len: got, torn_tail } = scan.state else {
            panic!("truncated open chunk scanned as complete");
        };
        prop_assert_eq!(got as usize, valid_len);
        match torn_tail {
            None => prop_assert_eq!(cut, valid_len),
            Some(t) => {
                prop_assert!(cut > valid_len);
                prop_assert_eq!(t.offset as usize, valid_len);
                prop_assert_eq!((t.offset + t.len_bytes) as usize, cut);
                let torn_write = matches!(t.kind, TornTailKind::PartialHeader | TornTailKind::SizePastEof { .. });
                prop_assert!(torn_write, "unexpected tail {:?}", t.kind);
            }
        }
    }

    #[test]
    fn scan_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), open in any::<bool>()) {
        let mut bytes = bytes;
        if open && bytes.len() >= 8 {
            bytes[..8].fill(0);
        }
        let _ = scan_chunk(&bytes);
    }

    #[test]
    fn scan_never_panics_on_mutations(
        done in any::<bool>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (data, positions) = open_chunk(1, 3);
        let mut data = if done { complete(data, &positions) } else { data };
        for (i, b) in flips {
            let i = i.index(data.len());
            data[i] ^= b;
        }
        if let Ok(scan) = scan_chunk(&data) {
            for e in &scan.entries {
                prop_assert!(crate::entry::parse_entry(&data[e.range()]).is_ok());
            }
        }
    }
}
