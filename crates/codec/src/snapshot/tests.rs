use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::entry::{EntryFlags, gcm_iv, parse_entry};

/// A committed snapshot written by CCF itself (`tests/testdata/expired_service` in
/// microsoft/CCF, Apache-2.0): seqno 61, evidence at 62, 28 public maps, a JSON receipt appended.
/// `ccf.ledger.Snapshot` reads it as txid 0.61, view history [1, 1, 29, 29], hash at snapshot
/// 88c849…c100, entry size field 91647, file 93258 bytes.
const CCF_SNAPSHOT: &[u8] = include_bytes!("../../testdata/snapshot_61_62.committed");

#[test]
fn reads_a_snapshot_ccf_wrote() {
    let (entry, receipt) = split_snapshot_file(CCF_SNAPSHOT).unwrap();
    assert_eq!(entry.len(), 8 + 91647);
    assert_eq!(entry.len() + receipt.len(), 93258);
    let receipt: serde_json::Value = serde_json::from_slice(receipt).unwrap();
    assert!(receipt["leaf_components"]["claims_digest"].is_string());

    let view = parse_entry(entry).unwrap();
    assert!(view.is_snapshot);
    assert_eq!((view.view, view.seqno), (0, 61));
    let public = parse_snapshot_public(&Bytes::copy_from_slice(view.public)).unwrap();
    assert_eq!(public.seqno, 61);
    assert_eq!(public.view_history, vec![1, 1, 29, 29]);
    assert_eq!(
        hex::encode(&public.hash_at_snapshot),
        "88c84983388aafde15fdd7a46ea2589982ea41496c3a0eab7f8ec3cb1617c100"
    );
    assert_eq!(public.maps.len(), 28);
    let count = |name: &str| {
        public
            .maps
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.entries.len())
    };
    assert_eq!(count("public:ccf.gov.nodes.info"), Some(6));
    assert_eq!(count("public:records"), Some(3));
    assert_eq!(
        count("public:ccf.internal.encrypted_submitted_shares"),
        Some(0)
    );
    // Maps are written in name order within the domain.
    let names: Vec<_> = public.maps.iter().map(|m| m.name.clone()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(view.private.len(), 223);
}

/// `(name, version, [(key, version, value)])` per map.
type Maps = Vec<(String, u64, Vec<(Vec<u8>, u64, Vec<u8>)>)>;

fn sample() -> Maps {
    vec![
        (
            "public:a".into(),
            7,
            vec![(b"k".to_vec(), 3, b"value".to_vec()), (vec![], 7, vec![])],
        ),
        ("public:empty".into(), 2, vec![]),
        ("public:z".into(), 5, vec![(vec![0xFF; 9], 5, vec![1; 16])]),
    ]
}

#[test]
fn public_domain_round_trips_with_padding() {
    let mut w = SnapshotDomainWriter::public(9, &[0xAB; 32], &[1, 1, 4]);
    for (name, version, entries) in sample() {
        w.map(
            &name,
            version,
            entries
                .iter()
                .map(|(k, v, val)| (k.as_slice(), *v, val.as_slice())),
        );
    }
    let bytes = Bytes::from(w.finish());
    let parsed = parse_snapshot_public(&bytes).unwrap();
    assert_eq!(parsed.seqno, 9);
    assert_eq!(&parsed.hash_at_snapshot[..], &[0xAB; 32]);
    assert_eq!(parsed.view_history, vec![1, 1, 4]);
    let back: Vec<_> = parsed
        .maps
        .iter()
        .map(|m| {
            (
                m.name.clone(),
                m.version,
                m.entries
                    .iter()
                    .map(|(k, v, val)| (k.to_vec(), *v, val.to_vec()))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    assert_eq!(back, sample());
}

#[test]
fn ccf_layout_of_one_record_is_exact() {
    let mut w = SnapshotDomainWriter::private();
    w.map("m", 4, [(&b"ab"[..], 4u64, &b"xyz"[..])].into_iter());
    let bytes = w.finish();
    let mut expected = Vec::new();
    expected.extend_from_slice(&1u64.to_le_bytes());
    expected.push(b'm');
    expected.extend_from_slice(&4u64.to_le_bytes());
    // blob: key item 8 + 2 = 10 -> pad 6; value item 8 + 8 + 3 = 19 -> pad 5 (to 24)
    expected.extend_from_slice(&(16u64 + 24).to_le_bytes());
    expected.extend_from_slice(&2u64.to_le_bytes());
    expected.extend_from_slice(b"ab");
    expected.extend_from_slice(&[0; 6]);
    expected.extend_from_slice(&11u64.to_le_bytes());
    expected.extend_from_slice(&4u64.to_le_bytes());
    expected.extend_from_slice(b"xyz");
    expected.extend_from_slice(&[0; 5]);
    assert_eq!(bytes, expected);
    let maps = parse_snapshot_private(&Bytes::from(bytes)).unwrap();
    assert_eq!(maps[0].entries[0].2, Bytes::from_static(b"xyz"));
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let tx = Bytes::from_static(&[4, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        parse_snapshot_public(&tx).unwrap_err(),
        DomainError::NotSnapshot { entry_type: 4 }
    );
    let mut w = SnapshotDomainWriter::private();
    w.map("public:x", 1, std::iter::empty());
    assert!(matches!(
        parse_snapshot_private(&Bytes::from(w.finish())).unwrap_err(),
        DomainError::WrongDomain { .. }
    ));
    let mut w = SnapshotDomainWriter::private();
    w.map("p", 1, std::iter::empty());
    w.map("p", 1, std::iter::empty());
    assert!(matches!(
        parse_snapshot_private(&Bytes::from(w.finish())).unwrap_err(),
        DomainError::DuplicateMap { .. }
    ));
    // A value shorter than its version.
    let mut blob = Vec::new();
    blob.extend_from_slice(&0u64.to_le_bytes());
    blob.extend_from_slice(&4u64.to_le_bytes());
    blob.extend_from_slice(&[0; 8]);
    let mut rec = Vec::new();
    rec.extend_from_slice(&1u64.to_le_bytes());
    rec.push(b'p');
    rec.extend_from_slice(&1u64.to_le_bytes());
    rec.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    rec.extend_from_slice(&blob);
    assert!(matches!(
        parse_snapshot_private(&Bytes::from(rec)).unwrap_err(),
        DomainError::BadSnapshotValue { size: 4, .. }
    ));
}

#[test]
fn a_whole_file_splits_and_uncommitted_has_no_receipt() {
    let public = SnapshotDomainWriter::public(3, &[1; 32], &[1, 1, 1]).finish();
    let iv = gcm_iv(3, 0, true).unwrap();
    let entry =
        crate::entry::assemble_entry(EntryFlags::NONE, &[0; 16], &iv, &public, &[]).unwrap();
    let (e, r) = split_snapshot_file(&entry).unwrap();
    assert_eq!((e.len(), r.len()), (entry.len(), 0));
    let mut file = entry.clone();
    file.extend_from_slice(b"{}");
    assert_eq!(split_snapshot_file(&file).unwrap().1, b"{}");
    assert!(split_snapshot_file(&entry[..entry.len() - 1]).is_err());
}

#[test]
fn file_names() {
    let n = SnapshotName::parse("snapshot_61_62.committed").unwrap();
    assert_eq!(
        n,
        SnapshotName {
            seqno: 61,
            evidence_seqno: 62,
            committed: true
        }
    );
    assert_eq!(n.file_name(), "snapshot_61_62.committed");
    assert!(!SnapshotName::parse("snapshot_5_6").unwrap().committed);
    for bad in [
        "snapshot_5",
        "snapshot__6",
        "snapshot_5_6.committed.x",
        "snapshot_-1_2",
        "snapshot_1_2_3",
        "ledger_1-2.committed",
        "snapshot_1_2.ignored",
    ] {
        assert_eq!(SnapshotName::parse(bad), None, "{bad}");
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let b = Bytes::from(bytes.clone());
        let _ = parse_snapshot_public(&b);
        let _ = parse_snapshot_private(&b);
        let _ = split_snapshot_file(&bytes);
        let mut with_type = vec![1u8];
        with_type.extend_from_slice(&bytes);
        let _ = parse_snapshot_public(&Bytes::from(with_type));
    }

    #[test]
    fn mutated_ccf_snapshot_never_panics(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let (entry, _) = split_snapshot_file(CCF_SNAPSHOT).unwrap();
        let view = parse_entry(entry).unwrap();
        let mut public = view.public.to_vec();
        for (i, b) in flips {
            let i = i.index(public.len());
            public[i] ^= b | 1;
        }
        let _ = parse_snapshot_public(&Bytes::from(public));
    }
}
