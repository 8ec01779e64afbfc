use expect_test::{Expect, expect};
use serde_json::json;

use super::*;

fn node_id() -> NodeId {
    NodeId::from_hex(&"ab".repeat(32)).unwrap()
}

/// Serialises `value`, compares with the golden CCF byte form, and checks it parses back equal.
fn check<T>(value: &T, want: Expect)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let bytes = to_ccf_json(value).unwrap();
    want.assert_eq(std::str::from_utf8(&bytes).unwrap());
    let back: T = from_ccf_json(&bytes).unwrap();
    assert_eq!(&back, value);
}

#[test]
fn signature_value_golden() {
    let mut sig = SignatureValue {
        commit_seqno: 0,
        commit_view: 0,
        hashed_nonce: [0; 32],
        node: node_id(),
        root: [0x11; 32],
        seqno: 12,
        sig: vec![1, 2, 3, 250],
        view: 2,
        cert: String::new(),
    };
    check(
        &sig,
        expect![[
            r#"{"commit_seqno":0,"commit_view":0,"hashed_nonce":"0000000000000000000000000000000000000000000000000000000000000000","node":"abababababababababababababababababababababababababababababababab","root":"1111111111111111111111111111111111111111111111111111111111111111","seqno":12,"sig":"AQID+g==","view":2}"#
        ]],
    );
    sig.cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into();
    check(
        &sig,
        expect![[
            r#"{"cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","commit_seqno":0,"commit_view":0,"hashed_nonce":"0000000000000000000000000000000000000000000000000000000000000000","node":"abababababababababababababababababababababababababababababababab","root":"1111111111111111111111111111111111111111111111111111111111111111","seqno":12,"sig":"AQID+g==","view":2}"#
        ]],
    );
}

#[test]
fn service_info_golden() {
    let mut info = ServiceInfo {
        cert: "PEM".into(),
        status: ServiceStatus::Opening,
        previous_service_identity_version: None,
        recovery_count: None,
        service_data: Value::Null,
        current_service_create_txid: None,
    };
    check(&info, expect![[r#"{"cert":"PEM","status":"Opening"}"#]]);
    info.status = ServiceStatus::WaitingForRecoveryShares;
    info.previous_service_identity_version = Some(0);
    info.recovery_count = Some(1);
    info.service_data = json!({"z": 1, "a": [true, null]});
    info.current_service_create_txid = Some(TxId::new(2, 1));
    check(
        &info,
        expect![[
            r#"{"cert":"PEM","current_service_create_txid":"2.1","previous_service_identity_version":0,"recovery_count":1,"service_data":{"a":[true,null],"z":1},"status":"WaitingForRecoveryShares"}"#
        ]],
    );
    let statuses = [
        (ServiceStatus::Opening, "\"Opening\""),
        (ServiceStatus::Open, "\"Open\""),
        (
            ServiceStatus::WaitingForRecoveryShares,
            "\"WaitingForRecoveryShares\"",
        ),
        (ServiceStatus::Recovering, "\"Recovering\""),
    ];
    for (s, want) in statuses {
        assert_eq!(to_ccf_json(&s).unwrap(), want.as_bytes());
    }
}

#[test]
fn service_config_golden() {
    let mut cfg = ServiceConfiguration {
        recovery_threshold: 1,
        ..Default::default()
    };
    check(&cfg, expect![[r#"{"recovery_threshold":1}"#]]);
    cfg.consensus = ConsensusType::Bft;
    cfg.reconfiguration_type = Some(ReconfigurationType::OneTransaction);
    cfg.maximum_node_certificate_validity_days = Some(365);
    cfg.maximum_service_certificate_validity_days = Some(365);
    cfg.recent_cose_proposals_window_size = Some(100);
    check(
        &cfg,
        expect![[
            r#"{"consensus":"BFT","maximum_node_certificate_validity_days":365,"maximum_service_certificate_validity_days":365,"recent_cose_proposals_window_size":100,"reconfiguration_type":"OneTransaction","recovery_threshold":1}"#
        ]],
    );
}

#[test]
fn member_and_user_golden() {
    let mut m = MemberInfo {
        status: MemberStatus::Accepted,
        member_data: Value::Null,
        recovery_role: None,
    };
    check(&m, expect![[r#"{"status":"Accepted"}"#]]);
    m.status = MemberStatus::Active;
    m.member_data = json!({"is_operator": true});
    m.recovery_role = Some(MemberRecoveryRole::NonParticipant);
    check(
        &m,
        expect![[
            r#"{"member_data":{"is_operator":true},"recovery_role":"NonParticipant","status":"Active"}"#
        ]],
    );
    // `user_data` is a required field in CCF: written even when null.
    check(&UserInfo::default(), expect![[r#"{"user_data":null}"#]]);
    check(
        &UserInfo {
            user_data: json!("x"),
        },
        expect![[r#"{"user_data":"x"}"#]],
    );
}

fn genesis_node() -> NodeInfo {
    let rpc = NetInterface {
        bind_address: "127.0.0.1:8000".into(),
        published_address: "127.0.0.1:8000".into(),
        protocol: "tcp".into(),
        app_protocol: Some("HTTP1".into()),
        max_open_sessions_soft: Some(1000),
        max_open_sessions_hard: Some(1010),
        endorsement: Some(Endorsement {
            authority: Authority::Service,
        }),
        ..Default::default()
    };
    NodeInfo {
        node_to_node_interface: NetInterface {
            bind_address: "127.0.0.1:8001".into(),
            published_address: "127.0.0.1:8001".into(),
            protocol: "tcp".into(),
            ..Default::default()
        },
        rpc_interfaces: BTreeMap::from([("primary_rpc_interface".to_owned(), rpc)]),
        will_locally_seal_ledger_secrets: false,
        quote_info: QuoteInfo {
            format: QuoteFormat::InsecureVirtual,
            quote: b"{}".to_vec(),
            endorsements: vec![],
            uvm_endorsements: None,
            endorsed_tcb: None,
        },
        encryption_pub_key: "RSA PEM".into(),
        status: NodeStatus::Trusted,
        ledger_secret_seqno: None,
        code_digest: Some("00".repeat(4)),
        certificate_signing_request: Some("CSR PEM".into()),
        public_key: Some("PUB PEM".into()),
        node_data: Value::Null,
        cert: None,
        retired_committed: false,
    }
}

#[test]
fn node_info_golden() {
    let mut node = genesis_node();
    check(
        &node,
        expect![[
            r#"{"certificate_signing_request":"CSR PEM","code_digest":"00000000","encryption_pub_key":"RSA PEM","node_to_node_interface":{"bind_address":"127.0.0.1:8001","protocol":"tcp","published_address":"127.0.0.1:8001"},"nodehost":"127.0.0.1","nodeport":"8001","pubhost":"127.0.0.1","public_key":"PUB PEM","pubport":"8000","quote_info":{"endorsements":"","format":"Insecure_Virtual","quote":"e30="},"rpc_interfaces":{"primary_rpc_interface":{"app_protocol":"HTTP1","bind_address":"127.0.0.1:8000","endorsement":{"authority":"Service"},"max_open_sessions_hard":1010,"max_open_sessions_soft":1000,"protocol":"tcp","published_address":"127.0.0.1:8000"}},"rpchost":"127.0.0.1","rpcport":"8000","status":"Trusted"}"#
        ]],
    );
    node.will_locally_seal_ledger_secrets = true;
    node.ledger_secret_seqno = Some(3);
    node.node_data = json!({"name": "n0"});
    node.cert = Some("OLD".into());
    node.retired_committed = true;
    node.status = NodeStatus::Retired;
    node.quote_info.uvm_endorsements = Some(vec![0xFF]);
    node.quote_info.endorsed_tcb = Some("abcd".into());
    let primary = node
        .rpc_interfaces
        .get_mut("primary_rpc_interface")
        .unwrap();
    primary.http_configuration = Some(HttpConfiguration {
        max_body_size: Some("1MB".into()),
        ..Default::default()
    });
    primary.accepted_endpoints = Some(vec!["^/app/.*".into()]);
    primary.forwarding_timeout_ms = Some(3000);
    primary.redirections = Some(Redirections {
        to_primary: RedirectionResolverConfig::default(),
        to_backup: RedirectionResolverConfig {
            kind: RedirectionResolutionKind::StaticAddress,
            target: json!({"address": "b:1"}),
        },
    });
    node.node_to_node_interface.bind_address = "[::1]:8001".into();
    check(
        &node,
        expect![[
            r#"{"cert":"OLD","certificate_signing_request":"CSR PEM","code_digest":"00000000","encryption_pub_key":"RSA PEM","ledger_secret_seqno":3,"node_data":{"name":"n0"},"node_to_node_interface":{"bind_address":"[::1]:8001","protocol":"tcp","published_address":"127.0.0.1:8001"},"nodehost":"[::1]","nodeport":"8001","pubhost":"127.0.0.1","public_key":"PUB PEM","pubport":"8000","quote_info":{"endorsed_tcb":"abcd","endorsements":"","format":"Insecure_Virtual","quote":"e30=","uvm_endorsements":"/w=="},"retired_committed":true,"rpc_interfaces":{"primary_rpc_interface":{"accepted_endpoints":["^/app/.*"],"app_protocol":"HTTP1","bind_address":"127.0.0.1:8000","endorsement":{"authority":"Service"},"forwarding_timeout_ms":3000,"http_configuration":{"max_body_size":"1MB"},"max_open_sessions_hard":1010,"max_open_sessions_soft":1000,"protocol":"tcp","published_address":"127.0.0.1:8000","redirections":{"to_backup":{"kind":"StaticAddress","target":{"address":"b:1"}}}}},"rpchost":"127.0.0.1","rpcport":"8000","status":"Retired","will_locally_seal_ledger_secrets":true}"#
        ]],
    );
}

/// CCF's `rsplit_1`: no colon means an empty host and the whole string as port.
#[test]
fn net_address_split_table() {
    let cases = [
        ("a:1", ("a", "1")),
        ("[::1]:80", ("[::1]", "80")),
        ("noport", ("", "noport")),
        ("", ("", "")),
    ];
    for (addr, want) in cases {
        assert_eq!(split_net_address(addr), want, "addr {addr:?}");
    }
    let mut node = genesis_node();
    node.rpc_interfaces.clear();
    let v: Value = serde_json::from_slice(&to_ccf_json(&node).unwrap()).unwrap();
    assert_eq!(
        (v["rpchost"].as_str(), v["pubport"].as_str()),
        (Some(""), Some(""))
    );
}

#[test]
fn json_form_table() {
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"b": 1, "a": {"d": [3, {"y": 0, "x": 1}], "c": null}}),
            r#"{"a":{"c":null,"d":[3,{"x":1,"y":0}]},"b":1}"#,
        ),
        // Byte order, not Unicode collation: upper case before lower, 'é' (0xC3) after 'z'.
        (
            json!({"é": 1, "z": 2, "Z": 3, "_": 4}),
            r#"{"Z":3,"_":4,"z":2,"é":1}"#,
        ),
        // nlohmann leaves DEL (0x7f) and non-ASCII unescaped when ensure_ascii is off.
        (
            json!("\u{1}\u{8}\t\n\u{c}\r\"\\/\u{7f}é"),
            "\"\\u0001\\b\\t\\n\\f\\r\\\"\\\\/\u{7f}é\"",
        ),
        (json!([]), "[]"),
        (json!({}), "{}"),
        (json!(-12), "-12"),
        (json!(u64::MAX), "18446744073709551615"),
        (json!(true), "true"),
    ];
    for (value, want) in cases {
        assert_eq!(
            String::from_utf8(to_ccf_json(&value).unwrap()).unwrap(),
            want,
            "value {value}"
        );
    }
}

#[test]
fn cose_signature_and_constitution_values() {
    let v = cose_signature_value(&[0xD2, 0x84, 0x00]);
    assert_eq!(v, br#""0oQA""#);
    assert_eq!(parse_cose_signature_value(&v).unwrap(), [0xD2, 0x84, 0x00]);
    assert!(matches!(
        parse_cose_signature_value(b"\"!!\""),
        Err(TableError::Base64(_))
    ));
    assert!(matches!(
        parse_cose_signature_value(b"12"),
        Err(TableError::Json(_))
    ));
    assert_eq!(
        constitution_value("export function f() {\n  return \"x\";\n}"),
        br#""export function f() {\n  return \"x\";\n}""#
    );
}

#[test]
fn names_and_keys() {
    assert_eq!(SINGLETON_KEY, 0u64.to_le_bytes());
    for name in [
        SERVICE_INFO,
        NODES_INFO,
        SIGNATURES,
        COSE_SIGNATURES,
        TREE,
        CONSTITUTION,
        USERS_INFO,
    ] {
        assert!(crate::write_set::is_public_map(name), "{name}");
    }
    assert_eq!(node_key(&node_id()), "ab".repeat(32).into_bytes());
    let m = MemberId::from_hex(&"cd".repeat(32)).unwrap();
    assert_eq!(member_key(&m), "cd".repeat(32).into_bytes());
    let u = UserId::from_hex(&"ef".repeat(32)).unwrap();
    assert_eq!(user_key(&u), "ef".repeat(32).into_bytes());
}

/// Values CCF wrote parse even when they carry fields coco does not model.
#[test]
fn parses_ccf_written_values() {
    let sig: SignatureValue = from_ccf_json(br#"{"commit_seqno":0,"commit_view":0,"hashed_nonce":"0000000000000000000000000000000000000000000000000000000000000000","node":"abababababababababababababababababababababababababababababababab","root":"1111111111111111111111111111111111111111111111111111111111111111","seqno":12,"sig":"AQID+g==","view":2}"#).unwrap();
    assert_eq!(sig.cert, "");
    let node: NodeInfo = from_ccf_json(br#"{"encryption_pub_key":"k","node_to_node_interface":{"bind_address":"a:1"},"nodehost":"a","nodeport":"1","pubhost":"","pubport":"","quote_info":{"endorsements":"","format":"AMD_SEV_SNP_v1","quote":""},"rpc_interfaces":{},"rpchost":"","rpcport":"","status":"Pending","future_field":1}"#).unwrap();
    assert_eq!(node.quote_info.format, QuoteFormat::AmdSevSnpV1);
    assert!(from_ccf_json::<SignatureValue>(br#"{"seqno":1}"#).is_err());
}
