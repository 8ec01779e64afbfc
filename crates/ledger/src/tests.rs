//! Ledgers written by a real `coco_node::Node`, chunked as the host chunks them, then verified
//! intact and under corruption.

use bytes::Bytes;
use coco_app_api::{Method, PeerCert, Request};
use coco_crypto::{Curve, EcKeyPair, RsaKeyPair, Validity};
use coco_node::{CoreConfig, GenesisConfig, Input, Node, NodeIdentity, Now, Output, UserSpec};
use proptest::prelude::*;

use super::*;

const VALIDITY: Validity = Validity {
    not_before_unix_s: 0,
    not_after_unix_s: 4_000_000_000,
};

struct Sample {
    /// (file name, bytes) as the host would have written them.
    files: Vec<(String, Vec<u8>)>,
    /// (file index, offset, len, seqno, is_signature) of every entry.
    entries: Vec<(usize, usize, usize, u64, bool)>,
    transactions: u64,
    signatures: u64,
    /// Whether the last file is an open chunk (entries after the last complete chunk).
    open_tail: bool,
}

/// Runs a node through genesis and `writes` logging-app writes (signature every 4), and lays the
/// entries out in chunks exactly as `coco_host::storage::LedgerWriter` does: complete chunks
/// end at entries flagged FORCE_LEDGER_CHUNK_AFTER; the first complete chunk is named committed,
/// the second complete one is left `ledger_<start>`, the rest is the open chunk.
fn sample(writes: u64) -> Sample {
    let service_key = EcKeyPair::generate(Curve::P384).unwrap();
    let service_cert_pem =
        coco_crypto::self_signed_ca_cert(&service_key, "CCF Service", VALIDITY).unwrap();
    let identity = NodeIdentity::new(
        EcKeyPair::generate(Curve::P384).unwrap(),
        "CCF Node",
        &[],
        VALIDITY,
        std::sync::Arc::new(service_key),
        service_cert_pem,
        RsaKeyPair::generate(2048).unwrap(),
    )
    .unwrap();
    let user_key = EcKeyPair::generate(Curve::P256).unwrap();
    let user_pem = coco_crypto::self_signed_cert(&user_key, "user0", VALIDITY).unwrap();
    let user_der = coco_crypto::pem_to_der_certs(&user_pem).unwrap().remove(0);
    let user = PeerCert {
        fingerprint_hex: coco_crypto::cert_der_fingerprint_hex(&user_der),
        der: Bytes::from(user_der),
    };
    let genesis = GenesisConfig {
        users: vec![UserSpec {
            cert_pem: user_pem,
            user_data: None,
        }],
        open_service_without_governance: true,
        recovery_threshold: 1,
        ..Default::default()
    };
    let config = CoreConfig {
        signature_tx_interval_count: 4,
        chunk_size_bytes: 1500,
        ..CoreConfig::default()
    };
    let now = Now {
        monotonic_ms: 0,
        unix_seconds: 1_700_000_000,
    };
    let mut out = Vec::new();
    let mut node = Node::start_genesis(
        config,
        identity,
        &genesis,
        [3; 32],
        coco_node::Plugins {
            app: coco_app_logging::registry(),
            constitution: None,
        },
        now,
        &mut out,
    );
    for i in 0..writes {
        let vis = if i % 2 == 0 { "private" } else { "public" };
        let request = Request {
            method: Method::POST,
            path: format!("/app/log/{vis}"),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(format!(r#"{{"id":{i},"msg":"message {i}"}}"#)),
            peer_cert: Some(user.clone()),
        };
        node.step(
            now,
            Input::Request {
                id: i,
                request,
                session: Default::default(),
            },
            &mut out,
        );
    }
    let appended: Vec<(u64, Vec<u8>, bool, bool)> = out
        .into_iter()
        .filter_map(|o| match o {
            Output::Append {
                txid,
                bytes,
                force_chunk_after,
                is_signature,
            } => Some((txid.seqno, bytes.to_vec(), force_chunk_after, is_signature)),
            _ => None,
        })
        .collect();
    let mut files = Vec::new();
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 8];
    let mut positions: Vec<u32> = Vec::new();
    let mut start = 1;
    let mut complete_chunks = 0;
    let mut signatures = 0;
    for (seqno, bytes, force_after, is_sig) in &appended {
        entries.push((files.len(), buf.len(), bytes.len(), *seqno, *is_sig));
        positions.push(buf.len() as u32);
        buf.extend_from_slice(bytes);
        signatures += u64::from(*is_sig);
        if *force_after {
            let (table, header) =
                coco_codec::chunk::complete_chunk_bytes(buf.len() as u64, &positions);
            buf.extend_from_slice(&table);
            buf[..8].copy_from_slice(&header);
            let name = if complete_chunks == 0 {
                format!("ledger_{start}-{seqno}.committed")
            } else {
                format!("ledger_{start}")
            };
            files.push((name, std::mem::replace(&mut buf, vec![0u8; 8])));
            positions.clear();
            start = seqno + 1;
            complete_chunks += 1;
        }
    }
    let open_tail = buf.len() > 8;
    if open_tail {
        files.push((format!("ledger_{start}"), buf));
    }
    assert!(
        complete_chunks >= 2,
        "sample too small to have two complete chunks ({complete_chunks})"
    );
    Sample {
        files,
        entries,
        transactions: appended.len() as u64,
        signatures,
        open_tail,
    }
}

#[test]
fn a_node_written_ledger_verifies() {
    let s = sample(24);
    let report = verify(s.files.clone(), &VerifyOptions::default());
    assert!(report.is_ok(), "{}", report.summary());
    assert_eq!(report.transactions, s.transactions);
    assert_eq!(report.signatures, s.signatures);
    assert!(report.torn_tail.is_none());
    assert_eq!(report.chunks, s.files.len());
    assert!(
        report.summary().starts_with("Verified FULL - "),
        "{}",
        report.summary()
    );
    let committed = verify(
        s.files.clone(),
        &VerifyOptions {
            committed_only: true,
            ..Default::default()
        },
    );
    assert!(committed.is_ok());
    assert_eq!(committed.chunks, 1);
}

/// The signed prefix — every entry before the last signature transaction (each is covered by
/// that signature's Merkle root), and the headers and positions tables of complete chunks — is
/// tamper-evident: a flip of any single byte there is reported. (The last signature entry's own
/// bytes are covered by no later root, as in CCF; its signed fields are checked directly and by
/// the table test below.)
#[test]
fn every_single_byte_flip_in_the_signed_prefix_is_detected() {
    let s = sample(8);
    let last_sig = s.entries.iter().rev().find(|e| e.4).copied().unwrap();
    let mut positions: Vec<(usize, usize)> = Vec::new();
    for (fi, (_, bytes)) in s.files.iter().enumerate() {
        for off in 0..bytes.len() {
            let before_last_sig = fi < last_sig.0 || (fi == last_sig.0 && off < last_sig.1);
            if before_last_sig {
                positions.push((fi, off));
            }
        }
    }
    assert!(
        positions.len() > 5000,
        "sample too small: {} bytes",
        positions.len()
    );
    let baseline = verify(s.files.clone(), &VerifyOptions::default());
    assert!(baseline.is_ok());
    let mut undetected = Vec::new();
    for (fi, off) in positions {
        let mut files = s.files.clone();
        files[fi].1[off] ^= 0x01;
        let r = verify(files, &VerifyOptions::default());
        if r.is_ok() && r.torn_tail.is_none() {
            undetected.push((s.files[fi].0.clone(), off));
        }
    }
    assert!(
        undetected.is_empty(),
        "undetected single-byte flips: {undetected:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Random multi-byte corruption anywhere before the last signature is always reported.
    #[test]
    fn random_corruption_is_detected(seed in any::<u64>(), flips in 1usize..4) {
        let s = sample(8);
        let last_sig = s.entries.iter().rev().find(|e| e.4).copied().unwrap();
        let mut files = s.files.clone();
        let mut x = seed;
        for _ in 0..flips {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let fi = (x >> 33) as usize % (last_sig.0 + 1);
            let limit = if fi == last_sig.0 { last_sig.1 } else { files[fi].1.len() };
            if limit == 0 { continue; }
            let off = (x >> 7) as usize % limit;
            files[fi].1[off] ^= ((x >> 50) as u8) | 1;
        }
        let r = verify(files, &VerifyOptions::default());
        prop_assert!(!r.is_ok() || r.torn_tail.is_some(), "{}", r.summary());
    }
}

#[test]
fn targeted_corruptions_table() {
    // Enough writes for two complete chunks and an open one (whose tail can be torn).
    let s = (24..40)
        .map(sample)
        .find(|s| s.open_tail)
        .expect("some sample ends in an open chunk");
    let sig = s.entries.iter().find(|e| e.4 && e.3 > 4).copied().unwrap();
    let plain = s.entries.iter().find(|e| !e.4 && e.3 > 5).copied().unwrap();
    type Mutation = Box<dyn Fn(&mut Vec<(String, Vec<u8>)>)>;
    let cases: Vec<(&str, Mutation, FindingKind)> = vec![
        (
            "flip in the GCM tag of a transaction before a signature",
            Box::new(move |f| f[plain.0].1[plain.1 + 10] ^= 1),
            FindingKind::MerkleRoot,
        ),
        (
            "root of a signature",
            Box::new(move |f| {
                let e = &mut f[sig.0].1[sig.1..sig.1 + sig.2];
                let i = find(e, b"\"root\":\"") + 8;
                e[i] = if e[i] == b'0' { b'1' } else { b'0' };
            }),
            FindingKind::MerkleRoot,
        ),
        (
            "node signature bytes",
            Box::new(move |f| {
                let e = &mut f[sig.0].1[sig.1..sig.1 + sig.2];
                let i = find(e, b"\"sig\":\"") + 12;
                e[i] = if e[i] == b'A' { b'B' } else { b'A' };
            }),
            FindingKind::NodeSignature,
        ),
        (
            "entry version byte",
            Box::new(move |f| f[plain.0].1[plain.1] = 2),
            FindingKind::ChunkLayout,
        ),
        (
            "missing middle chunk",
            Box::new(|f| {
                f.remove(1);
            }),
            FindingKind::Contiguity,
        ),
        (
            "committed name with wrong end",
            Box::new(|f| {
                let (n, _) = &mut f[0];
                *n = n.replace(".committed", "").replace('-', "-9") + ".committed";
            }),
            FindingKind::FileName,
        ),
        (
            "committed chunk after an uncommitted one",
            Box::new(|f| {
                let c0 = coco_codec::chunk::ChunkName::parse(&f[0].0).unwrap();
                f[0].0 = format!("ledger_{}", c0.start);
                let c1 = coco_codec::chunk::ChunkName::parse(&f[1].0).unwrap();
                let last = coco_codec::chunk::scan_chunk(&f[1].1)
                    .unwrap()
                    .last_seqno()
                    .unwrap();
                f[1].0 = format!("ledger_{}-{}.committed", c1.start, last);
            }),
            FindingKind::Contiguity,
        ),
        (
            "garbage file name",
            Box::new(|f| f.push(("ledger_x".into(), vec![]))),
            FindingKind::FileName,
        ),
        (
            "torn open tail",
            Box::new(|f| {
                let l = f.len() - 1;
                let n = f[l].1.len();
                f[l].1.truncate(n - 3);
            }),
            FindingKind::TornTail,
        ),
        (
            "positions table",
            Box::new(|f| {
                let n = f[0].1.len();
                f[0].1[n - 2] ^= 0x40;
            }),
            FindingKind::ChunkLayout,
        ),
    ];
    for (what, mutate, want) in cases {
        let mut files = s.files.clone();
        mutate(&mut files);
        let r = verify(files, &VerifyOptions::default());
        let got = r.error.as_ref().or(r.torn_tail.as_ref()).map(|f| f.kind);
        assert_eq!(got, Some(want), "{what}: {}", r.summary());
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}
