use proptest::prelude::*;

use super::*;
use crate::domain::{
    parse_private_domain, parse_public_domain, serialise_private_domain, serialise_public_domain,
};
use crate::test_support::write_set;

const TAG: [u8; 16] = [0x7A; 16];

#[test]
fn iv_table() {
    let cases: &[(u64, u64, bool, &str)] = &[
        (1, 2, false, "010000000000000002000000"),
        (
            0x0102030405060708,
            0x11223344,
            false,
            "080706050403020144332211",
        ),
        (5, 2, true, "050000000000000002000080"),
        (u64::MAX, IV_VIEW_MAX, true, "ffffffffffffffffffffffff"),
        (0, 0, false, "000000000000000000000000"),
    ];
    for (seqno, view, snap, want) in cases {
        let iv = gcm_iv(*seqno, *view, *snap).unwrap();
        assert_eq!(
            hex::encode(iv),
            *want,
            "seqno {seqno} view {view} snapshot {snap}"
        );
        assert_eq!(iv_fields(&iv), (*seqno, *view, *snap));
    }
    assert_eq!(
        gcm_iv(1, IV_VIEW_MAX + 1, false),
        Err(EntryError::ViewTooLarge { view: 1 << 31 })
    );
    assert_eq!(
        gcm_iv(1, u64::MAX, true),
        Err(EntryError::ViewTooLarge { view: u64::MAX })
    );
}

#[test]
fn header_table() {
    let cases: &[(EntryFlags, u64, &str)] = &[
        (EntryFlags::NONE, 36, "0100240000000000"),
        (
            EntryFlags::FORCE_LEDGER_CHUNK_AFTER,
            0x0102_0304_0506,
            "0101060504030201",
        ),
        (
            EntryFlags::FORCE_LEDGER_CHUNK_BEFORE,
            LEDGER_ENTRY_SIZE_BYTES_MAX,
            "0102ffffffffffff",
        ),
        (
            EntryFlags::FORCE_LEDGER_CHUNK_AFTER | EntryFlags::FORCE_LEDGER_CHUNK_BEFORE,
            0,
            "0103000000000000",
        ),
    ];
    for (flags, size, want) in cases {
        let h = EntryHeader::new(*flags, *size).unwrap();
        assert_eq!(hex::encode(h.to_bytes()), *want);
        assert_eq!(EntryHeader::parse(&h.to_bytes()), Ok(h));
    }
    assert_eq!(
        EntryHeader::new(EntryFlags::NONE, 1 << 48),
        Err(EntryError::EntryTooLarge {
            size: 1 << 48,
            max: LEDGER_ENTRY_SIZE_BYTES_MAX
        })
    );
    assert!(EntryFlags::from_bits(0x04).is_none());
    assert!(
        EntryFlags::from_bits(0x03)
            .unwrap()
            .contains(EntryFlags::FORCE_LEDGER_CHUNK_BEFORE)
    );
    assert!(!EntryFlags::NONE.contains(EntryFlags::FORCE_LEDGER_CHUNK_AFTER));
}

fn sample_ws() -> WriteSet {
    let mut ws = WriteSet::new();
    ws.put("public:records", "1", "one");
    ws.put("private", "k", "secret");
    ws
}

/// The builder's in-place layout equals assembling from separately serialised parts, and the
/// caller's in-place "encryption" lands in the private slice.
#[test]
fn builder_matches_assemble() {
    let ws = sample_ws();
    let tx = TxId::new(3, 42);
    let (claims, ce) = ([1u8; 32], [2u8; 32]);
    let mut b =
        EntryBuilder::for_write_set(EntryFlags::FORCE_LEDGER_CHUNK_AFTER, tx, &claims, &ce, &ws)
            .unwrap();
    assert_eq!(b.iv(), gcm_iv(42, 3, false).unwrap());
    let public = serialise_public_domain(42, &claims, &ce, &ws);
    let private = serialise_private_domain(&ws);
    {
        let (aad, priv_mut) = b.aad_and_private_mut();
        assert_eq!(aad, &public[..]);
        assert_eq!(priv_mut, &private[..]);
        for byte in priv_mut.iter_mut() {
            *byte ^= 0xFF; // stand-in for AES-GCM in place
        }
    }
    assert_eq!(b.public(), &public[..]);
    let entry = b.finish(&TAG);
    let cipher: Vec<u8> = private.iter().map(|b| b ^ 0xFF).collect();
    let assembled = assemble_entry(
        EntryFlags::FORCE_LEDGER_CHUNK_AFTER,
        &TAG,
        &gcm_iv(42, 3, false).unwrap(),
        &public,
        &cipher,
    )
    .unwrap();
    assert_eq!(entry, assembled);

    let view = parse_entry(&entry).unwrap();
    assert_eq!(view.tx_id(), tx);
    assert!(!view.is_snapshot);
    assert_eq!(view.flags(), EntryFlags::FORCE_LEDGER_CHUNK_AFTER);
    assert_eq!(view.tag, &TAG);
    assert_eq!(view.public, &public[..]);
    assert_eq!(view.private, &cipher[..]);
    assert_eq!(
        view.header.size,
        entry_size_field(public.len(), private.len())
    );
    assert_eq!(view.bytes.len(), entry.len());
}

fn valid_entry() -> Vec<u8> {
    let public = serialise_public_domain(9, &[0; 32], &[0; 32], &sample_ws());
    assemble_entry(
        EntryFlags::NONE,
        &TAG,
        &gcm_iv(9, 2, false).unwrap(),
        &public,
        b"cipher",
    )
    .unwrap()
}

#[test]
fn malformed_entries_table() {
    let good = valid_entry();
    let body = (good.len() - 8) as u64;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut e = good.clone();
        f(&mut e);
        e
    };
    let set_size = |e: &mut Vec<u8>, size: u64| e[2..8].copy_from_slice(&size.to_le_bytes()[..6]);
    let cases: Vec<(&str, Vec<u8>, EntryError)> = vec![
        (
            "empty",
            vec![],
            EntryError::Truncated {
                needed: 8,
                available: 0,
            },
        ),
        (
            "partial header",
            good[..5].to_vec(),
            EntryError::Truncated {
                needed: 8,
                available: 5,
            },
        ),
        (
            "version 0",
            with(&|e| e[0] = 0),
            EntryError::BadVersion { version: 0 },
        ),
        (
            "version 2",
            with(&|e| e[0] = 2),
            EntryError::BadVersion { version: 2 },
        ),
        (
            "unknown flag",
            with(&|e| e[1] = 0x04),
            EntryError::UnknownFlags { flags: 0x04 },
        ),
        (
            "high flag",
            with(&|e| e[1] = 0x81),
            EntryError::UnknownFlags { flags: 0x81 },
        ),
        (
            "trailing byte",
            with(&|e| e.push(0)),
            EntryError::SizeMismatch {
                declared: body,
                actual: body + 1,
            },
        ),
        (
            "truncated body",
            good[..good.len() - 1].to_vec(),
            EntryError::SizeMismatch {
                declared: body,
                actual: body - 1,
            },
        ),
        (
            "size says more",
            with(&|e| set_size(e, body + 5)),
            EntryError::SizeMismatch {
                declared: body + 5,
                actual: body,
            },
        ),
        (
            "too small for GCM header",
            cat_header(EntryFlags::NONE, &[0; 20]),
            EntryError::SizeTooSmall {
                size: 20,
                min: ENTRY_SIZE_FIELD_MIN,
            },
        ),
        (
            "public length past end",
            with(&|e| e[36..44].copy_from_slice(&(body - 35).to_le_bytes())),
            EntryError::PublicLengthPastEnd {
                public_len: body - 35,
                available: body - 36,
            },
        ),
        (
            "public length huge",
            with(&|e| e[36..44].copy_from_slice(&u64::MAX.to_le_bytes())),
            EntryError::PublicLengthPastEnd {
                public_len: u64::MAX,
                available: body - 36,
            },
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(parse_entry(&bytes), Err(want), "case {what:?}");
    }
}

fn cat_header(flags: EntryFlags, body: &[u8]) -> Vec<u8> {
    let mut e = EntryHeader::new(flags, body.len() as u64)
        .unwrap()
        .to_bytes()
        .to_vec();
    e.extend_from_slice(body);
    e
}

#[test]
fn minimal_entry_parses_with_empty_domains() {
    let e = assemble_entry(
        EntryFlags::NONE,
        &TAG,
        &gcm_iv(1, 2, true).unwrap(),
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(e.len(), 44);
    let v = parse_entry(&e).unwrap();
    assert!(v.is_snapshot && v.public.is_empty() && v.private.is_empty());
}

proptest! {
    #[test]
    fn entry_round_trip(
        ws in write_set(),
        seqno in any::<u64>(),
        view in 0..=IV_VIEW_MAX,
        flags in 0u8..4,
        tag in any::<[u8; 16]>(),
    ) {
        let flags = EntryFlags::from_bits(flags).unwrap();
        let b = EntryBuilder::for_write_set(flags, TxId::new(view, seqno), &[3; 32], &[4; 32], &ws).unwrap();
        let entry = b.finish(&tag);
        let v = parse_entry(&entry).unwrap();
        prop_assert_eq!((v.seqno, v.view, v.is_snapshot, v.flags()), (seqno, view, false, flags));
        prop_assert_eq!(v.tag, &tag);
        let public = parse_public_domain(v.public).unwrap();
        prop_assert_eq!(public.prefix.seqno, seqno);
        let private = parse_private_domain(v.private).unwrap();
        prop_assert_eq!(public.maps.len() + private.len(), ws.maps.values().filter(|c| !c.is_empty()).count());
    }

    #[test]
    fn parse_entry_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let _ = parse_entry(&bytes);
    }

    #[test]
    fn parse_entry_never_panics_on_mutations(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut e = valid_entry();
        for (i, b) in flips {
            let i = i.index(e.len());
            e[i] ^= b;
        }
        if let Ok(v) = parse_entry(&e) {
            prop_assert_eq!(v.public.len() + v.private.len() + PUBLIC_DOMAIN_OFFSET, e.len());
        }
    }
}
