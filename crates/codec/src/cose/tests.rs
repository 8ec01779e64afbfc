use expect_test::expect;
use proptest::prelude::*;

use super::*;

const KID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn protected() -> Vec<u8> {
    ccf_signature_protected_header(
        ALG_ES384,
        KID,
        "service.example",
        "ledger.signature",
        1_700_000_000,
        "2.15",
    )
}

#[test]
fn protected_header_golden() {
    // a5                      map(5), labels in CCF's order
    //   01 38 22              1 (alg): -35
    //   04 58 40 <64 bytes>   4 (kid): bstr of the ASCII hex
    //   19 018b 02            395 (vds): 2
    //   0f a3 06 1a.. 01 6f.. 02 70..   15: {6: iat, 1: iss, 2: sub}
    //   66 "ccf.v1" a1 64 "txid" 63 "2.15"
    let hex = hex::encode(protected());
    expect!["a50138220458403031323334353637383961626364656630313233343536373839616263646566303132333435363738396162636465663031323334353637383961626364656619018b020fa3061a6553f100016f736572766963652e6578616d706c6502706c65646765722e7369676e6174757265666363662e7631a1647478696464322e3135"]
    .assert_eq(&hex);
}

#[test]
fn sig_structure_matches_coset() {
    let root = [0x5A; 32];
    let ours = sig_structure(&protected(), &root);
    let parsed =
        parse_sign1(&assemble_sign1(&protected(), &Header::default(), None, &[1; 96]).unwrap())
            .unwrap();
    let sign1 = CoseSign1 {
        protected: coset::ProtectedHeader {
            original_data: Some(parsed.protected.clone()),
            header: parsed.protected_header.clone(),
        },
        ..Default::default()
    };
    assert_eq!(ours, sign1.tbs_detached_data(&root, b""));
    expect![[r#"846a5369676e61747572653158"#]].assert_eq(&hex::encode(&ours[..13]));
    // Lengths crossing CBOR head sizes: 23/24 bytes and 255/256 bytes.
    for len in [0usize, 23, 24, 255, 256, 65_536] {
        let payload = vec![7u8; len];
        let sign1 = CoseSign1 {
            protected: coset::ProtectedHeader {
                original_data: Some(vec![0xA0]),
                header: Header::default(),
            },
            ..Default::default()
        };
        assert_eq!(
            sig_structure(&[0xA0], &payload),
            sign1.tbs_detached_data(&payload, b""),
            "len {len}"
        );
    }
}

#[test]
fn assemble_and_parse() {
    let sig = [0xEE; 96];
    let bytes = assemble_sign1(&protected(), &Header::default(), None, &sig).unwrap();
    assert_eq!(&bytes[..3], [0xD2, 0x84, 0x58]); // tag 18, array(4), bstr with 1-byte length
    let p = parse_sign1(&bytes).unwrap();
    assert_eq!(p.protected, protected());
    assert_eq!(p.alg, Some(ALG_ES384));
    assert_eq!(p.kid, KID.as_bytes());
    assert_eq!(p.vds, Some(VDS_CCF_LEDGER_SHA256));
    assert_eq!(
        p.cwt,
        Some(CwtClaims {
            iss: Some("service.example".into()),
            sub: Some("ledger.signature".into()),
            iat: Some(1_700_000_000)
        })
    );
    assert_eq!(p.txid.as_deref(), Some("2.15"));
    assert!(p.unprotected.is_empty());
    assert_eq!(p.payload, None);
    assert_eq!(p.signature, sig);

    // An attached payload and a non-empty unprotected header (as COSE receipts carry).
    let unprotected = coset::HeaderBuilder::new()
        .value(
            396,
            Value::Map(vec![(
                Value::from(-1),
                Value::Array(vec![Value::Bytes(vec![1])]),
            )]),
        )
        .build();
    let bytes = assemble_sign1(&protected(), &unprotected, Some(b"payload"), &sig).unwrap();
    let p = parse_sign1(&bytes).unwrap();
    assert_eq!(p.payload.as_deref(), Some(&b"payload"[..]));
    assert_eq!(p.unprotected, unprotected);
    // coset writes the same bytes for the same message.
    let coset_bytes = coset::TaggedCborSerializable::to_tagged_vec(CoseSign1 {
        protected: coset::ProtectedHeader {
            original_data: Some(protected()),
            header: p.protected_header.clone(),
        },
        unprotected,
        payload: Some(b"payload".to_vec()),
        signature: sig.to_vec(),
    })
    .unwrap();
    assert_eq!(bytes, coset_bytes);
}

fn enc(v: &Value) -> Vec<u8> {
    super::to_vec(v)
}

#[test]
fn malformed_sign1_table() {
    let good = assemble_sign1(&protected(), &Header::default(), None, &[1; 8]).unwrap();
    let untagged = good[1..].to_vec();
    let with_ccf = |ccf: Value| {
        let p = enc(&Value::Map(vec![
            (Value::from(1), Value::from(-7)),
            (Value::from("ccf.v1"), ccf),
        ]));
        assemble_sign1(&p, &Header::default(), None, &[1]).unwrap()
    };
    let with_label = |label: i64, v: Value| {
        let p = enc(&Value::Map(vec![(Value::from(label), v)]));
        assemble_sign1(&p, &Header::default(), None, &[1]).unwrap()
    };
    type IsExpected = fn(&CoseError) -> bool;
    let cases: Vec<(&str, Vec<u8>, IsExpected)> = vec![
        ("empty", vec![], |e| matches!(e, CoseError::Cbor(_))),
        ("untagged", untagged, |e| {
            matches!(e, CoseError::NotTagged18(_))
        }),
        ("tag 98", [&[0xD8, 0x62][..], &good[1..]].concat(), |e| {
            *e == CoseError::NotTagged18("tag 98".into())
        }),
        ("trailing byte", [&good[..], &[0]].concat(), |e| {
            *e == CoseError::TrailingData(1)
        }),
        ("truncated", good[..good.len() - 1].to_vec(), |e| {
            matches!(e, CoseError::Cbor(_))
        }),
        // A length near 2^64 must fail on the missing bytes, not try to allocate them.
        (
            "huge bstr length",
            [&[0xD2, 0x84, 0x5B][..], &[0xFF; 8], &[0; 4]].concat(),
            |e| matches!(e, CoseError::Cbor(_)),
        ),
        // Deep nesting hits ciborium's recursion limit instead of the stack's.
        (
            "deep nesting",
            [vec![0xD2], vec![0x81; 100_000], vec![0]].concat(),
            |e| matches!(e, CoseError::Cbor(_)),
        ),
        (
            "array of 3",
            enc(&Value::Tag(
                18,
                Box::new(Value::Array(vec![
                    Value::Bytes(vec![]),
                    Value::Map(vec![]),
                    Value::Null,
                ])),
            )),
            |e| matches!(e, CoseError::Structure(_)),
        ),
        (
            "payload int",
            enc(&Value::Tag(
                18,
                Box::new(Value::Array(vec![
                    Value::Bytes(vec![0xA0]),
                    Value::Map(vec![]),
                    Value::from(1),
                    Value::Bytes(vec![]),
                ])),
            )),
            |e| matches!(e, CoseError::Structure(_)),
        ),
        (
            "txid not text",
            with_ccf(Value::Map(vec![(Value::from("txid"), Value::from(5))])),
            |e| matches!(e, CoseError::BadHeader { .. }),
        ),
        ("ccf.v1 not map", with_ccf(Value::from(5)), |e| {
            matches!(e, CoseError::BadHeader { .. })
        }),
        (
            "vds not int",
            with_label(HEADER_VDS, Value::from("x")),
            |e| matches!(e, CoseError::BadHeader { .. }),
        ),
        (
            "cwt not map",
            with_label(HEADER_CWT_CLAIMS, Value::from(1)),
            |e| matches!(e, CoseError::BadHeader { .. }),
        ),
        (
            "cwt iat text",
            with_label(
                HEADER_CWT_CLAIMS,
                Value::Map(vec![(Value::from(6), Value::from("x"))]),
            ),
            |e| matches!(e, CoseError::BadHeader { .. }),
        ),
    ];
    for (what, bytes, ok) in cases {
        match parse_sign1(&bytes) {
            Err(e) => assert!(ok(&e), "case {what:?}: unexpected error {e:?}"),
            Ok(p) => panic!("case {what:?}: parsed {p:?}"),
        }
    }
    // A header without the CCF fields parses, with the fields absent.
    let p = parse_sign1(&with_ccf(Value::Map(vec![]))).unwrap();
    assert_eq!(
        (p.alg, p.txid, p.vds, p.cwt),
        (Some(ALG_ES256), None, None, None)
    );
}

proptest! {
    #[test]
    fn sign1_round_trip(
        // coset accepts only IANA-registered or private-use (< -65536) algorithm ids.
        alg in prop_oneof![Just(ALG_ES256), Just(ALG_ES384), Just(-36), Just(-37), i64::MIN..-65536],
        iss in ".{0,20}",
        iat in any::<i64>(),
        view in any::<u32>(),
        seqno in any::<u64>(),
        payload in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        sig in proptest::collection::vec(any::<u8>(), 0..130),
    ) {
        let txid = format!("{view}.{seqno}");
        let protected = ccf_signature_protected_header(alg, KID, &iss, "sub", iat, &txid);
        let bytes = assemble_sign1(&protected, &Header::default(), payload.as_deref(), &sig).unwrap();
        let p = parse_sign1(&bytes).unwrap();
        prop_assert_eq!(p.protected, protected);
        prop_assert_eq!(p.txid, Some(txid));
        prop_assert_eq!(p.cwt.unwrap().iss, Some(iss));
        prop_assert_eq!(p.payload, payload);
        prop_assert_eq!(p.signature, sig);
        prop_assert_eq!(p.alg, Some(alg));
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = parse_sign1(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutations(flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let mut bytes = assemble_sign1(&protected(), &Header::default(), None, &[9; 96]).unwrap();
        for (i, b) in flips {
            let i = i.index(bytes.len());
            bytes[i] ^= b;
        }
        let _ = parse_sign1(&bytes);
    }
}
