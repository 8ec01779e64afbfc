//! End-to-end golden bytes: a genesis-like transaction and a signature transaction, laid out in a
//! committed chunk with fixed inputs (tag, digests, signatures are fixed stand-ins: this crate
//! does no crypto).
//!
//! Checked once against CCF's own reader while developing (not from the tests, which stay pure):
//! the `golden_chunk_bytes` bytes were written to `/tmp/coco-golden/ledger_1-2.committed` and read
//! with the `ccf` Python package 7.0.22. `read_ledger.py --verification-level HEADERS` printed
//! "Verified HEADERS - 2 transactions" (OFFSETS likewise; MERKLE and FULL need real digests and
//! signatures). `read_ledger.py --insecure-skip-verification /tmp/coco-golden` printed, abridged:
//!
//! ```text
//! chunk /tmp/coco-golden/ledger_1-2.committed (committed)
//!   txid 2.1 (7 public tables) [1804 bytes]
//!   -- private: 77 bytes
//!     table "public:ccf.gov.constitution" (1 write):
//!       <u64: 0>:
//!         "export function apply() {}"
//!     table "public:ccf.gov.members.certs" (1 write):
//!       0b0b…0b:
//!         b'MEMBERCERT'
//!     table "public:ccf.gov.members.info" (1 write): … {"member_data": {"is_operator": true}, "status": "Accepted"}
//!     table "public:ccf.gov.nodes.endorsed_certificates" (1 write): 0a0a…0a: b'NODECERT'
//!     table "public:ccf.gov.nodes.info" (1 write): … "nodehost": "127.0.0.1", "nodeport": "8001", …
//!       "quote_info": {"endorsements": "", "format": "Insecure_Virtual", "quote": "cQ=="}, … "status": "Trusted"
//!     table "public:ccf.gov.service.config" (1 write): <u64: 0>: {"recovery_threshold": 1}
//!     table "public:ccf.gov.service.info" (1 write):
//!       <u64: 0>: {"cert": "SVC", "current_service_create_txid": "2.1", "status": "Opening"}
//!   txid 2.2 (3 public tables) [1098 bytes, flags=0x1]
//!     table "public:ccf.internal.cose_signatures" (1 write): <u64: 0>: "0oRYbqUBOCIEWEAw…VQ=="
//!     table "public:ccf.internal.signatures" (1 write): <u64: 0>: {"cert": "NODECERT", "commit_seqno": 0,
//!       "commit_view": 0, "hashed_nonce": "0000…", "node": "0a0a…", "root": "5252…", "seqno": 2,
//!       "sig": "MAYCAQECAQE=", "view": 2}
//!     table "public:ccf.internal.tree" (1 write): <u64: 0>: b'\x00…\x02\x00…LLLL…'
//! Ledger verification complete
//! ```
//!
//! and `ccf.ledger.Ledger` reported, per transaction, txid / seqno / claims digest / commit
//! evidence digest / max_conflict_version / private size: `2.1 1 0000… c1c1… 0 77` and
//! `2.2 2 0000… c2c2… 0 0`.

use std::collections::BTreeMap;

use coco_types::{MemberId, NodeId, TxId};
use expect_test::expect;
use serde_json::json;

use crate::chunk::{self, ChunkName, ChunkState};
use crate::cose;
use crate::domain;
use crate::entry::{self, EntryBuilder, EntryFlags};
use crate::tables::{self, *};
use crate::write_set::WriteSet;

const TAG: [u8; 16] = [0x7A; 16];
const CLAIMS: [u8; 32] = [0; 32];
const CE_DIGEST_1: [u8; 32] = [0xC1; 32];
const CE_DIGEST_2: [u8; 32] = [0xC2; 32];
const VIEW: u64 = 2;

fn node_id() -> NodeId {
    NodeId::from_hex(&"0a".repeat(32)).unwrap()
}

fn member_id() -> MemberId {
    MemberId::from_hex(&"0b".repeat(32)).unwrap()
}

fn json(v: &impl serde::Serialize) -> Vec<u8> {
    to_ccf_json(v).unwrap()
}

fn genesis_write_set() -> WriteSet {
    let iface = |addr: &str| NetInterface {
        bind_address: addr.into(),
        published_address: addr.into(),
        protocol: "tcp".into(),
        ..Default::default()
    };
    let node = NodeInfo {
        node_to_node_interface: iface("127.0.0.1:8001"),
        rpc_interfaces: BTreeMap::from([(
            "primary_rpc_interface".to_owned(),
            iface("127.0.0.1:8000"),
        )]),
        will_locally_seal_ledger_secrets: false,
        quote_info: QuoteInfo {
            format: QuoteFormat::InsecureVirtual,
            quote: b"q".to_vec(),
            endorsements: vec![],
            uvm_endorsements: None,
            endorsed_tcb: None,
        },
        encryption_pub_key: "ENC".into(),
        status: NodeStatus::Trusted,
        ledger_secret_seqno: None,
        code_digest: Some("00".repeat(4)),
        certificate_signing_request: None,
        public_key: Some("PUB".into()),
        node_data: serde_json::Value::Null,
        cert: None,
        retired_committed: false,
    };
    let service = ServiceInfo {
        cert: "SVC".into(),
        status: ServiceStatus::Opening,
        previous_service_identity_version: None,
        recovery_count: None,
        service_data: serde_json::Value::Null,
        current_service_create_txid: Some(TxId::new(VIEW, 1)),
    };
    let member = MemberInfo {
        status: MemberStatus::Accepted,
        member_data: json!({"is_operator": true}),
        recovery_role: None,
    };
    let mut ws = WriteSet::new();
    ws.put(SERVICE_INFO, &SINGLETON_KEY[..], json(&service));
    ws.put(
        SERVICE_CONFIG,
        &SINGLETON_KEY[..],
        json(&ServiceConfiguration {
            recovery_threshold: 1,
            ..Default::default()
        }),
    );
    ws.put(NODES_INFO, node_key(&node_id()), json(&node));
    ws.put(
        NODES_ENDORSED_CERTIFICATES,
        node_key(&node_id()),
        "NODECERT",
    );
    ws.put(MEMBERS_CERTS, member_key(&member_id()), "MEMBERCERT");
    ws.put(MEMBERS_INFO, member_key(&member_id()), json(&member));
    ws.put(
        CONSTITUTION,
        &SINGLETON_KEY[..],
        tables::constitution_value("export function apply() {}"),
    );
    ws.put("records", &b"k"[..], &b"private value"[..]);
    ws
}

fn signature_write_set() -> WriteSet {
    let root = [0x52; 32];
    let sig = SignatureValue {
        commit_seqno: 0,
        commit_view: 0,
        hashed_nonce: [0; 32],
        node: node_id(),
        root,
        seqno: 2,
        sig: vec![0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01],
        view: VIEW,
        cert: "NODECERT".into(),
    };
    let kid = "0c".repeat(32);
    let protected = cose::ccf_signature_protected_header(
        cose::ALG_ES384,
        &kid,
        "iss",
        "sub",
        1_700_000_000,
        "2.2",
    );
    let sign1 =
        cose::assemble_sign1(&protected, &coset::Header::default(), None, &[0x55; 96]).unwrap();
    // merklecpp serialisation: u64 BE leaf count, u64 BE first index, then the leaves.
    let mut tree = Vec::new();
    tree.extend(2u64.to_be_bytes());
    tree.extend(0u64.to_be_bytes());
    tree.extend([0u8; 32]);
    tree.extend([0x4C; 32]);
    let mut ws = WriteSet::new();
    ws.put(SIGNATURES, &SINGLETON_KEY[..], json(&sig));
    ws.put(
        COSE_SIGNATURES,
        &SINGLETON_KEY[..],
        tables::cose_signature_value(&sign1),
    );
    ws.put(TREE, &SINGLETON_KEY[..], tree);
    ws
}

/// Builds an entry, standing in for AES-GCM with the identity (ciphertext = plaintext).
fn build(flags: EntryFlags, seqno: u64, ce: &[u8; 32], ws: &WriteSet) -> Vec<u8> {
    EntryBuilder::for_write_set(flags, TxId::new(VIEW, seqno), &CLAIMS, ce, ws)
        .unwrap()
        .finish(&TAG)
}

fn golden_chunk() -> Vec<u8> {
    let e1 = build(EntryFlags::NONE, 1, &CE_DIGEST_1, &genesis_write_set());
    let e2 = build(
        EntryFlags::FORCE_LEDGER_CHUNK_AFTER,
        2,
        &CE_DIGEST_2,
        &signature_write_set(),
    );
    let mut data = chunk::OPEN_CHUNK_HEADER.to_vec();
    let positions = [data.len() as u32, (data.len() + e1.len()) as u32];
    data.extend(&e1);
    data.extend(&e2);
    let (table, header) = chunk::complete_chunk_bytes(data.len() as u64, &positions);
    data.extend(table);
    data[..8].copy_from_slice(&header);
    data
}

#[test]
fn golden_chunk_bytes() {
    let data = golden_chunk();
    assert_eq!(
        ChunkName::committed(1, 2).to_string(),
        "ledger_1-2.committed"
    );
    let hex: Vec<String> = data.chunks(64).map(hex::encode).collect();
    expect![[r#"
        5e0b00000000000001000407000000007a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a0100000000000000020000009306000000000000040100000000000000000000
        0000000000000000000000000000000000000000000000000000000000c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1000000
        00000000001b000000000000007075626c69633a6363662e676f762e636f6e737469747574696f6e000000000000000000000000000000000100000000000000
        080000000000000000000000000000001c00000000000000226578706f72742066756e6374696f6e206170706c792829207b7d2200000000000000001c000000
        000000007075626c69633a6363662e676f762e6d656d626572732e63657274730000000000000000000000000000000001000000000000004000000000000000
        30623062306230623062306230623062306230623062306230623062306230623062306230623062306230623062306230623062306230623062306230623062
        0a000000000000004d454d4245524345525400000000000000001b000000000000007075626c69633a6363662e676f762e6d656d626572732e696e666f000000
        00000000000000000000000000010000000000000040000000000000003062306230623062306230623062306230623062306230623062306230623062306230
        623062306230623062306230623062306230623062306230623062306238000000000000007b226d656d6265725f64617461223a7b2269735f6f70657261746f
        72223a747275657d2c22737461747573223a224163636570746564227d00000000000000002a000000000000007075626c69633a6363662e676f762e6e6f6465
        732e656e646f727365645f6365727469666963617465730000000000000000000000000000000001000000000000004000000000000000306130613061306130
        6130613061306130613061306130613061306130613061306130613061306130613061306130613061306130613061306130613061306108000000000000004e
        4f444543455254000000000000000019000000000000007075626c69633a6363662e676f762e6e6f6465732e696e666f00000000000000000000000000000000
        01000000000000004000000000000000306130613061306130613061306130613061306130613061306130613061306130613061306130613061306130613061
        3061306130613061306130613061306112020000000000007b22636f64655f646967657374223a223030303030303030222c22656e6372797074696f6e5f7075
        625f6b6579223a22454e43222c226e6f64655f746f5f6e6f64655f696e74657266616365223a7b2262696e645f61646472657373223a223132372e302e302e31
        3a38303031222c2270726f746f636f6c223a22746370222c227075626c69736865645f61646472657373223a223132372e302e302e313a38303031227d2c226e
        6f6465686f7374223a223132372e302e302e31222c226e6f6465706f7274223a2238303031222c22707562686f7374223a223132372e302e302e31222c227075
        626c69635f6b6579223a22505542222c22707562706f7274223a2238303030222c2271756f74655f696e666f223a7b22656e646f7273656d656e7473223a2222
        2c22666f726d6174223a22496e7365637572655f5669727475616c222c2271756f7465223a2263513d3d227d2c227270635f696e7465726661636573223a7b22
        7072696d6172795f7270635f696e74657266616365223a7b2262696e645f61646472657373223a223132372e302e302e313a38303030222c2270726f746f636f
        6c223a22746370222c227075626c69736865645f61646472657373223a223132372e302e302e313a38303030227d7d2c22727063686f7374223a223132372e30
        2e302e31222c22727063706f7274223a2238303030222c22737461747573223a2254727573746564227d00000000000000001d000000000000007075626c6963
        3a6363662e676f762e736572766963652e636f6e6669670000000000000000000000000000000001000000000000000800000000000000000000000000000018
        000000000000007b227265636f766572795f7468726573686f6c64223a317d00000000000000001b000000000000007075626c69633a6363662e676f762e7365
        72766963652e696e666f0000000000000000000000000000000001000000000000000800000000000000000000000000000045000000000000007b2263657274
        223a22535643222c2263757272656e745f736572766963655f6372656174655f74786964223a22322e31222c22737461747573223a224f70656e696e67227d00
        0000000000000007000000000000007265636f72647300000000000000000000000000000000010000000000000001000000000000006b0d0000000000000070
        7269766174652076616c7565000000000000000001014204000000007a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a0200000000000000020000001e04000000000000
        0402000000000000000000000000000000000000000000000000000000000000000000000000000000c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2
        c2c2c2c2c2c2c2c2c2000000000000000023000000000000007075626c69633a6363662e696e7465726e616c2e636f73655f7369676e61747572657300000000
        000000000000000000000000010000000000000008000000000000000000000000000000220100000000000022306f5259627155424f43494557454177597a42
        6a4d474d77597a426a4d474d77597a426a4d474d77597a426a4d474d77597a426a4d474d77597a426a4d474d77597a426a4d474d77597a426a4d474d77597a42
        6a4d474d77597a426a4d474d77597a426a4751474c41672b6a4268706c552f454141574e7063334d4359334e31596d5a6a59325975646a47685a485234615752
        6a4d6934796f505a5959465656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656
        56565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656565656
        56565656565656565656513d3d2200000000000000001e000000000000007075626c69633a6363662e696e7465726e616c2e7369676e61747572657300000000
        00000000000000000000000001000000000000000800000000000000000000000000000042010000000000007b2263657274223a224e4f444543455254222c22
        636f6d6d69745f7365716e6f223a302c22636f6d6d69745f76696577223a302c226861736865645f6e6f6e6365223a2230303030303030303030303030303030
        303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030222c226e6f6465223a22306130613061
        30613061306130613061306130613061306130613061306130613061306130613061306130613061306130613061306130613061306130613061222c22726f6f
        74223a22353235323532353235323532353235323532353235323532353235323532353235323532353235323532353235323532353235323532353235323532
        35323532222c227365716e6f223a322c22736967223a224d415943415145434151453d222c2276696577223a327d000000000000000018000000000000007075
        626c69633a6363662e696e7465726e616c2e74726565000000000000000000000000000000000100000000000000080000000000000000000000000000005000
        0000000000000000000000000002000000000000000000000000000000000000000000000000000000000000000000000000000000004c4c4c4c4c4c4c4c4c4c
        4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c00000000000000000800000014070000"#]]
    .assert_eq(&hex.join("\n"));

    // And the bytes read back as what was written.
    let scan = chunk::scan_chunk(&data).unwrap();
    assert!(matches!(scan.state, ChunkState::Complete { .. }));
    let e2 = entry::parse_entry(&data[scan.entries[1].range()]).unwrap();
    assert_eq!(
        (e2.view, e2.seqno, e2.flags()),
        (VIEW, 2, EntryFlags::FORCE_LEDGER_CHUNK_AFTER)
    );
    let public = domain::parse_public_domain(e2.public).unwrap();
    let sign1_value = &public.maps[COSE_SIGNATURES].writes[&SINGLETON_KEY[..]];
    let sign1 = parse_cose_signature_value(sign1_value.as_ref().unwrap()).unwrap();
    assert_eq!(
        cose::parse_sign1(&sign1).unwrap().txid.as_deref(),
        Some("2.2")
    );
    let e1 = entry::parse_entry(&data[scan.entries[0].range()]).unwrap();
    let private = domain::parse_private_domain(e1.private).unwrap();
    assert_eq!(private.keys().collect::<Vec<_>>(), ["records"]);
}
